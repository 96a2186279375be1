"""Named, weighted losses of the video VAE, a small patch discriminator, and a pure-torch training step.

    l1           mean |x_hat - x| over pixels (frames in [-1, 1])
    l2           mean (x_hat - x)^2 (off by default; it speeds up the first steps on mostly-flat
                 frames, where L1's gradient is a constant-size sign that favours the background)
    gradient     the structural term: L1 between the spatial finite differences (d/dx, d/dy) of
                 x_hat and x. Chosen over SSIM because ToyDance frames (and stick-figure renders
                 in general) are 1-2 px lines on flat backgrounds: SSIM's local variances are ~0 on
                 the flat areas, where its stabilizing constants dominate, and its 11x11 Gaussian
                 window smears a 1-px line; the gradient term puts its whole weight on the line
                 edges, is 0 on a clean background (so it also punishes blotches there) and is
                 cheap. Thin-line reconstructions stay sharp instead of fading into the background.
    temporal     L1 between the frame-to-frame differences of x_hat and x (off by default). The
                 dance's beat lives in them (a pause is a run of near-zero differences; the
                 frame-difference beat alignment reads exactly that), and per-pixel losses leave
                 a decoder free to smear a pause into its neighbours, which costs them little.
    kl           KL(q || N(0, I)) per latent element
    adversarial  hinge generator loss against `PatchDiscriminator` (frame-wise 2-D PatchGAN),
                 only when a discriminator is given and `weights.adversarial > 0`
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mmgen.core.pretrained import PretrainedMixin
from mmgen.modalities.base import DiagonalGaussian, LossWeights
from mmgen.modalities.video import VideoVAE
from mmgen.modalities.video_codec import frames_to_features


@dataclass(frozen=True)
class VideoLossWeights(LossWeights):
    l1: float = 1.0
    l2: float = 0.0
    gradient: float = 1.0
    kl: float = 1e-4
    adversarial: float = 0.0
    temporal: float = 0.0


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of horizontal and vertical pixel differences; [..., H, W, C] channels-last."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    dx = (pred[..., :, 1:, :] - pred[..., :, :-1, :]) - (target[..., :, 1:, :] - target[..., :, :-1, :])
    dy = (pred[..., 1:, :, :] - pred[..., :-1, :, :]) - (target[..., 1:, :, :] - target[..., :-1, :, :])
    return 0.5 * (dx.abs().mean() + dy.abs().mean())


def temporal_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of consecutive-frame differences; frames [B, T, H, W, C] (0 when T < 2)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.shape[1] < 2:
        return pred.new_zeros(())
    return ((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])).abs().mean()


class PatchDiscriminator(PretrainedMixin, nn.Module):
    """Frame-wise PatchGAN: [B, T, H, W, 3] in [-1, 1] -> patch logits [B*T, 1, H/2^n, W/2^n]."""

    def __init__(self, channels: int = 32, num_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = channels
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GroupNorm(math.gcd(2 * c, 8), 2 * c), nn.LeakyReLU(0.2)]
            c *= 2
        layers.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(rearrange(frames, "b t h w c -> (b t) c h w"))


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def _as_features(frames: torch.Tensor) -> torch.Tensor:
    return frames_to_features(frames) if frames.dtype == torch.uint8 else frames


def video_vae_losses(
    vae: VideoVAE,
    frames: torch.Tensor,
    weights: VideoLossWeights = VideoLossWeights(),
    discriminator: PatchDiscriminator | None = None,
    sample: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Named losses for frames [B, T, H, W, 3] (uint8, or float in [-1, 1]); "loss" is the weighted sum.

    Also returns the reconstruction (for the discriminator step).
    """
    x = _as_features(frames).to(next(vae.parameters()).device)
    q = DiagonalGaussian(*vae.encode(x))
    z = q.sample(generator) if sample else q.mode()
    recon = vae.decode(z, x.shape[1])
    losses = {
        "l1": (recon - x).abs().mean(),
        "l2": (recon - x).pow(2).mean(),
        "gradient": gradient_loss(recon, x),
        "temporal": temporal_loss(recon, x),
        "kl": q.kl().mean() / z[0].numel(),
    }
    if discriminator is not None and weights.adversarial > 0:
        losses["adversarial"] = -discriminator(recon).mean()
    losses["loss"] = sum(getattr(weights, k) * v for k, v in losses.items())
    return losses, recon


def _clip(optimizer: torch.optim.Optimizer, max_norm: float | None) -> None:
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_norm)


def video_training_step(
    vae: VideoVAE,
    optimizer: torch.optim.Optimizer,
    frames: torch.Tensor,
    weights: VideoLossWeights = VideoLossWeights(),
    discriminator: PatchDiscriminator | None = None,
    disc_optimizer: torch.optim.Optimizer | None = None,
    max_grad_norm: float | None = 1.0,
) -> dict[str, torch.Tensor]:
    """One VAE step (and, with a discriminator, one hinge discriminator step); detached losses.

    Gradients are clipped to `max_grad_norm` (per network): the zero-initialized convs see
    DC-heavy inputs, and unclipped early steps overshoot.
    """
    if (discriminator is None) != (disc_optimizer is None):
        raise ValueError("pass both discriminator and disc_optimizer, or neither")
    vae.train()
    optimizer.zero_grad(set_to_none=True)
    if discriminator is not None:
        discriminator.requires_grad_(False)  # the generator step must not touch D's weights
    try:
        losses, recon = video_vae_losses(vae, frames, weights, discriminator)
        losses["loss"].backward()
    finally:
        if discriminator is not None:
            discriminator.requires_grad_(True)
    _clip(optimizer, max_grad_norm)
    optimizer.step()
    if discriminator is not None and disc_optimizer is not None:
        discriminator.train()
        disc_optimizer.zero_grad(set_to_none=True)
        real = _as_features(frames).to(recon.device)
        d_loss = hinge_discriminator_loss(discriminator(real), discriminator(recon.detach()))
        d_loss.backward()
        _clip(disc_optimizer, max_grad_norm)
        disc_optimizer.step()
        losses["discriminator"] = d_loss
    return {k: v.detach() for k, v in losses.items()}
