"""The tiny video VAE learns ToyDance stick-figure video."""

import pytest
import torch

from mmgen.data.toydance import generate_clip
from mmgen.modalities.video import VideoVAE
from mmgen.modalities.video_codec import frames_to_features
from mmgen.modalities.video_train import VideoLossWeights, video_training_step

STEPS = 150
CROP = 4  # video frames per training example: one latent frame
LR = 3e-4


def _block_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean colour of every 4-frame x 8 x 8 block (what the untrained shortcut chain outputs)."""
    b, t = x.shape[:2]
    blocks = x.reshape(b, t // 2, 2, 8, 8, 8, 8, 3).mean((2, 4, 6), keepdim=True)
    return blocks.expand(b, t // 2, 2, 8, 8, 8, 8, 3).reshape(x.shape)


@pytest.mark.slow
def test_tiny_video_vae_learns_toydance():
    clips = [generate_clip(seed, 2.0) for seed in range(4)]
    x = frames_to_features(torch.stack([torch.from_numpy(c.video) for c in clips]))  # [4, 30, 64, 64, 3]
    figure = ((x - x[:, :, :1, :1]).abs().amax(-1, keepdim=True) > 0.05).float()  # stick-figure pixels
    vae = VideoVAE.tiny()
    opt = torch.optim.AdamW(vae.parameters(), lr=LR, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    weights = VideoLossWeights(l1=0.0, l2=1.0, gradient=1.0)

    def errors() -> tuple[float, float]:
        """(MSE over all pixels, MSE over the figure's pixels) of the posterior-mode reconstruction."""
        vae.eval()
        with torch.no_grad():
            mean, _ = vae.encode(x)
            sq = (vae.decode(mean, x.shape[1]).clamp(-1, 1) - x).pow(2)
        return float(sq.mean()), float((sq * figure).sum() / (3 * figure.sum()))

    err0, fig0 = errors()
    # at init the DC-AE shortcut chain alone reconstructs the 8x8x4 block means
    assert err0 == pytest.approx(float((_block_mean(x) - x).pow(2).mean()), rel=0.05)
    g = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        start = int(torch.randint(0, x.shape[1] - CROP + 1, (1,), generator=g))
        video_training_step(vae, opt, x[:, start : start + CROP], weights)
        sched.step()
    err, fig = errors()

    background = float((x[:, :, :1, :1] - x).pow(2).mean())  # every pixel = the corner colour
    assert err < 0.8 * err0, (err, err0)
    assert fig < 0.85 * fig0, (fig, fig0)  # the thin lines themselves got better
    assert err < 0.6 * background, (err, background)
