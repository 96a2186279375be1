"""Transformer blocks of the codebook LM: causal self-attention with a KV cache, cross-attention
to condition tokens, both through `F.scaled_dot_product_attention`, both with RoPE in seconds."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.dit.rope import apply_rope


@dataclass
class LayerCache:
    """Keys / values of one block: self-attention grows by one step per call, cross-attention is
    computed once from the condition memory."""

    k: torch.Tensor | None = None  # [B, H, S_past, Dh]
    v: torch.Tensor | None = None
    cross: tuple[torch.Tensor, torch.Tensor] | None = None  # [B, H, M, Dh] each


@dataclass
class KVCache:
    layers: list[LayerCache] = field(default_factory=list)
    length: int = 0  # steps already in the cache

    @classmethod
    def empty(cls, depth: int) -> KVCache:
        return cls([LayerCache() for _ in range(depth)])


Rope = tuple[torch.Tensor, torch.Tensor]  # (cos, sin) [N, Dh] or [B, N, Dh]


class Block(nn.Module):
    """Pre-norm: x + SelfAttn(LN x) (causal) ; x + CrossAttn(LN x, memory) ; x + MLP(LN x)."""

    def __init__(self, d_model: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.h, self.dh, self.dropout = num_heads, d_model // num_heads, dropout
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.cq = nn.Linear(d_model, d_model)
        self.ckv = nn.Linear(d_model, 2 * d_model)
        self.cproj = nn.Linear(d_model, d_model)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        return x.view(B, N, self.h, self.dh).transpose(1, 2)  # [B, H, N, Dh]

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        B, _, N, _ = x.shape
        return x.transpose(1, 2).reshape(B, N, self.h * self.dh)  # [B, N, D]

    def forward(
        self,
        x: torch.Tensor,  # [B, N, D]: N new steps
        self_rope: Rope,  # for the N new steps
        memory: torch.Tensor,  # [B, M, D]
        memory_mask: torch.Tensor,  # [B, M] bool
        query_rope: Rope,  # cross-attention queries' rotation (the N new steps)
        key_rope: Rope,  # memory keys' rotation
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        q, k = apply_rope(q, *self_rope), apply_rope(k, *self_rope)
        if cache is not None:
            if cache.k is not None:
                k, v = torch.cat([cache.k, k], 2), torch.cat([cache.v, v], 2)
            cache.k, cache.v = k, v
        N, L = q.shape[2], k.shape[2]
        if N == 1:
            attn = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # one new step sees all the past
        else:  # new steps i see past + new steps <= i
            causal = torch.ones(N, L, dtype=torch.bool, device=x.device).tril(L - N)
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=causal, dropout_p=p)
        x = x + self.proj(self._merge(attn))

        cq = apply_rope(self._heads(self.cq(self.norm2(x))), *query_rope)
        if cache is not None and cache.cross is not None:
            ck, cv = cache.cross
        else:
            ck, cv = self.ckv(memory).chunk(2, dim=-1)
            ck, cv = apply_rope(self._heads(ck), *key_rope), self._heads(cv)
            if cache is not None:
                cache.cross = (ck, cv)
        attn = F.scaled_dot_product_attention(cq, ck, cv, attn_mask=memory_mask[:, None, None, :], dropout_p=p)
        x = x + self.cproj(self._merge(attn))
        return x + self.mlp(self.norm3(x))
