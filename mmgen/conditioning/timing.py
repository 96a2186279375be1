"""Timing conditions (Stable Audio): where the window starts and how long the whole piece is.

Each number x becomes one prefix token:

    u = (clamp(x, min, max) - min) / (max - min)                         in [0, 1]
    φ(u) = [u, sin(2π u w), cos(2π u w)]     w ∈ R^{fourier_dim/2}, learned (init N(0, 1))
    token = Linear(fourier_dim + 1, dim)(φ(u))

With keys ("seconds_start", "seconds_total") a batch gets prefix [B, 2, dim]: the model learns
where silence should begin (seconds_total < window) and can continue from an offset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mmgen.conditioning.base import Conditioner, Features, as_float_tensor, get_values


class NumberEmbedder(nn.Module):
    """u [...] in [0, 1] -> [..., dim]: learned Fourier features then a Linear."""

    def __init__(self, dim: int, fourier_dim: int = 256) -> None:
        super().__init__()
        if fourier_dim < 2 or fourier_dim % 2:
            raise ValueError(f"fourier_dim must be an even number >= 2, got {fourier_dim}")
        self.weights = nn.Parameter(torch.randn(fourier_dim // 2))
        self.linear = nn.Linear(fourier_dim + 1, dim)

    def features(self, u: torch.Tensor) -> torch.Tensor:
        """φ(u): [...] -> [..., fourier_dim + 1]."""
        u = u.unsqueeze(-1).to(self.weights.dtype)  # [..., 1]
        freqs = u * self.weights * (2 * math.pi)  # [..., fourier_dim / 2]
        return torch.cat([u, freqs.sin(), freqs.cos()], dim=-1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(u))


class TimingConditioner(Conditioner):
    """One prefix token per number in `keys`.

    Args:
        dim: output width (the DiT's prefix_dim).
        keys: batch keys holding one number per example (seconds).
        min_value, max_value: numbers are clamped to this range and mapped to [0, 1]
            (Stable Audio: 0 and 512 s).
        fourier_dim: width of the learned Fourier features.
        target: "prefix" (one token per number) or "global" (their mean, AdaLN).
    """

    target = "prefix"

    def __init__(
        self,
        dim: int,
        keys: tuple[str, ...] | list[str] = ("seconds_start", "seconds_total"),
        min_value: float = 0.0,
        max_value: float = 512.0,
        fourier_dim: int = 256,
        target: str | None = None,
    ) -> None:
        keys = tuple(keys)
        if not keys:
            raise ValueError("TimingConditioner: give at least one key")
        if not max_value > min_value:
            raise ValueError(
                f"TimingConditioner: max_value must exceed min_value, got {min_value}, {max_value}"
            )
        super().__init__(dim, num_null_tokens=len(keys), target=target)
        self._keys, self.min_value, self.max_value = keys, float(min_value), float(max_value)
        self.embedders = nn.ModuleList(NumberEmbedder(dim, fourier_dim) for _ in keys)

    @property
    def keys(self) -> tuple[str, ...]:
        return self._keys

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.clamp(self.min_value, self.max_value) - self.min_value) / (self.max_value - self.min_value)

    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        device = device or self.device
        cols = [
            self.normalize(
                as_float_tensor(get_values(batch, k, type(self).__name__), f"TimingConditioner {k!r}", device)
            )
            for k in self._keys
        ]
        sizes = {c.numel() for c in cols}
        if len(sizes) != 1:
            raise ValueError(
                f"TimingConditioner: keys {self._keys} have different batch sizes {sorted(sizes)}"
            )
        u = torch.stack(cols, dim=1)  # [B, K]
        return Features(u[..., None], torch.ones_like(u, dtype=torch.bool))

    def project(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        u = features.values[..., 0]  # [B, K]
        tokens = torch.stack([emb(u[:, k]) for k, emb in enumerate(self.embedders)], dim=1)  # [B, K, dim]
        return tokens, features.mask
