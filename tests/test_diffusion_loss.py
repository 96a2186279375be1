"""The masked denoising loss, computed by hand."""

import math

import pytest
import torch

from mmgen.core.cond import Cond
from mmgen.diffusion import NoiseLevels, VPCosine, denoising_loss

B, C = 2, 3


def model(x, t, cond=None):
    return {m: 0.3 * v for m, v in x.items()}


def hand_loss(x0, levels, seed, weight=lambda t: torch.ones_like(t)):
    """v-target MSE on VP-cosine, by the formulas, with the loss's noise draws replayed."""
    g = torch.Generator().manual_seed(seed)
    losses = {}
    for m in sorted(levels):
        eps = torch.randn(x0[m].shape, generator=g)
        t = levels[m]
        a, s = torch.cos(math.pi * t / 2)[..., None], torch.sin(math.pi * t / 2)[..., None]
        x_t = a * x0[m] + s * eps
        err = ((0.3 * x_t - (a * eps - s * x0[m])) ** 2).mean(-1)  # [B, T]
        noisy = t > 0
        losses[m] = (err * weight(t))[noisy].mean() if noisy.any() else torch.tensor(0.0)
    return losses


def test_loss_matches_hand_computation_and_masks_clean_tokens():
    x0 = {"audio": torch.randn(B, 6, C), "motion": torch.randn(B, 3, C)}
    levels = {
        "audio": torch.tensor([[0.0, 0.0, 0.3, 0.3, 0.9, 0.9], [0.5] * 6]),
        "motion": torch.tensor([[0.0, 0.2, 0.7], [0.0, 0.0, 0.0]]),
    }  # example 1: no noisy motion
    total, logs = denoising_loss(
        model, VPCosine(prediction="v"), x0, NoiseLevels(levels), generator=torch.Generator().manual_seed(5)
    )
    ref = hand_loss(x0, levels, 5)
    for m in ref:
        torch.testing.assert_close(logs[f"loss/{m}"], ref[m])
    torch.testing.assert_close(total, (ref["audio"] + ref["motion"]) / 2)
    # motion's loss is the mean over its 2 noisy tokens (example 1 has none and adds nothing)
    g = torch.Generator().manual_seed(5)
    _ = torch.randn(x0["audio"].shape, generator=g)
    eps = torch.randn(x0["motion"].shape, generator=g)[0, 1:]
    t = levels["motion"][0, 1:, None]
    a, s = torch.cos(math.pi * t / 2), torch.sin(math.pi * t / 2)
    tokens = ((0.3 * (a * x0["motion"][0, 1:] + s * eps) - (a * eps - s * x0["motion"][0, 1:])) ** 2).mean(-1)
    torch.testing.assert_close(logs["loss/motion"], tokens.mean())


def test_video_latents_average_each_frame_over_its_sites():
    """[B, T, h, w, C]: one token (level) per frame; its error is the mean over h, w and C."""
    x0 = {"video": torch.randn(B, 3, 2, 2, C)}
    t = torch.tensor([[0.0, 0.5, 0.5], [0.2, 0.2, 0.0]])
    _, logs = denoising_loss(
        model, VPCosine(prediction="v"), x0, NoiseLevels({"video": t}), generator=torch.Generator().manual_seed(4)
    )
    flat = {"video": x0["video"].reshape(B, 3, 4 * C)}  # same numbers, sites folded into channels
    torch.testing.assert_close(logs["loss/video"], hand_loss(flat, {"video": t}, 4)["video"])


def test_clean_tokens_do_not_reach_the_loss():
    x0 = {"audio": torch.randn(B, 4, C)}
    levels = NoiseLevels({"audio": torch.tensor([[0.0, 0.4, 0.0, 0.8], [0.0, 0.0, 0.6, 0.6]])})

    def wild(x, t, cond=None):  # garbage at clean tokens only
        clean = (t["audio"] == 0)[..., None]
        return {"audio": torch.where(clean, torch.full_like(x["audio"], 1e6), 0.3 * x["audio"])}

    a = denoising_loss(model, VPCosine(prediction="v"), x0, levels, generator=torch.Generator().manual_seed(0))[0]
    b = denoising_loss(wild, VPCosine(prediction="v"), x0, levels, generator=torch.Generator().manual_seed(0))[0]
    torch.testing.assert_close(a, b)


