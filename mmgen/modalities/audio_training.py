"""One pure-torch optimisation step for the audio VAEs and the vocoder, with an optional GAN.

Lightning systems (mmgen.train) call the same pieces; tests use `train_step` directly:

    step = train_step(vae_forward(vae, wave), loss, opt)                       # reconstruction + KL
    step = train_step(vocoder_forward(voc, wave), loss, opt, disc, opt_disc)   # + adversarial / FM

Order inside a step (DAC / Vocos): the discriminator is updated on the detached prediction, then the
generator on the reconstruction terms plus the adversarial and feature-matching terms of the
freshly updated discriminator (its parameters frozen for that backward pass).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmgen.modalities.audio_losses import AudioReconstructionLoss, discriminator_adversarial_loss

# () -> (prediction, target, posterior mean or None, posterior logvar or None)
ForwardFn = Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]]


def vae_forward(model: nn.Module, x: torch.Tensor, sample_posterior: bool = True) -> ForwardFn:
    """For `MelVAE` (x = log-mel) and `WaveVAE` (x = waveform): reconstruct x through a posterior sample."""

    def run() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        recon, mean, logvar = model(x, sample_posterior=sample_posterior)
        return recon, x, mean, logvar

    return run


def vocoder_forward(vocoder: nn.Module, wave: torch.Tensor) -> ForwardFn:
    """For `VocosVocoder`: wave [B, S] -> log-mel -> vocoded [B, S], target the input."""

    def run() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        return vocoder.reconstruct(wave), wave, None, None

    return run


def train_step(
    forward: ForwardFn,
    loss_fn: AudioReconstructionLoss,
    optimizer: torch.optim.Optimizer,
    discriminator: nn.Module | None = None,
    disc_optimizer: torch.optim.Optimizer | None = None,
    max_grad_norm: float | None = None,
) -> dict[str, torch.Tensor]:
    """Run one step; returns every named loss term (detached, no host sync) for logging."""
    if (discriminator is None) != (disc_optimizer is None):
        raise ValueError("train_step: pass both discriminator and disc_optimizer, or neither")
    pred, target, mean, logvar = forward()
    logs: dict[str, torch.Tensor] = {}
    if discriminator is not None and disc_optimizer is not None:
        d_terms = discriminator_adversarial_loss(
            discriminator(target), discriminator(pred.detach()), loss_fn.adv_kind
        )
        disc_optimizer.zero_grad(set_to_none=True)
        d_terms["disc"].backward()
        disc_optimizer.step()
        logs.update(d_terms)
        discriminator.requires_grad_(False)
    try:
        terms = loss_fn(pred, target, mean, logvar, discriminator)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
    finally:
        if discriminator is not None:
            discriminator.requires_grad_(True)
    if max_grad_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    return {k: v.detach() for k, v in {**terms, **logs}.items()}
