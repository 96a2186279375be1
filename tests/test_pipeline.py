"""Pipeline: save/load, spec and file checks, every preset task with given inputs returned exactly,
long form, the motion root state, seeding and batches, bad input.

Parts are tiny and random (MelVAE "tiny" with 4 Griffin-Lim iterations, MotionVAE.tiny, VideoVAE.tiny,
a 1-block DiT whose weights are perturbed so that its output depends on its input), 2 sampling steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgen.core.errors import MmgenError
from mmgen.data.toydance import generate_clip
from mmgen.diffusion import PRESETS
from mmgen.diffusion.guidance import CrossGuidance
from mmgen.diffusion.process import RectifiedFlow
from mmgen.dit.model import MultimodalDiT
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.media import AudioModality, MotionModality, VideoModality
from mmgen.modalities.motion import MotionVAE
from mmgen.modalities.video import VideoVAE
from mmgen.pipeline import Pipeline

SR, FPS, VFPS = 22050, 30, 15


def make_media(video: bool = True) -> dict:
    torch.manual_seed(0)
    media = {
        "audio": AudioModality(MelVAE.from_preset("tiny"), griffin_lim_iters=4),
        "motion": MotionModality(MotionVAE.tiny()),
    }
    if video:
        media["video"] = VideoModality(VideoVAE.tiny())
    return media


def make_dit(specs: dict, **kw) -> MultimodalDiT:
    torch.manual_seed(1)
    dit = MultimodalDiT(specs, d_model=32, depth=1, num_heads=2, **kw)
    with torch.no_grad():  # zero-initialised gates would make the DiT ignore its input
        for p in dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return dit


def make_pipeline(video: bool = True, **kw) -> Pipeline:
    media = make_media(video)
    defaults = {"steps": 2, "window_seconds": 4.0, "hop_seconds": 2.0} | kw.pop("defaults", {})
    return Pipeline(make_dit({m: v.spec for m, v in media.items()}), media, defaults=defaults, **kw)


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return make_pipeline(info={"trained": "never", "steps": np.int64(0)})


@pytest.fixture(scope="module")
def clip():
    return generate_clip(7, seconds=4.0)


def raw_of(clip) -> dict:
    return {"audio": clip.audio, "motion": clip.joints, "video": clip.video}


def test_save_load_round_trip_gives_identical_generations(tmp_path):
    defaults = {"cross_guidance": 0.5, "task_args": {"video2audio": {"via": ["motion"]}}}
    pipe = make_pipeline(process=RectifiedFlow(prediction="v"), defaults=defaults)
    pipe.save_pretrained(tmp_path / "p")
    loaded = Pipeline.from_pretrained(tmp_path / "p")
    assert loaded.process == pipe.process and loaded.defaults == pipe.defaults
    assert loaded.modalities["audio"].codec.griffin_lim_iters == 4
    a = pipe.generate("joint", seconds=2.0, seed=3, progress=False)
    b = loaded.generate("joint", seconds=2.0, seed=3, progress=False)
    c = loaded.generate("joint", seconds=2.0, seed=4, progress=False)
    for field in ("audio", "joints", "frames"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
        assert not np.array_equal(getattr(a, field), getattr(c, field)), field
    assert (
        a.audio.shape == (1, 2 * SR)
        and a.joints.shape == (1, 2 * FPS, 24, 3)
        and a.frames.shape == (1, 2 * VFPS, 64, 64, 3)
    )
    assert a.audio.dtype == np.float32 and a.frames.dtype == np.uint8


def test_specs_and_conditioning_must_match():
    media = make_media(video=False)
    specs = {m: v.spec for m, v in media.items()}
    with pytest.raises(ValueError, match="'motion' latents"):
        Pipeline(make_dit({**specs, "motion": type(specs["motion"])(8, 7.5)}), media)
    with pytest.raises(ValueError, match=r"models \['audio'\] but the VAEs are for \['audio', 'motion'\]"):
        Pipeline(make_dit({"audio": specs["audio"]}), media)
    with pytest.raises(ValueError, match="no condition encoder"):
        Pipeline(make_dit(specs, context_dim=16), media)


def test_load_checks_specs_and_names_missing_or_corrupt_files(tmp_path):
    pipe = make_pipeline(video=False)
    pipe.save_pretrained(tmp_path / "p")
    other = make_dit(
        {"audio": pipe.modalities["audio"].spec, "motion": type(pipe.dit.specs["motion"])(4, 7.5)}
    )
    other.save_pretrained(tmp_path / "p" / "dit", overwrite=True)
    with pytest.raises(ValueError, match=r"p: Pipeline: the DiT's 'motion' latents"):
        Pipeline.from_pretrained(tmp_path / "p")

    pipe.save_pretrained(tmp_path / "p", overwrite=True)
    weights = tmp_path / "p" / "dit" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    with pytest.raises(MmgenError, match=r"dit: a model.safetensors under .*p/dit is corrupt"):
        Pipeline.from_pretrained(tmp_path / "p")

    pipe.save_pretrained(tmp_path / "p", overwrite=True)
    (tmp_path / "p" / "motion" / "vae" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"p/motion/vae/model.safetensors: missing"):
        Pipeline.from_pretrained(tmp_path / "p")
    (tmp_path / "p" / "pipeline.yaml").write_text("modalities: [")
    with pytest.raises(MmgenError, match=r"pipeline.yaml: not valid YAML"):
        Pipeline.from_pretrained(tmp_path / "p")
    (tmp_path / "p" / "pipeline.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"pipeline.yaml: missing"):
        Pipeline.from_pretrained(tmp_path / "p")


def _seconds_slice(x: np.ndarray, rate: float, a: float, b: float) -> np.ndarray:
    return x[:, round(a * rate) : round(b * rate)]


GIVEN_FOR = {
    "joint": (),
    "dance2music": ("motion",),
    "music2dance": ("audio",),
    "video2audio": ("video",),
    "audio2video": ("audio",),
    "interpolate": ("audio", "motion", "video"),
    "continue": ("audio", "motion"),
    "inpaint": ("audio", "motion"),
    "edit": ("audio", "motion"),
}
# (start, end) seconds that must come back exactly as given, and a span that must be generated,
# for a 4-s clip; the GIVEN latent frames (7.5 Hz audio / motion, 3.75 Hz video) are worked out in
# the module docstring of mmgen.pipeline.pipeline and the task picture of mmgen.diffusion.tasks
KEPT = {
    "interpolate": ([(0.0, 1.0), (3.2, 4.0)], (1.5, 2.5)),
    "continue": ([(0.0, 1.0)], (1.5, 4.0)),
    "inpaint": ([(0.0, 1.0), (2.0, 4.0)], (1.1, 1.8)),
    "edit": ([(0.0, 1.0), (2.0, 4.0)], (1.1, 1.8)),
}


@pytest.mark.parametrize("task", sorted(PRESETS))
def test_every_preset_runs_and_given_inputs_come_back_exactly(pipe, clip, task):
    assert set(GIVEN_FOR) == set(PRESETS)
    raw = raw_of(clip)
    given = {m: raw[m] for m in GIVEN_FOR[task]}
    kwargs = {"inpaint": {"start": 1.0, "end": 2.0}, "edit": {"start": 1.0, "end": 2.0, "t0": 0.6}}.get(
        task, {}
    )
    out = pipe.generate(task, given, progress=False, task_kwargs=kwargs)
    assert out.task == task and out.seconds == 4.0
    got = {"audio": out.audio, "motion": out.joints, "video": out.frames}
    rates = {"audio": SR, "motion": FPS, "video": VFPS}
    present = pipe.task(task, list(given), **kwargs).modalities
    for m in ("audio", "motion", "video"):
        assert (got[m] is None) == (m not in present), m
        if got[m] is not None:
            assert got[m].shape[:2] == (1, round(4.0 * rates[m])), m
    if task in KEPT:
        kept, generated = KEPT[task]
        for m in given:
            for a, b in kept:
                assert np.array_equal(
                    _seconds_slice(got[m], rates[m], a, b), _seconds_slice(raw[m][None], rates[m], a, b)
                ), (m, a, b)
            a, b = generated
            assert not np.array_equal(
                _seconds_slice(got[m], rates[m], a, b), _seconds_slice(raw[m][None], rates[m], a, b)
            ), m
        for m in present:  # the mask of generated frames matches what came back
            mask = out.generated[m]
            assert mask.shape == (got[m].shape[1],), m
            a, b = generated
            assert mask[round(a * rates[m]) : round(b * rates[m])].all(), m
            for a, b in kept if m in given else ():
                assert not mask[round(a * rates[m]) : round(b * rates[m])].any(), (m, a, b)
    else:
        for m in given:
            assert np.array_equal(got[m][0], raw[m]), (
                m
            )  # fully GIVEN: the input itself, not its VAE round trip
        for m in set(present) - set(given):
            assert np.isfinite(got[m].astype(np.float64)).all()
        for m in present:
            assert (~out.generated[m] if m in given else out.generated[m]).all(), m  # wholly given or generated


def test_long_form_samples_in_training_windows(pipe):
    long_clip = generate_clip(11, seconds=12.0)
    lengths = []
    forward = pipe.dit.forward

    def spy(x, t, cond=None, **kw):
        lengths.append(x["audio"].shape[1])
        return forward(x, t, cond, **kw)

    pipe.dit.forward = spy
    try:
        out = pipe.generate(
            "dance2music", {"motion": long_clip.joints}, progress=False
        )  # auto: 12 s > 4 s window
        windows = set(lengths)
        lengths.clear()
        single = pipe.generate("dance2music", {"motion": long_clip.joints}, long_form=False, progress=False)
    finally:
        del pipe.dit.forward
    assert windows == {30}  # 4 s windows at 7.5 Hz
    assert set(lengths) == {90}
    assert out.audio.shape == (1, 12 * SR) and np.array_equal(out.joints[0], long_clip.joints)
    assert not np.array_equal(out.audio, single.audio)
    # any hop works: 1.5 s is 11.25 frames at 7.5 Hz, rounded on the modality's own grid
    odd = make_pipeline(video=False).generate("dance2music", {"motion": long_clip.joints}, hop=1.5, progress=False)
    assert odd.audio.shape == (1, 12 * SR)
    with pytest.raises(ValueError, match="hop"):
        pipe.generate("dance2music", {"motion": long_clip.joints}, hop=5.0, progress=False)


def test_motion_decodes_from_the_given_root_state(pipe, clip):
    # kinematic features are translation invariant: moving the given dance 10 m along x leaves the
    # latents (up to rounding), hence the sample, and the decoded motion follows the given frame-0 root
    shift = np.array([10.0, 0.0, 0.0], np.float32)
    kw = {"progress": False, "seed": 5}
    a = pipe.generate("interpolate", {"motion": clip.joints, "audio": clip.audio}, **kw)
    b = pipe.generate("interpolate", {"motion": clip.joints + shift, "audio": clip.audio}, **kw)
    assert np.allclose(b.joints - a.joints, shift, atol=1e-4)
    assert np.allclose(a.audio, b.audio, atol=1e-4)  # equal up to float32 rounding of the shifted input


def test_seeds_batches_and_clip_length(pipe, clip):
    kw = {"progress": False}
    a = pipe.generate("dance2music", {"motion": clip.joints}, seed=1, **kw)
    assert np.array_equal(a.audio, pipe.generate("dance2music", {"motion": clip.joints}, seed=1, **kw).audio)
    batch = pipe.generate("dance2music", {"motion": torch.from_numpy(clip.joints)}, batch_size=2, **kw)
    assert batch.audio.shape == (2, 4 * SR) and not np.array_equal(batch.audio[0], batch.audio[1])
    assert np.array_equal(batch.joints[0], clip.joints) and np.array_equal(batch.joints[1], clip.joints)
    # 4.1 s: 31 latent frames; the given dance is held (last frame) to 4.1 s and returned cut to it
    longer = pipe.generate("dance2music", {"motion": clip.joints}, seconds=4.1, **kw)
    assert longer.joints.shape[1] == 123 and longer.audio.shape[1] == round(4.1 * SR)
    assert np.array_equal(longer.joints[0, :120], clip.joints) and np.array_equal(
        longer.joints[0, 120:], np.repeat(clip.joints[-1:], 3, 0)
    )
    shorter = pipe.generate("music2dance", {"audio": clip.audio}, seconds=2.0, **kw)
    assert np.array_equal(shorter.audio[0], clip.audio[: 2 * SR]) and shorter.joints.shape[1] == 60


def test_bad_input_raises_clear_errors(pipe, clip):
    kw = {"progress": False}
    with pytest.raises(ValueError, match=r"given\['motion'\]: expected \[B, T, 24, 3\]"):
        pipe.generate("dance2music", {"motion": clip.joints[:, :17]}, **kw)
    with pytest.raises(ValueError, match="unknown task 'dance3music'"):
        pipe.generate("dance3music", {"motion": clip.joints}, **kw)
    with pytest.raises(ValueError, match=r"needs given \['motion'\]"):
        pipe.generate("dance2music", {}, **kw)
    with pytest.raises(ValueError, match=r"does not use \['video'\]"):
        pipe.generate("dance2music", {"motion": clip.joints, "video": clip.video}, **kw)
    with pytest.raises(ValueError, match=r"given\['video'\]: expected uint8 frames \[F, 64, 64, 3\]"):
        pipe.generate("video2audio", {"video": clip.video[:, :32]}, **kw)
    with pytest.raises(ValueError, match=r"lacks \(has"):
        pipe.generate("joint", {"text": "hi"}, **kw)
    with pytest.raises(ValueError, match="task 'interpolate' takes no argument \\['prefix'\\]"):
        pipe.generate("interpolate", {"audio": clip.audio}, task_kwargs={"prefix": 1.0}, **kw)
    with pytest.raises(ValueError, match="no condition encoder"):
        pipe.generate("dance2music", {"motion": clip.joints}, caption="a waltz", **kw)
    with pytest.raises(ValueError, match="batch sizes"):
        pipe.generate("dance2music", {"motion": np.stack([clip.joints] * 3)}, batch_size=2, **kw)
    with pytest.raises(ValueError, match="unknown generation defaults"):
        make_pipeline(defaults={"step": 3})


def test_task_args_default_adds_the_bridge_modality_and_generate_arguments_win(clip):
    pipe = make_pipeline(defaults={"task_args": {"video2audio": {"via": ["motion"]}}})
    run = lambda **kw: pipe.generate("video2audio", {"video": clip.video}, seconds=2.0, seed=1, progress=False, **kw)
    bridged, plain = run(), run(task_kwargs={"via": []})
    assert bridged.joints is not None and bridged.joints.shape[1] == 60 and plain.joints is None
    assert np.array_equal(bridged.audio, run(task_kwargs={"via": ("motion",)}).audio)
    # the bridge changes the music: it is sampled jointly with the dance, not on its own
    assert not np.allclose(bridged.audio, plain.audio)
    with pytest.raises(ValueError, match=r"defaults.task_args: unknown task 'video2sound'"):
        make_pipeline(defaults={"task_args": {"video2sound": {"via": ["motion"]}}})
    with pytest.raises(ValueError, match=r"defaults.task_args: task 'video2audio' takes no argument \['head'\]"):
        make_pipeline(defaults={"task_args": {"video2audio": {"head": 1.0}}})


def test_cross_guidance_default_applies_where_two_modalities_are_generated(clip):
    pipe = make_pipeline(video=False, defaults={"cross_guidance": 0.5})
    run = lambda task, given=None, **kw: pipe.generate(task, given, seconds=2.0, seed=1, progress=False, **kw)
    default = run("joint").audio
    assert np.array_equal(default, run("joint", cross_guidance=0.5).audio)
    assert not np.array_equal(default, run("joint", cross_guidance=False).audio)
    assert np.array_equal(
        run("dance2music", {"motion": clip.joints}).audio,
        run("dance2music", {"motion": clip.joints}, cross_guidance=False).audio,
    )
    with pytest.raises(ValueError, match="cross-guidance needs >= 2 generated modalities"):
        run("dance2music", {"motion": clip.joints}, cross_guidance=0.5)
    # each generated modality has given frames of its own: off unless asked for
    given = {"audio": clip.audio, "motion": clip.joints}
    inbetween = run("interpolate", given, task_kwargs={"head": 0.5, "tail": 0.5}).audio
    assert np.array_equal(inbetween, run("interpolate", given, task_kwargs={"head": 0.5, "tail": 0.5}, cross_guidance=False).audio)
    assert not np.array_equal(inbetween, run("interpolate", given, task_kwargs={"head": 0.5, "tail": 0.5}, cross_guidance=0.5).audio)


def test_cross_guidance_default_can_set_every_crossguidance_field(tmp_path):
    setting = {"switch": 1.0, "scale": 1.5, "estimate": "previous"}
    pipe = make_pipeline(video=False, defaults={"cross_guidance": setting})
    assert pipe.defaults.cross_guidance == CrossGuidance(**setting)
    pipe.save_pretrained(tmp_path / "p")
    loaded = Pipeline.from_pretrained(tmp_path / "p")
    assert loaded.defaults == pipe.defaults
    run = lambda p, **kw: p.generate("joint", seconds=2.0, seed=1, progress=False, **kw).audio
    default = run(loaded)
    assert np.array_equal(default, run(pipe, cross_guidance=CrossGuidance(**setting)))
    assert not np.array_equal(default, run(pipe, cross_guidance=CrossGuidance(switch=1.0, scale=1.5)))  # current
    with pytest.raises(ValueError, match="defaults.cross_guidance: .*unexpected keyword argument 'switc'"):
        make_pipeline(defaults={"cross_guidance": {"switc": 1.0}})
    with pytest.raises(ValueError, match="defaults.cross_guidance: CrossGuidance.estimate must be"):
        make_pipeline(defaults={"cross_guidance": {"estimate": "next"}})
    with pytest.raises(ValueError, match=r"defaults.cross_guidance must be in \[0, 1\].*got 1.5"):
        make_pipeline(defaults={"cross_guidance": 1.5})


def test_generate_restores_module_modes(pipe):
    pipe.dit.train()
    pipe.modalities["audio"].train()
    try:
        pipe.generate("joint", seconds=1.0, progress=False)
        assert pipe.dit.training and pipe.modalities["audio"].training and pipe.dit.check_levels
    finally:
        pipe.dit.eval()
        pipe.modalities["audio"].eval()


@pytest.mark.parametrize("task,kwargs", [("interpolate", {}), ("inpaint", {"start": 1.0, "end": 2.0})])
def test_what_the_caller_puts_in_the_generated_span_changes_nothing(pipe, clip, task, kwargs):
    """The encoders see time around each frame; the generated span is blanked before encoding,
    so its content (the true middle or noise) cannot leak into the GIVEN latents beside it."""
    raw = raw_of(clip)
    given = {m: raw[m] for m in GIVEN_FOR[task]}
    rng = np.random.default_rng(0)
    scrambled = {}
    for m, x in given.items():
        rate = {"audio": SR, "motion": FPS, "video": VFPS}[m]
        y = x.copy()
        a, b = round(1.2 * rate), round(2.8 * rate) if task == "interpolate" else round(1.9 * rate)
        y[a:b] = (rng.integers(0, 255, y[a:b].shape) if y.dtype == np.uint8 else rng.normal(size=y[a:b].shape)).astype(y.dtype)
        scrambled[m] = y
    first = pipe.generate(task, given, progress=False, task_kwargs=kwargs, seed=3)
    second = pipe.generate(task, scrambled, progress=False, task_kwargs=kwargs, seed=3)
    for name in ("audio", "joints", "frames"):
        x, y = getattr(first, name), getattr(second, name)
        if x is not None:
            assert np.allclose(x.astype(np.float64), y.astype(np.float64), atol=1e-5), name
