"""Noise-level embedding: sinusoidal features of the level, then an MLP (as in DiT)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[...] levels -> [..., dim] features [cos(w_k s), sin(w_k s)], s = 1000 t, w_k = max_period^(-k/(dim/2)).

    The 1000 puts t in [0, 1] on DiT's integer-timestep scale, so the frequencies cover it the same way.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[..., None] * freqs  # [..., half]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    return emb


class LevelEmbedder(nn.Module):
    """Noise level t in [0, 1] -> a d_model vector: [...] -> [..., D]."""

    def __init__(self, dim: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.frequency_dim))
