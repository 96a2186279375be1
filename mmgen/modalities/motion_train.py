"""Named, weighted losses of the motion VAE and a minimal pure-torch training step.

The Lightning system (mmgen.train) calls `motion_vae_losses` and logs every entry under its
name; tests call `motion_training_step` directly.

    features      MSE of the normalized feature vectors (includes the contact channels)
    positions     MSE of world joint positions rebuilt from the decoded features (root velocity
                  integrated from the target's frame-0 state, so drift is penalized), divided by
                  codec.position_scale^2
    velocities    MSE of per-frame joint displacements / codec.velocity_scale^2
    foot_contact  EDGE's foot-skate term: squared displacement of the decoded feet at frames
                  where the target foot is in contact (target contacts, not predicted ones, so
                  the term is well defined from the first step), / codec.velocity_scale^2

The scales are fitted with the codec's normalization stats, so every term is unit-free (metres or
pixels alike) and the default weights of 1 give them comparable size.
    kl            KL(q || N(0, I)) per latent element
    rhythm        bidirectional InfoNCE at motion beats against frozen music latents
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmgen.modalities.base import DiagonalGaussian, LossWeights
from mmgen.modalities.motion import MotionVAE
from mmgen.modalities.motion_rhythm import RhythmContrastive


@dataclass(frozen=True)
class MotionLossWeights(LossWeights):
    features: float = 1.0
    positions: float = 1.0
    velocities: float = 1.0
    foot_contact: float = 1.0
    kl: float = 1e-4
    rhythm: float = 0.1


def _displacement(joints: torch.Tensor) -> torch.Tensor:
    """[B, T, J, D] -> per-frame displacement [B, T - 1, J, D]."""
    return joints[:, 1:] - joints[:, :-1]


def motion_vae_losses(
    vae: MotionVAE,
    joints: torch.Tensor,
    weights: MotionLossWeights = MotionLossWeights(),
    rhythm: RhythmContrastive | None = None,
    music_latents: torch.Tensor | None = None,
    beat_index: torch.Tensor | None = None,
    beat_mask: torch.Tensor | None = None,
    sample: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """All named losses for a batch of joints [B, T, J, D]; "loss" is their weighted sum.

    The rhythm term needs `rhythm`, `music_latents` [B, T', C_music] at the VAE's latent rate and
    beats from `beat_windows`; without them it is absent from the dict.
    """
    codec = vae.codec
    joints = codec.check_joints(joints, check_finite=False).to(codec.feature_mean.device)  # no host sync
    target = codec.encode(joints, check_finite=False)  # [B, T, F]
    q = DiagonalGaussian(*vae.encode(target))
    z = q.sample(generator) if sample else q.mode()
    recon = vae.decode(z, joints.shape[1])  # [B, T, F]
    rebuilt = codec.decode(recon, codec.initial_state(joints, check_finite=False))  # [B, T, J, D]

    pos2, vel2 = codec.position_scale.square(), codec.velocity_scale.square()
    losses = {
        "features": F.mse_loss(recon, target),
        "positions": F.mse_loss(rebuilt, joints) / pos2,
        "velocities": F.mse_loss(_displacement(rebuilt), _displacement(joints)) / vel2,
    }
    feet = list(codec.layout.feet)
    contact = codec.contacts(joints)[:, :-1]  # [B, T - 1, F], 1 where the foot stands still
    skate = _displacement(rebuilt[:, :, feet]).pow(2).mean(-1)  # [B, T - 1, F]
    losses["foot_contact"] = (skate * contact).sum() / contact.sum().clamp_min(1.0) / vel2
    losses["kl"] = q.kl().mean() / z[0].numel()
    if rhythm is not None:
        if music_latents is None or beat_index is None or beat_mask is None:
            raise ValueError("the rhythm term needs music_latents, beat_index and beat_mask")
        if music_latents.shape[1] != z.shape[1]:
            raise ValueError(
                f"music latents have {music_latents.shape[1]} frames, motion latents {z.shape[1]}: "
                "both must run at the same latent rate over the same clip"
            )
        losses["rhythm"] = rhythm(q.mean, music_latents, beat_index, beat_mask)
    losses["loss"] = sum(getattr(weights, k) * v for k, v in losses.items())
    return losses


def motion_training_step(
    vae: MotionVAE,
    optimizer: torch.optim.Optimizer,
    joints: torch.Tensor,
    weights: MotionLossWeights = MotionLossWeights(),
    max_grad_norm: float | None = 1.0,
    **rhythm_inputs: torch.Tensor | RhythmContrastive | None,
) -> dict[str, torch.Tensor]:
    """One optimizer step on `motion_vae_losses` (gradients clipped to `max_grad_norm` over all
    optimized parameters); returns the detached losses."""
    vae.train()
    optimizer.zero_grad(set_to_none=True)
    losses = motion_vae_losses(vae, joints, weights, **rhythm_inputs)  # type: ignore[arg-type]
    losses["loss"].backward()
    if max_grad_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    return {k: v.detach() for k, v in losses.items()}
