"""Golden values (diffusers' `expected_slice` habit): a refactor that moves code must change no number.

Pinned on the code as it was before the package regrouping of December 2026:
a seeded tiny MultimodalDiT forward, a seeded MoNL draw, and 4-step generations of the shipped
ToyDance checkpoint. When a change is *meant* to move these numbers (a retrained checkpoint, a
new init), update them in the same commit and say why in its message.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgen.core.timeline import ModalitySpec
from mmgen.data.toydance import generate_clip
from mmgen.demo import default_pipeline_dir
from mmgen.diffusion.noise_levels import MoNLConfig, sample_levels
from mmgen.dit.model import MultimodalDiT
from mmgen.pipeline import Pipeline

SPECS = {
    "audio": ModalitySpec(8, 7.5),
    "motion": ModalitySpec(6, 7.5),
    "video": ModalitySpec(4, 3.75, (4, 4)),
}


def _inputs() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = {
        "audio": torch.randn(2, 15, 8, generator=g),
        "motion": torch.randn(2, 15, 6, generator=g),
        "video": torch.randn(2, 8, 4, 4, 4, generator=g),
    }
    t = {"audio": torch.full((2, 15), 0.3), "motion": torch.full((2, 15), 0.7), "video": torch.full((2, 8), 0.5)}
    return x, t


def test_seeded_dit_forward_is_unchanged() -> None:
    torch.manual_seed(0)
    dit = MultimodalDiT(SPECS, d_model=32, depth=2, num_heads=2, patch_size=2)
    with torch.no_grad():  # zero-initialised gates would hide most of the network: perturb every weight
        for p in dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, t = _inputs()
    with torch.no_grad():
        out = dit(x, t)
    expected = {
        "audio": ([-0.29646656, -0.13352935, -0.27840257, 0.43997064, -0.48850513, 0.32320496], -5.788062104),
        "motion": ([-0.39730889, -0.02091846, 0.31444299, -0.00658402, -0.25767824, 0.39312273], 6.800481802),
        "video": ([-0.04029514, -0.01347679, -0.25102744, -0.16044410, -0.09733877, -0.05612226], 24.549514425),
    }
    for m, (head, total) in expected.items():
        np.testing.assert_allclose(out[m].reshape(-1)[:6].numpy(), head, atol=2e-6, err_msg=m)
        assert out[m].double().sum().item() == pytest.approx(total, abs=2e-4), m


def test_seeded_monl_draw_is_unchanged() -> None:
    x, _ = _inputs()
    lv = sample_levels(x, SPECS, MoNLConfig(), generator=torch.Generator().manual_seed(3))
    a, m, v = 0.9957, 0.5284, 0.4056
    np.testing.assert_allclose(
        lv.levels["audio"][0].numpy(), [a] * 4 + [0] * 4 + [a] * 4 + [0] * 3, atol=1e-4
    )
    np.testing.assert_allclose(lv.levels["audio"][1].numpy(), [0.8502] * 15, atol=1e-4)
    np.testing.assert_allclose(
        lv.levels["motion"][0].numpy(), [m] * 4 + [0] * 4 + [m] * 4 + [0] * 3, atol=1e-4
    )
    assert not lv.levels["motion"][1].any()
    np.testing.assert_allclose(lv.levels["video"][0].numpy(), [v, v, 0, 0, v, v, 0, 0], atol=1e-4)
    np.testing.assert_allclose(lv.levels["video"][1].numpy(), [0.3517] * 8, atol=1e-4)
    assert lv.variant.tolist() == [1, 1] and lv.absent == frozenset()


@pytest.fixture(scope="module")
def shipped() -> Pipeline:
    return Pipeline.from_pretrained(default_pipeline_dir())


def test_four_step_dance2music_of_the_shipped_checkpoint_is_unchanged(shipped: Pipeline) -> None:
    clip = generate_clip(10000, seconds=4.0)
    g = shipped.generate("dance2music", {"motion": clip.joints}, steps=4, seed=0, progress=False)
    np.testing.assert_allclose(
        g.latents["audio"].reshape(-1)[:4].numpy(), [-1.86787641, -0.04431924, -0.29037392, -1.21674347], atol=2e-5
    )
    assert g.latents["audio"].double().sum().item() == pytest.approx(116.006513, abs=5e-3)
    assert g.audio.shape == (1, 88200)
    assert float(np.abs(g.audio).astype(np.float64).sum()) == pytest.approx(2969.0583, rel=1e-4)


def test_four_step_audio2video_of_the_shipped_checkpoint_is_unchanged(shipped: Pipeline) -> None:
    clip = generate_clip(10000, seconds=4.0)
    g = shipped.generate("audio2video", {"audio": clip.audio}, steps=4, seed=1, progress=False)
    np.testing.assert_allclose(
        g.latents["video"].reshape(-1)[:4].numpy(), [1.11614633, 1.00122774, 0.59021878, 0.22588667], atol=2e-5
    )
    assert g.latents["video"].double().sum().item() == pytest.approx(18368.0457, abs=2e-2)
    assert g.frames.shape == (1, 60, 64, 64, 3) and g.joints.shape == (1, 120, 24, 3)  # the dance it drew first
    assert int(g.frames.astype(np.int64).sum()) == pytest.approx(50850020, rel=1e-5)  # video from pose maps


def test_four_step_video2audio_with_the_sync_stream_is_unchanged(shipped: Pipeline) -> None:
    """Direct video -> audio: the DiT reads the video latents and the sync stream made from the frames."""
    clip = generate_clip(10000, seconds=4.0)
    g = shipped.generate("video2audio", {"video": clip.video}, steps=4, seed=2, progress=False,
                         task_kwargs={"via": []})
    np.testing.assert_allclose(
        g.latents["audio"].reshape(-1)[:4].numpy(), [-1.05376649, 0.12320915, -1.76110804, 0.1026157], atol=2e-5
    )
    assert g.latents["audio"].double().sum().item() == pytest.approx(17.746751, abs=5e-3)
    assert g.audio.shape == (1, 88200)
    assert float(np.abs(g.audio).astype(np.float64).sum()) == pytest.approx(4110.7386, rel=1e-4)
