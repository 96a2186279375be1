"""Per-head RMS norm (qk-norm) and RoPE in one autograd function, straight from the projection output.

The unfused path (`HeadRMSNorm` then `apply_rope`, per tensor) runs ~7 elementwise passes over
q and over k in forward and ~13 in backward (the composite rms_norm's pow / mean / rsqrt / two
muls, RoPE's cat and three ops, the rearrange's stack), and saves the normalised q and k for the
rotation. Here, per head vector x of the projection output (a strided view, never copied):

    rstd = 1 / sqrt(mean(x^2) + eps)                                one reduction, no temporary
    out  = rstd * RoPE(x * w)        with w folded into RoPE's cos / sin (tiny [N, Dh/2] tables)
         = rstd * [x1 w1 c - x2 w2 s,  x2 w2 c + x1 w1 s]            four half-width multiply-adds

Backward (g = dL/dout, gy = RoPE^T(g * rstd)):

    dL/dw = sum_{B,N,H} gy * x
    dL/dx = gy * w - x * rstd^2 * sum_d(g * out) / Dh

and writes dL/dx of q and k (and v's gradient, copied) into one [B, N, S, H, Dh] buffer, which
is the projection's output gradient as it is (no stack; under torch.compile the groups are
computed out of place and stacked, see `_mix`). Saved for backward: the projection output (v is a
view of it, which attention keeps anyway), the outputs (attention saves them too) and rstd
([B, N, G, H, 1]): nothing of size [B, N, D] beyond what attention already holds.

Groups: x is [B, N, S, H, Dh] (S = 3 for a fused qkv projection, 2 for a kv projection, 1 for
a lone q); the first G groups are normalised (and rotated when cos / sin are given), the others
pass through unchanged. Every output is [B, H, N, Dh] (`heads_major` groups contiguous, the
others transposed views).
Values equal the unfused path to float rounding (the reduction runs as a norm, w is folded).
"""

from __future__ import annotations

from typing import Any

import torch


