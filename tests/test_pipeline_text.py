"""Pipeline with a condition encoder (tiny random T5 text + timing): captions, text guidance, defaults, save/load."""

from __future__ import annotations

import numpy as np
import pytest
from test_conditioning import make_tiny_t5
from test_pipeline import make_dit, make_media

from mmgen.conditioning import ConditionEncoder, T5TextConditioner, TimingConditioner
from mmgen.data.toydance import generate_clip
from mmgen.pipeline import Pipeline


def make_text_pipeline(t5_dir, **defaults) -> Pipeline:
    media = make_media(video=False)
    encoder = ConditionEncoder(
        {
            "text": T5TextConditioner(dim=16, model=str(t5_dir), max_length=12),
            "timing": TimingConditioner(dim=8, fourier_dim=8),
        },
        context_dim=16,
        prefix_dim=8,
    )
    dit = make_dit({m: v.spec for m, v in media.items()}, context_dim=16, prefix_dim=8)
    return Pipeline(dit, media, condition=encoder, defaults={"steps": 2, **defaults})


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return make_tiny_t5(tmp_path_factory.mktemp("t5"))


@pytest.fixture(scope="module")
def joints():
    return generate_clip(2, seconds=2.0, render_video=False).joints


def test_captions_change_the_output_and_survive_save_load(t5_dir, joints, tmp_path):
    pipe = make_text_pipeline(t5_dir)
    run = lambda p, **kw: p.generate("dance2music", {"motion": joints}, progress=False, **kw).audio
    waltz, hiphop, none = (
        run(pipe, caption="a calm waltz"),
        run(pipe, caption="hip-hop at 124 bpm"),
        run(pipe),
    )
    assert not np.array_equal(waltz, hiphop) and not np.array_equal(waltz, none)
    assert np.array_equal(waltz, run(pipe, caption="a calm waltz"))
    guided = run(pipe, caption="a calm waltz", guidance={"text": 3.0})
    assert not np.array_equal(guided, waltz)
    pipe.save_pretrained(tmp_path / "p")
    loaded = Pipeline.from_pretrained(tmp_path / "p")
    assert np.array_equal(run(loaded, caption="a calm waltz", guidance={"text": 3.0}), guided)
    with pytest.raises(ValueError, match="text guidance needs a caption"):
        run(pipe, guidance={"text": 2.0})


def test_default_guidance_applies_only_where_it_means_something(t5_dir, joints):
    pipe = make_text_pipeline(t5_dir, guidance={"text": 2.0, "motion": 1.5})
    run = lambda **kw: pipe.generate("dance2music", {"motion": joints}, progress=False, **kw).audio
    assert np.array_equal(
        run(caption="a waltz"), run(caption="a waltz", guidance={"text": 2.0, "motion": 1.5})
    )
    assert np.array_equal(run(), run(guidance={"motion": 1.5}))  # no caption: no text group
    assert not np.array_equal(run(), run(guidance={}))
    # music2dance generates the motion: the motion group has nothing to guide on and is left out
    audio = generate_clip(2, seconds=2.0, render_video=False).audio
    gen = lambda **kw: pipe.generate("music2dance", {"audio": audio}, progress=False, **kw).joints
    assert np.array_equal(gen(), gen(guidance={}))


def test_condition_encoder_must_fit_the_dit(t5_dir):
    media = make_media(video=False)
    encoder = ConditionEncoder({"timing": TimingConditioner(dim=4, fourier_dim=8)}, prefix_dim=4)
    dit = make_dit({m: v.spec for m, v in media.items()}, prefix_dim=8)
    with pytest.raises(ValueError, match="condition encoder widths"):
        Pipeline(dit, media, condition=encoder)
