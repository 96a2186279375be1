"""Long-form windows: bounds, stitching, overlap conditioning (proved with an exact denoiser)."""

import pytest
import torch

from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion import VPCosine, sample_long
from mmgen.diffusion.tasks import continuation, dance2music, joint
from mmgen.diffusion.window_plan import nominal_starts, plan_windows

X0 = VPCosine(prediction="x0")


def test_window_starts_golden():
    assert nominal_starts(12.0, 4.0, 3.0) == [0, 3, 6, 8]
    assert nominal_starts(3.0, 4.0, 3.0) == [0]  # shorter than a window
    assert nominal_starts(10.0, 4.0, 3.0) == [0, 3, 6]
    assert nominal_starts(10.3, 4.0, 3.0) == [0, 3, 6, pytest.approx(6.3)]
    with pytest.raises(ValueError, match="gaps"):
        nominal_starts(10.0, 2.0, 3.0)
    # a hop of 1.25 s or 3 s at 7.5 Hz (22.5 frames) used to be refused; now each grid rounds it
    w = plan_windows(10.0, 4.0, 3.0, {"a": 7.5}, 0.5)
    assert [(x.spans["a"].start, x.spans["a"].fresh, x.spans["a"].end) for x in w] == [
        (0, 0, 30), (22, 30, 53), (45, 53, 75)
    ]


def constant_sequence_model(x, t, cond=None):
    """Exact x0 of data whose frames all equal one c ~ N(0, I) per sequence (and modality): the
    posterior mean of c; a clean (level 0) frame pins c to its value."""
    out = {}
    for m, v in x.items():
        a, s = (c[..., None] for c in X0.alpha_sigma(t[m]))  # [B, T, 1]
        clean = (t[m] == 0)[..., None].float()
        pinned = (v * clean).sum(1) / clean.sum(1).clamp_min(1)  # [B, C]
        prec = torch.where(clean.bool(), torch.zeros_like(a), a**2 / s.clamp_min(1e-12) ** 2)
        post = (prec * v / a.clamp_min(1e-12)).sum(1) / (1 + prec.sum(1))
        c = torch.where(clean.sum(1) > 0, pinned, post)
        out[m] = c[:, None].expand_as(v)
    return out


def test_overlap_carries_the_past_into_each_window():
    specs = {"audio": ModalitySpec(3, 2.0)}
    kw = {
        "seconds": 12.0,
        "window_seconds": 4.0,
        "steps": 6,
        "process": X0,
        "sampler": "ddim",
        "batch_size": 2,
        "progress": False,
        "generator": torch.Generator().manual_seed(0),
    }
    out = sample_long(constant_sequence_model, joint(("audio",)), specs, hop_seconds=3.0, **kw)["audio"]
    assert out.shape == (2, 24, 3)
    assert (out - out[:, :1]).abs().max() < 1e-5  # one constant across all 4 windows
    # without overlap every window would draw its own constant
    cut = sample_long(constant_sequence_model, joint(("audio",)), specs, hop_seconds=4.0, **kw)["audio"]
    assert (cut[:, 8:] - cut[:, :1]).abs().amax() > 0.1


def test_condition_and_prefix_stay_given_across_windows():
    specs = {"audio": ModalitySpec(3, 2.0), "motion": ModalitySpec(3, 2.0)}
    motion = torch.randn(2, 22, 3)  # 11 s

    def follows_motion(x, t, cond=None):  # audio x0 = tanh(motion) frame by frame
        return {"audio": torch.tanh(x["motion"]), "motion": x["motion"]}

    out = sample_long(
        follows_motion,
        dance2music(),
        specs,
        {"motion": motion},
        seconds=11.0,
        window_seconds=4.0,
        hop_seconds=2.0,
        steps=4,
        process=X0,
        progress=False,
    )
    assert torch.equal(out["motion"], motion)
    torch.testing.assert_close(out["audio"], torch.tanh(motion))
    audio = torch.randn(1, 22, 3)
    out = sample_long(
        constant_sequence_model,
        continuation(("audio",), prefix=1.0),
        specs,
        {"audio": audio},
        seconds=11.0,
        window_seconds=4.0,
        hop_seconds=2.5,
        steps=4,
        process=X0,
        progress=False,
    )
    assert torch.equal(out["audio"][:, :2], audio[:, :2])
    torch.testing.assert_close(out["audio"][:, 2:], audio[:, :2].mean(1, keepdim=True).expand(1, 20, 3))