def _rope_tables(
    cos: torch.Tensor, sin: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """rope_cos_sin's (cos, signed sin) [N, Dh] or [B, N, Dh] -> (c, s) [N, 1, Dh/2] or [B, N, 1, Dh/2]."""
    half = cos.shape[-1] // 2
    return cos[..., None, :half].to(dtype), sin[..., None, half:].to(dtype)


def _mix(
    x: torch.Tensor,
    a1: torch.Tensor,
    b1: torch.Tensor,
    a2: torch.Tensor,
    b2: torch.Tensor,
    eager: bool,
    heads_major: bool = False,
) -> torch.Tensor:
    """[x1 a1 - x2 b1, x2 a2 + x1 b2] over the halves of the last dimension (a rotation with scales).

    Eager: written into one new buffer by halves (four multiply-adds, no temporaries), laid out as
    x is, or, with `heads_major`, [B, N, H, Dh] over [B, H, N, Dh] memory. Under
    torch.compile: out-of-place ops and a cat (dynamo does not trace `out=` into strided views;
    inductor fuses them anyway)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    if not eager:
        return torch.cat([x1 * a1 - x2 * b1, x2 * a2 + x1 * b2], dim=-1)
    if heads_major:
        b, n, h, d = x.shape
        out = torch.empty(b, h, n, d, dtype=x.dtype, device=x.device).transpose(1, 2)  # [B, N, H, Dh]
    else:
        out = torch.empty_like(x)
    torch.mul(x1, a1, out=out[..., :half]).addcmul_(x2, b1, value=-1)
    torch.mul(x2, a2, out=out[..., half:]).addcmul_(x1, b2)
    return out


class _QKNormRope(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        cos: torch.Tensor | None,
        sin: torch.Tensor | None,
        eps: float,
        heads_major: tuple[int, ...],
    ) -> tuple[torch.Tensor, ...]:
        eager = not torch.compiler.is_compiling()
        groups, dh = weight.shape[0], x.shape[-1]
        w = weight.to(x.dtype)
        acc = torch.promote_types(x.dtype, torch.float32)  # bf16 / fp16 inputs: the norm in float32
        rstd = torch.linalg.vector_norm(x[:, :, :groups], dim=-1, keepdim=True, dtype=acc)
        rstd = (rstd.square() / dh + eps).rsqrt().to(x.dtype)  # [B, N, G, H, 1]
        tables = None if cos is None else _rope_tables(cos, sin, x.dtype)  # type: ignore[arg-type]
        outs = []
        for j in range(groups):
            xj, r = x[:, :, j], rstd[:, :, j]  # [B, N, H, Dh], [B, N, H, 1]
            if tables is None:
                out = xj * w[j]
            else:  # RoPE(x * w) = [x1 (w1 c) - x2 (w2 s), x2 (w2 c) + x1 (w1 s)]
                c, s = tables
                w1, w2 = w[j, : dh // 2], w[j, dh // 2 :]
                out = _mix(xj, w1 * c, w2 * s, w2 * c, w1 * s, eager, heads_major=j in heads_major)
            outs.append(out.mul_(r) if eager else out * r)  # [B, N, H, Dh]
        ctx.save_for_backward(x, weight, rstd, *outs, *(() if cos is None else (cos, sin)))
        ctx.groups, ctx.rope = groups, cos is not None
        passthrough = [x[:, :, j] for j in range(groups, x.shape[2])]
        return tuple(o.transpose(1, 2) for o in outs + passthrough)  # [B, H, N, Dh] each

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        eager = not torch.compiler.is_compiling()
        x, weight, rstd, *rest = ctx.saved_tensors
        groups = ctx.groups
        outs = rest[:groups]
        tables = _rope_tables(rest[groups], rest[groups + 1], x.dtype) if ctx.rope else None
        dh = x.shape[-1]
        w = weight.to(x.dtype)
        acc = torch.promote_types(x.dtype, torch.float32)
        grad_w = torch.zeros(weight.shape, dtype=acc, device=x.device)
        # eager: every group's gradient is written into one [B, N, S, H, Dh] buffer (the projection's
        # output gradient as it is); under torch.compile: out-of-place per group, then a stack
        grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device) if eager else None
        parts = []
        for j in range(x.shape[2]):
            g = grads[j]
            g = torch.zeros_like(x[:, :, j]) if g is None else g.transpose(1, 2)  # [B, N, H, Dh]
            if j >= groups:  # passed through
                if grad_x is not None:
                    grad_x[:, :, j].copy_(g)
                else:
                    parts.append(g)
                continue
            xj, r, out = x[:, :, j], rstd[:, :, j], outs[j]
            buf = g * out  # [B, N, H, Dh], reused below in eager mode
            dot = buf.sum(-1, keepdim=True)  # [B, N, H, 1]
            coef = dot * r.square() / dh  # from d rstd / dx
            gr = torch.mul(g, r, out=buf) if eager else g * r
            # gy = RoPE^T(gr), the rotation by -angle: dL/d(x * w)
            gy = gr if tables is None else _mix(gr, tables[0], -tables[1], tables[0], -tables[1], eager)
            if eager:
                torch.mul(gy, w[j], out=grad_x[:, :, j]).addcmul_(xj, coef, value=-1)  # type: ignore[index]
            else:
                parts.append(torch.addcmul(gy * w[j], xj, coef, value=-1))
            if ctx.needs_input_grad[1]:
                prod = gy * xj if not eager else gy.mul_(xj) if tables is None else torch.mul(gy, xj, out=buf)
                grad_w[j] = prod.sum(dim=(0, 1, 2), dtype=acc)
        grad_weight = grad_w.to(weight.dtype) if ctx.needs_input_grad[1] else None
        if grad_x is None:
            grad_x = torch.stack(parts, dim=2)  # [B, N, S, H, Dh]
        return grad_x, grad_weight, None, None, None, None


def qk_norm_rope(
    x: torch.Tensor,
    weight: torch.Tensor,
    cos: torch.Tensor | None = None,
    sin: torch.Tensor | None = None,
    eps: float = 1e-6,
    heads_major: tuple[int, ...] = (),
) -> tuple[torch.Tensor, ...]:
    """RMS-normalise (scale `weight`) and rotate the first G head groups of a projection output.

    Args:
        x: [B, N, S, H, Dh], e.g. a fused qkv Linear's output viewed as (3, heads, head_dim).
        weight: [G, Dh] per-group RMS-norm scales, G <= S (q and k: the q_norm and k_norm weights).
        cos, sin: from `rope_cos_sin`, [N, Dh] or [B, N, Dh]; None: no rotation.
        heads_major: rotated groups to write as contiguous [B, H, N, Dh] (the keys: the CPU
            flash-attention kernel runs ~2 % faster on them); the others are [B, N, H, Dh] in
            memory, so with q there the attention output is too and reaches the output
            projection without a copy (a copy the projection would also save for backward).
    Returns:
        S tensors [B, H, N, Dh]: G normalised (and rotated), then the S - G others as they are.
    """
    if x.ndim != 5 or weight.ndim != 2 or weight.shape[0] > x.shape[2] or weight.shape[1] != x.shape[-1]:
        raise ValueError(
            f"qk_norm_rope: x must be [B, N, S, H, Dh] and weight [G <= S, Dh], "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if (cos is None) != (sin is None):
        raise ValueError("qk_norm_rope: give both cos and sin, or neither")
    return _QKNormRope.apply(x, weight, cos, sin, eps, tuple(heads_major))
