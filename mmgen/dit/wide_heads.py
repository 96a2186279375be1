"""A read-out for tokens that hold more numbers than the DiT is wide.

With a linear output projection a token's prediction lies in a d_model-dimensional subspace of
its numbers. A video token of the ToyDance DiT (patch 4: 4 x 4 x 12 = 192 numbers, d_model 128)
is then never predicted in 64 directions: v = 0 there, the sampler keeps the starting noise, and
every generated frame carries its own noise (flicker, docs/experiments.md).

The wide head adds a small MLP over the token's hidden state *and its own noisy numbers*:

    pred = out_proj(h) + W2 · GELU(W1 · [h ; x_token])

The noisy numbers reach the output directly (the linear in-projection has already squeezed them
to d_model), so the missing directions can be predicted from what the token holds and from the
context in h, at every noise level (h carries it through the final AdaLN). W2 starts at zero: a
trained DiT gains the head as an exact no-op (`init_new: [wide_heads.]`) and keeps its
weights, unlike a new patch size, whose rebuilt projections relearn the video from scratch.
"""

from __future__ import annotations

import torch
from torch import nn


class WideTokenHead(nn.Module):
    """Residual MLP read-out of one modality: [h ; x_token] -> a correction to out_proj(h).

    `side_dim` sets another per-token input than the noisy token (the pose-map features of
    `mmgen.dit.map_stream`, read out the same way)."""

    def __init__(self, d_model: int, token_dim: int, hidden: int, side_dim: int | None = None) -> None:
        super().__init__()
        self.up = nn.Linear(d_model + (token_dim if side_dim is None else side_dim), hidden)
        self.act = nn.GELU(approximate="tanh")
        self.down = nn.Linear(hidden, token_dim)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """h [B, N, D], tokens (the noisy input, patchified, or the side input) [B, N, C_tok or side_dim]
        -> [B, N, C_tok]."""
        return self.down(self.act(self.up(torch.cat([h, tokens.to(h.dtype)], dim=-1))))