def test_a_modality_clean_everywhere_does_not_dilute_the_total():
    x0 = {"audio": torch.randn(B, 4, C), "motion": torch.randn(B, 4, C)}
    levels = {"audio": torch.full((B, 4), 0.5), "motion": torch.zeros(B, 4)}
    total, logs = denoising_loss(
        model, VPCosine(prediction="v"), x0, NoiseLevels(levels), generator=torch.Generator().manual_seed(1)
    )
    assert logs["loss/motion"] == 0
    torch.testing.assert_close(total, logs["loss/audio"])
    total_w, _ = denoising_loss(
        model,
        VPCosine(prediction="v"),
        x0,
        NoiseLevels({"audio": levels["audio"], "motion": torch.full((B, 4), 0.5)}),
        generator=torch.Generator().manual_seed(1),
        modality_weights={"motion": 3.0},
    )
    _, logs2 = denoising_loss(
        model,
        VPCosine(prediction="v"),
        x0,
        NoiseLevels({"audio": levels["audio"], "motion": torch.full((B, 4), 0.5)}),
        generator=torch.Generator().manual_seed(1),
    )
    torch.testing.assert_close(total_w, (logs2["loss/audio"] + 3 * logs2["loss/motion"]) / 4)


def test_min_snr_weighting_enters_the_loss():
    x0 = {"audio": torch.randn(B, 4, C)}
    t = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.9, 0.9, 0.3, 0.0]])
    proc = VPCosine(prediction="v", weighting="min_snr", min_snr_gamma=5.0)
    _, logs = denoising_loss(
        model, proc, x0, NoiseLevels({"audio": t}), generator=torch.Generator().manual_seed(2)
    )

    def w(tt):
        snr = (torch.cos(math.pi * tt / 2) / torch.sin(math.pi * tt / 2).clamp_min(1e-12)) ** 2
        return torch.minimum(snr, torch.full_like(snr, 5.0)) / (snr + 1)

    torch.testing.assert_close(logs["loss/audio"], hand_loss(x0, {"audio": t}, 2, w)["audio"])


def test_absent_modalities_and_null_text_reach_the_model_correctly():
    seen = {}

    def spy(x, t, cond=None):
        seen["keys"], seen["cond"] = set(x), cond
        return model(x, t)

    x0 = {"audio": torch.randn(B, 4, C), "motion": torch.randn(B, 4, C)}
    levels = NoiseLevels(
        {"audio": torch.full((B, 4), 0.5)}, absent={"motion"}, text_null=torch.tensor([True, False])
    )
    cond, null = Cond(context=torch.ones(B, 1, 2)), Cond(context=torch.zeros(1, 1, 2))
    denoising_loss(spy, VPCosine(prediction="v"), x0, levels, cond, null_cond=null)
    assert seen["keys"] == {"audio"}
    assert seen["cond"].context[:, 0, 0].tolist() == [0.0, 1.0]


def test_bad_inputs_raise():
    x0 = {"audio": torch.randn(B, 4, C)}
    lv = NoiseLevels({"audio": torch.full((B, 4), 0.5)})
    with pytest.raises(ValueError, match="missing"):
        denoising_loss(model, VPCosine(prediction="v"), {"motion": x0["audio"]}, lv)
    with pytest.raises(ValueError, match="unexpected"):
        denoising_loss(model, VPCosine(prediction="v"), {**x0, "video": x0["audio"]}, lv)
    with pytest.raises(ValueError, match="do not match levels"):
        denoising_loss(model, VPCosine(prediction="v"), {"audio": torch.randn(B, 5, C)}, lv)
    with pytest.raises(ValueError, match="null_cond"):
        denoising_loss(
            model,
            VPCosine(prediction="v"),
            x0,
            NoiseLevels(lv.levels, text_null=torch.tensor([True, False])),
            Cond(context=torch.ones(B, 1, 2)),
        )
    with pytest.raises(ValueError, match="returned modalities"):
        denoising_loss(lambda x, t, c: {"motion": x["audio"]}, VPCosine(prediction="v"), x0, lv)
