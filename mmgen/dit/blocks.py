"""The DiT block with PER-TOKEN AdaLN-Zero, its AdaLN-SOLA variant, and the final layer.

Per-token modulation, computed per row and gathered inside the fused ops:

    c_rows   [B, R, D]   one conditioning vector per distinct (modality, segment) noise level
    mod_rows [B, R, 6D]  = AdaLN(c_rows)           <- the MLP runs on R rows, not N tokens
    shift/scale/gate for attention and MLP: [B, R, D] each, every token takes its row inside
    `norm_modulate` / `gated_residual` (mmgen.dit.modulation): no [B, N, 6D] tensor is kept

`row` is `TokenLayout.row` ([N], shared by the batch) or, after token dropping, [B, K].
"""

from __future__ import annotations

import torch
from torch import nn

from mmgen.dit.attention import CrossAttention, SelfAttention
from mmgen.dit.modulation import gated_residual, gather_rows, norm_modulate

__all__ = ["DiTBlock", "FinalLayer", "Mlp", "gather_rows"]


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DiTBlock(nn.Module):
    """Pre-norm transformer block: self-attn (RoPE), optional cross-attn, MLP; AdaLN-Zero per token.

    adaln="block": this block owns a Linear(D, 6D) on the conditioning rows (DiT).
    adaln="sola":  the model owns one shared Linear(D, 6D); this block adds a low-rank
                   correction up(down(c)) of rank `sola_rank` (EzAudio's AdaLN-SOLA).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        cross_attention: bool = False,
        adaln: str = "block",
        sola_rank: int = 32,
        qk_norm: bool = True,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads, qk_norm=qk_norm)
        self.cross = CrossAttention(dim, num_heads, qk_norm=qk_norm) if cross_attention else None
        self.norm_cross = nn.LayerNorm(dim, eps=1e-6) if cross_attention else None
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaln = adaln
        if adaln == "block":
            self.ada = nn.Linear(dim, 6 * dim)
        elif adaln == "sola":
            self.ada_down = nn.Linear(dim, sola_rank, bias=False)
            self.ada_up = nn.Linear(sola_rank, 6 * dim, bias=False)
        else:
            raise ValueError(f"adaln must be 'block' or 'sola', got {adaln!r}")
        # added to the modulation rows so they hold (shift, 1 + scale, gate) x 2 (not a parameter)
        self.register_buffer(
            "scale_one",
            torch.zeros(6, dim).index_fill_(0, torch.tensor([1, 4]), 1.0).reshape(-1),
            persistent=False,
        )

    def modulation_rows(self, c_rows: torch.Tensor, shared_rows: torch.Tensor | None) -> torch.Tensor:
        """c_rows [B, R, D] (already SiLU'd) -> [B, R, 6D]."""
        if self.adaln == "block":
            return self.ada(c_rows)
        return shared_rows + self.ada_up(self.ada_down(c_rows))  # type: ignore[operator]

    def forward(
        self,
        x: torch.Tensor,
        c_rows: torch.Tensor,
        row: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        shared_rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, N, D]; c_rows [B, R, D]; row [N] or [B, N]; cos/sin from the layout -> [B, N, D]."""
        rows = self.modulation_rows(c_rows, shared_rows) + self.scale_one  # [B, R, 6D]
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = rows.chunk(6, dim=-1)  # [B, R, D] each
        eps = self.norm1.eps
        x = gated_residual(x, gate_a, self.attn(norm_modulate(x, shift_a, scale_a, row, eps), cos, sin), row)
        if self.cross is not None:
            if context is None:
                raise ValueError("this block has cross-attention but no context was given")
            x = x + self.cross(self.norm_cross(x), context, context_mask)  # type: ignore[misc]
        return gated_residual(x, gate_m, self.mlp(norm_modulate(x, shift_m, scale_m, row, self.norm2.eps)), row)


class FinalLayer(nn.Module):
    """Per-token AdaLN (shift, scale) then LayerNorm; the per-modality output projections live in the model."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(dim, 2 * dim)

    def forward(self, x: torch.Tensor, c_rows: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c_rows).chunk(2, dim=-1)  # [B, R, D] each
        return norm_modulate(x, shift, scale + 1, row, self.norm.eps)
