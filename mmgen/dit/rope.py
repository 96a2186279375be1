"""Rotary position embedding over the shared time axis (seconds) and, for video, patch rows/columns.

The head dimension is split into rotation pairs. In a model without video every pair rotates
with time. With a video modality, half of the pairs rotate with time and a quarter each with the
patch row y and column x (axial RoPE); sequence tokens have y = x = 0, so their spatial pairs do
not rotate and only the time difference matters between an audio token and a video token.

Time is in seconds, not frame indices, so the frequencies are angular speeds in rad/s: periods
spaced geometrically from `min_period` (0.1 s: finer than one latent frame at <= 20 Hz, about
two frames at 43 Hz) to `max_period` (1000 s: far longer than any window, so distant tokens stay
distinguishable), the same 1e4 dynamic range as the usual base-10000 RoPE.
"""

from __future__ import annotations

import math

import torch

SPATIAL_THETA = 100.0  # spatial positions are patch indices (small grids); base 100 spans them well


def rope_frequencies(
    head_dim: int, spatial: bool, min_period: float = 0.1, max_period: float = 1000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Angular frequencies (float64) for the time pairs (rad/s) and for each spatial axis (rad/patch).

    Returns:
        omega_t: [P_t], omega_s: [P_s] with P_t + 2 * P_s = head_dim // 2 (P_s = 0 without video).
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    pairs = head_dim // 2
    n_s = pairs // 4 if spatial else 0
    if spatial and n_s == 0:
        raise ValueError(f"axial RoPE for video needs head_dim >= 8, got {head_dim}")
    n_t = pairs - 2 * n_s
    if not 0 < min_period < max_period:
        raise ValueError(
            f"RoPE periods must satisfy 0 < min_period < max_period, got {min_period}, {max_period}"
        )
    if n_t == 1:
        periods = torch.tensor([min_period], dtype=torch.float64)
    else:
        periods = torch.logspace(math.log10(min_period), math.log10(max_period), n_t, dtype=torch.float64)
    omega_t = 2 * math.pi / periods
    omega_s = SPATIAL_THETA ** (-torch.arange(n_s, dtype=torch.float64) / max(n_s, 1))
    return omega_t, omega_s


def rope_angles(
    seconds: torch.Tensor, y: torch.Tensor, x: torch.Tensor, omega_t: torch.Tensor, omega_s: torch.Tensor
) -> torch.Tensor:
    """Rotation angle of every pair for tokens at (seconds, y, x): [..., N] -> [..., N, head_dim // 2].

    Computed in float64 so that angles of long clips (minutes at 63 rad/s) stay exact before cos/sin.
    """
    parts = [seconds.double()[..., None] * omega_t]
    if omega_s.numel():
        parts += [y.double()[..., None] * omega_s, x.double()[..., None] * omega_s]
    return torch.cat(parts, dim=-1)


def rope_cos_sin(angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Angles [..., N, Dh/2] -> (cos, signed sin), each [..., N, Dh] float32, as `apply_rope` takes them.

    cos = [cos, cos], sin = [-sin, sin]: widened once per layout, not once per block.
    """
    cos, sin = angles.cos().float(), angles.sin().float()
    return torch.cat([cos, cos], dim=-1), torch.cat([-sin, sin], dim=-1)


def apply_rope(q: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (q[..., i], q[..., i + Dh/2]) of q [B, H, N, Dh]: q * cos + [q2, q1] * sin.

    cos, sin: from `rope_cos_sin`, [N, Dh] (one layout for the batch) or [B, N, Dh] (per-example
    token subsets after dropping).
    """
    if cos.ndim == 2:
        cos, sin = cos[None, None], sin[None, None]  # [1, 1, N, Dh]
    else:
        cos, sin = cos[:, None], sin[:, None]  # [B, 1, N, Dh]
    q1, q2 = q.chunk(2, dim=-1)  # [B, H, N, Dh/2] each
    return q * cos.to(q.dtype) + torch.cat([q2, q1], dim=-1) * sin.to(q.dtype)
