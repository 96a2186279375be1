"""Self-attention with RoPE and cross-attention to condition tokens, both on F.scaled_dot_product_attention.

No mask is ever passed to self-attention (every token of the sequence is real; dropped tokens
are removed, not masked), so SDPA can take its flash / memory-efficient path: memory stays
linear in the number of tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mmgen.dit.rope import apply_rope


class HeadRMSNorm(nn.Module):
    """RMS norm over the head dimension with a learned scale (qk-norm)."""

    def __init__(self, head_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # weight follows the activations' dtype so bf16 autocast keeps the fused kernel
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the joint token sequence, RoPE on q and k."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"d_model={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = HeadRMSNorm(dim // num_heads) if qk_norm else nn.Identity()
        self.k_norm = HeadRMSNorm(dim // num_heads) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x [B, N, D], cos/sin [N, Dh] or [B, N, Dh] (rope_cos_sin) -> [B, N, D]."""
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        q = apply_rope(self.q_norm(q), cos, sin)  # [B, H, N, Dh]
        k = apply_rope(self.k_norm(k), cos, sin)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, H, N, Dh]
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class CrossAttention(nn.Module):
    """Tokens attend to condition tokens (already projected to `dim`); no RoPE."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q_norm = HeadRMSNorm(dim // num_heads) if qk_norm else nn.Identity()
        self.k_norm = HeadRMSNorm(dim // num_heads) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x [B, N, D], context [B, L, D], context_mask [B, L] bool (True = attend) -> [B, N, D].

        An example whose context is entirely masked gets zero from this layer (instead of the NaN
        a softmax over nothing would give).
        """
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.num_heads)
        k, v = rearrange(self.kv(context), "b l (two h d) -> two b h l d", two=2, h=self.num_heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if context_mask is None:
            out = F.scaled_dot_product_attention(q, k, v)  # [B, H, N, Dh]
            return self.proj(rearrange(out, "b h n d -> b n (h d)"))
        has_any = context_mask.any(dim=1)  # [B]
        mask = context_mask | ~has_any[:, None]  # all-masked rows attend everywhere, then get zeroed
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # [B, H, N, Dh]
        out = self.proj(rearrange(out, "b h n d -> b n (h d)"))  # [B, N, D]
        return out * has_any[:, None, None].to(out.dtype)
