"""Per-token AdaLN from per-row modulation, without a per-token [B, N, 6D] tensor in the autograd graph.

Tokens share a few distinct noise levels (one conditioning row per modality segment), so the
block's modulation is computed per row ([B, R, 6D], R ~ N / 10) and every token takes its row.
Gathering it per token and letting autograd save the gathered shift / scale / gate would keep
6 x [B, N, D] per block alive until backward. The two functions here gather on the fly instead
and save only what backward cannot recompute cheaply:

    norm_modulate    y = LayerNorm(x) * scale[row] + shift[row]   saves x, mean, rstd, the rows
    gated_residual   y = x + gate[row] * h                        saves h, the rows

Backward gathers the rows again (a transient [B, N, D]) and scatter-adds the row gradients
(the adjoint of the gather). Each direction allocates one [B, N, D] temporary and works in
place on it (gather into it, multiply, add): a fresh [B, N, D] buffer per elementwise op costs
page faults on CPU. The values equal the unfused ops (gather, `native_layer_norm`, addcmul) to
float rounding (a multiply then an add instead of addcmul; the row sums run in another order).
`row` is [N] (one layout for the batch) or [B, N] (per-example token subsets).
"""

from __future__ import annotations

from typing import Any

import torch


def gather_rows(rows: torch.Tensor, index: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """rows [B, R, F] and index [N] or [B, N] -> [B, N, F] (token i takes row index[i]), into `out` if given."""
    if index.ndim == 1:
        return torch.index_select(rows, 1, index, out=out) if out is not None else rows.index_select(1, index)
    index = index[..., None].expand(-1, -1, rows.shape[-1])
    return torch.gather(rows, 1, index, out=out) if out is not None else torch.gather(rows, 1, index)


def scatter_rows(values: torch.Tensor, index: torch.Tensor, num_rows: int) -> torch.Tensor:
    """The adjoint of `gather_rows`: values [B, N, F] summed into their rows -> [B, R, F]."""
    out = values.new_zeros(values.shape[0], num_rows, values.shape[-1])
    if index.ndim == 1:
        return out.index_add_(1, index, values)
    return out.scatter_add_(1, index[..., None].expand(-1, -1, values.shape[-1]), values)


class _NormModulate(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, row: torch.Tensor, eps: float
    ) -> torch.Tensor:
        d = x.shape[-1]
        out, mean, rstd = torch.native_layer_norm(x, [d], None, None, eps)  # [B, N, D], [B, N, 1] x 2
        rows = gather_rows(scale, row)  # [B, N, D], the one temporary: scale, then shift
        out.mul_(rows).add_(gather_rows(shift, row, out=rows))
        ctx.save_for_backward(x, mean, rstd, scale, row)
        ctx.num_rows = shift.shape[1]
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, mean, rstd, scale, row = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_shift = grad_scale = None
        if ctx.needs_input_grad[1]:
            grad_shift = scatter_rows(grad, row, ctx.num_rows)
        buf = None
        if ctx.needs_input_grad[2]:
            buf = (x - mean).mul_(rstd).mul_(grad)  # [B, N, D]: normalised x (recomputed) * grad
            grad_scale = scatter_rows(buf, row, ctx.num_rows)
        if ctx.needs_input_grad[0]:
            grad_normed = gather_rows(scale, row, out=buf).mul_(grad)  # reuses the buffer
            grad_x = torch.ops.aten.native_layer_norm_backward(
                grad_normed, x, [x.shape[-1]], mean, rstd, None, None, [True, False, False]
            )[0]
        return grad_x, grad_shift, grad_scale, None, None


class _GatedResidual(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, gate: torch.Tensor, h: torch.Tensor, row: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(gate, h, row)  # h in its own dtype (bf16 under autocast)
        ctx.x_dtype = x.dtype
        if x.dtype == gate.dtype == h.dtype:  # one buffer: gate[row], then * h, then + x
            return gather_rows(gate, row).mul_(h).add_(x)
        return torch.addcmul(x, gather_rows(gate, row), h)  # mixed dtypes (autocast): promote as addcmul does

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        gate, h, row = ctx.saved_tensors
        grad_gate = grad_h = None
        same = grad.dtype == gate.dtype == h.dtype
        buf = None
        if ctx.needs_input_grad[1]:
            buf = grad * h  # [B, N, D]
            grad_gate = scatter_rows(buf, row, gate.shape[1]).to(gate.dtype)
        if ctx.needs_input_grad[2]:
            if same:  # reuse the buffer
                grad_h = gather_rows(gate, row, out=buf).mul_(grad)
            else:
                grad_h = (grad * gather_rows(gate, row)).to(h.dtype)
        return grad.to(ctx.x_dtype), grad_gate, grad_h, None


def norm_modulate(
    x: torch.Tensor, shift: torch.Tensor, scale_plus_one: torch.Tensor, row: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """LayerNorm(x) (no affine) * scale_plus_one[row] + shift[row]: x [B, N, D], rows [B, R, D] -> [B, N, D].

    Under autocast the rows follow x's dtype (as the unfused addcmul's type promotion would not)."""
    if shift.dtype != x.dtype:
        shift, scale_plus_one = shift.to(x.dtype), scale_plus_one.to(x.dtype)
    return _NormModulate.apply(x, shift, scale_plus_one, row, eps)


def gated_residual(x: torch.Tensor, gate: torch.Tensor, h: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """x + gate[row] * h: x, h [B, N, D], gate [B, R, D] -> [B, N, D] (dtypes promoted as addcmul does)."""
    return _GatedResidual.apply(x, gate, h, row)
