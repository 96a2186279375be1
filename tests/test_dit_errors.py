"""Bad input to MultimodalDiT raises a ValueError that says what and where."""

import pytest
import torch

from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec
from mmgen.dit import MultimodalDiT

SPECS = {"audio": ModalitySpec(4, 4.0), "video": ModalitySpec(3, 2.0, (5, 3))}


@pytest.fixture(scope="module")
def model() -> MultimodalDiT:
    return MultimodalDiT(SPECS, d_model=16, depth=1, num_heads=2)


def good():
    return {"audio": torch.randn(2, 6, 4), "video": torch.randn(2, 3, 5, 3, 3)}, {
        "audio": torch.zeros(2, 6),
        "video": torch.ones(2, 3),
    }


def test_good_input_passes(model):
    x, t = good()
    assert model(x, t)["video"].shape == (2, 3, 5, 3, 3)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda x, t: x.update(speech=torch.randn(2, 6, 4)) or t.update(speech=torch.zeros(2, 6)),
            r"unknown modality \['speech'\]",
        ),
        (lambda x, t: t.pop("video"), "same keys"),
        (
            lambda x, t: x.update(audio=torch.randn(2, 6, 4, 1)),
            r"x\['audio'\] must be \[B, T, C\] \(rank 3\)",
        ),
        (lambda x, t: x.update(video=torch.randn(2, 3, 15, 3)), r"x\['video'\] must be \[B, T, h, w, C\]"),
        (
            lambda x, t: x.update(audio=torch.randn(2, 6, 5)),
            r"x\['audio'\] has 5 channels, the model expects 4",
        ),
        (lambda x, t: x.update(video=torch.randn(2, 3, 4, 3, 3)), r"x\['video'\] frames are \(4, 3\)"),
        (lambda x, t: t.update(audio=torch.zeros(2, 5)), r"t\['audio'\] must be \[B, T\] = \(2, 6\)"),
        (lambda x, t: t.update(audio=torch.zeros(2)), r"t\['audio'\] must be \[B, T\]"),
        (lambda x, t: t.update(audio=torch.zeros(2, 6, dtype=torch.long)), "float tensor"),
        (
            lambda x, t: x.update(video=torch.randn(3, 3, 5, 3, 3)) or t.update(video=torch.ones(3, 3)),
            "batch size 3",
        ),
        (lambda x, t: t["audio"].fill_(1.5), r"t\['audio'\] has values outside \[0, 1\]"),
        (lambda x, t: t["video"].fill_(-0.1), r"t\['video'\] has values outside \[0, 1\]"),
        (lambda x, t: t["audio"].fill_(float("nan")), r"outside \[0, 1\]"),
        (lambda x, t: t["audio"].__setitem__((0, 1), 0.5), r"t\['audio'\] varies within a segment"),
    ],
)
def test_bad_latents_and_levels_raise(model, edit, match):
    x, t = good()
    edit(x, t)
    with pytest.raises(ValueError, match=match):
        model(x, t)


def test_level_value_checks_can_be_switched_off(model):
    x, t = good()
    t["audio"][0, 1] = 0.5  # varies within segment 0: the row level is read at the segment's first frame
    model.check_levels = False
    try:
        ref = model(x, {**t, "audio": torch.zeros(2, 6)})
        assert torch.equal(model(x, t)["audio"], ref["audio"])
    finally:
        model.check_levels = True


def test_conditions_must_match_the_model(model):
    x, t = good()
    with pytest.raises(ValueError, match="has no context input"):
        model(x, t, Cond(context=torch.randn(2, 3, 8)))
    with pytest.raises(ValueError, match="has no prefix input"):
        model(x, t, Cond(prefix=torch.randn(2, 1, 8)))
    cross = MultimodalDiT(SPECS, d_model=16, depth=1, num_heads=2, context_dim=8, prefix_dim=4)
    with pytest.raises(ValueError, match="cond.context is missing"):
        cross(x, t)
    with pytest.raises(ValueError, match="cond.context is missing"):
        cross(x, t, Cond(prefix=torch.randn(2, 1, 4)))
    with pytest.raises(ValueError, match="cond.prefix is missing"):
        cross(x, t, Cond(context=torch.randn(2, 3, 8)))
    with pytest.raises(ValueError, match="cond.context has width 7, the model expects 8"):
        cross(x, t, Cond(context=torch.randn(2, 3, 7), prefix=torch.randn(2, 1, 4)))
    with pytest.raises(ValueError, match="cond.prefix has width 5, the model expects 4"):
        cross(x, t, Cond(context=torch.randn(2, 3, 8), prefix=torch.randn(2, 1, 5)))
    with pytest.raises(ValueError, match="cond has batch size 3"):
        cross(x, t, Cond(context=torch.randn(3, 3, 8), prefix=torch.randn(3, 1, 4)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"modalities": {}}, "at least one modality"),
        ({"modalities": {"a.b": ModalitySpec(2, 1.0)}}, "without '.'"),
        ({"d_model": 30, "num_heads": 4}, "divisible by num_heads"),
        ({"depth": 0}, "depth >= 1"),
        ({"patch_size": 0}, "patch_size >= 1"),
        ({"segment_seconds": 0.0}, "segment_seconds > 0"),
        ({"adaln": "film"}, "'block' or 'sola'"),
        ({"d_model": 8, "num_heads": 2}, "head_dim >= 8"),
    ],
)
def test_bad_config_raises(kwargs, match):
    args = {"modalities": SPECS, "d_model": 16, "depth": 1, "num_heads": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        MultimodalDiT(**args)


def test_training_tokens_wider_than_the_model_warns():
    """192 numbers per video token through a 128-wide model: the output cannot reach 64 of them.
    Training warns (the setting can still change); loading a trained model stays quiet."""
    import warnings

    from mmgen.train.dit_module import DiTModule

    video = {"video": ModalitySpec(12, 7.5, spatial=(8, 8))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wide = MultimodalDiT(video, d_model=128, depth=1, num_heads=4, patch_size=4)
    with pytest.warns(UserWarning, match="holds 192 numbers but d_model is 128: sampling cannot remove noise in 64"):
        DiTModule(wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DiTModule(MultimodalDiT(video, d_model=128, depth=1, num_heads=4, patch_size=2))  # 48 numbers
        DiTModule(MultimodalDiT(video, d_model=128, depth=1, num_heads=4, patch_size=4, wide_heads=True))
