"""Runs of masked frames and the straight line across them.

Two users: `evaluation.linear_blend` (interpolation's baseline) and `Pipeline.generate`, which
puts this line into every span it is about to generate before it encodes the input. The VAE
encoders see time around each frame (convolutions, motion attention), so without it whatever the
caller passed in the span (the true middle, zeros, a frozen frame) would leak into the GIVEN
latents beside it and change the result.

    x      x0  x1  x2  x3  x4        mask  F T T F F
    blend  x0  x0 + (x3 - x0)/3  x0 + 2 (x3 - x0)/3  x3  x4
"""

from __future__ import annotations

import torch
from torch import Tensor


def runs(mask: Tensor) -> list[tuple[int, int]]:
    """[(a, b)] of the maximal runs of True in a 1-D bool mask (b exclusive)."""
    m = torch.as_tensor(mask, dtype=torch.bool).reshape(-1).to(torch.int8)
    edges = torch.nonzero(torch.diff(torch.cat([m.new_zeros(1), m, m.new_zeros(1)]))).reshape(-1).tolist()
    return list(zip(edges[::2], edges[1::2], strict=True))


def blend_runs(x: Tensor, mask: Tensor, dim: int = 0) -> Tensor:
    """`x` with each run of True frames along `dim` replaced by the straight line between the
    unmasked frames around it (the one present is held at the clip's ends). Integer input
    (video frames) is blended in float and rounded back. Every frame masked is an error."""
    m = torch.as_tensor(mask, dtype=torch.bool).reshape(-1).cpu()
    n = x.shape[dim]
    if m.shape[0] != n:
        raise ValueError(f"blend_runs: mask has {m.shape[0]} frames, x has {n} along dim {dim}")
    if bool(m.all()):
        raise ValueError("blend_runs: every frame is masked; nothing to blend between")
    xt = x.movedim(dim, 0)
    is_float = xt.is_floating_point()
    dtype = xt.dtype if is_float else torch.float64  # only the blended frames are ever held in float
    bounds = None if is_float else (torch.iinfo(xt.dtype).min, torch.iinfo(xt.dtype).max)
    out = xt.clone()
    for a, b in runs(m):
        left = (xt[a - 1] if a > 0 else xt[b]).to(dtype)
        right = (xt[b] if b < n else xt[a - 1]).to(dtype)
        w = (torch.arange(a, b, dtype=dtype, device=xt.device) - (a - 1)) / (b - (a - 1))
        w = w.reshape(-1, *([1] * (xt.ndim - 1)))  # [b - a, 1, ...]
        line = (1 - w) * left + w * right
        if bounds is not None:
            line = line.round().clamp(*bounds)
        out[a:b] = line.to(xt.dtype)
    return out.movedim(0, dim)
