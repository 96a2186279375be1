"""Self-attention with RoPE and cross-attention to condition tokens, both on F.scaled_dot_product_attention.

No mask is ever passed to self-attention (every token of the sequence is real; dropped tokens
are removed, not masked), so SDPA can take its flash / memory-efficient path: memory stays
linear in the number of tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.dit.qknorm import qk_norm_rope
from mmgen.dit.rope import apply_rope


class HeadRMSNorm(nn.Module):
    """RMS norm over the head dimension with a learned scale (qk-norm).

    The attention modules hold their q/k scales here (so checkpoints keep their keys) but apply
    them through `mmgen.dit.qknorm.qk_norm_rope`, fused with RoPE; this forward is the reference."""

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
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads)  # [B, N, 3, H, Dh]
        if isinstance(self.q_norm, HeadRMSNorm):
            weight = torch.stack([self.q_norm.weight, self.k_norm.weight])  # [2, Dh]
            q, k, v = qk_norm_rope(
                qkv, weight, cos, sin, self.q_norm.eps, heads_major=(1,)
            )  # [B, H, N, Dh] each
        else:
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # [B, H, N, Dh] each
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, H, N, Dh]
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


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
        b, n, d = x.shape
        q = self.q(x).view(b, n, 1, self.num_heads, d // self.num_heads)  # [B, N, 1, H, Dh]
        kv = self.kv(context).view(
            context.shape[0], context.shape[1], 2, self.num_heads, d // self.num_heads
        )  # [B, L, 2, H, Dh]
        if isinstance(self.q_norm, HeadRMSNorm):
            (q,) = qk_norm_rope(q, self.q_norm.weight[None], eps=self.q_norm.eps)  # [B, H, N, Dh]
            k, v = qk_norm_rope(kv, self.k_norm.weight[None], eps=self.k_norm.eps)  # [B, H, L, Dh] each
        else:
            q, (k, v) = q[:, :, 0].transpose(1, 2), kv.permute(2, 0, 3, 1, 4)
        if context_mask is None:
            out = F.scaled_dot_product_attention(q, k, v)  # [B, H, N, Dh]
            return self.proj(out.transpose(1, 2).reshape(b, n, d))
        has_any = context_mask.any(dim=1)  # [B]
        mask = context_mask | ~has_any[:, None]  # all-masked rows attend everywhere, then get zeroed
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # [B, H, N, Dh]
        out = self.proj(out.transpose(1, 2).reshape(b, n, d))  # [B, N, D]
        return out * has_any[:, None, None].to(out.dtype)
