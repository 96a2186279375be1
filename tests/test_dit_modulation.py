"""The fused per-row AdaLN ops equal the unfused per-token ones (gather, LayerNorm, addcmul) in value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmgen.dit.modulation import gated_residual, gather_rows, norm_modulate, scatter_rows


def rows_and_index(per_example: bool):
    g = torch.Generator().manual_seed(0)
    B, N, R, D = 2, 37, 5, 16
    x = torch.randn(B, N, D, generator=g, dtype=torch.float64) * 3 + 1
    shift, scale, gate = (torch.randn(B, R, D, generator=g, dtype=torch.float64) for _ in range(3))
    h = torch.randn(B, N, D, generator=g, dtype=torch.float64)
    row = torch.randint(R, (B, N) if per_example else (N,), generator=g)
    return x, shift, scale, gate, h, row


@pytest.mark.parametrize("per_example", [False, True])
def test_norm_modulate_and_gated_residual_equal_the_unfused_ops(per_example):
    x, shift, scale, gate, h, row = rows_and_index(per_example)
    leaves = [t.clone().requires_grad_() for t in (x, shift, scale, gate, h)]
    fused = gated_residual(leaves[0], leaves[3], norm_modulate(leaves[0], leaves[1], leaves[2], row) * leaves[4], row)
    ref_leaves = [t.clone().requires_grad_() for t in (x, shift, scale, gate, h)]
    rx, rshift, rscale, rgate, rh = ref_leaves
    normed = F.layer_norm(rx, (rx.shape[-1],), eps=1e-6)
    mod = torch.addcmul(gather_rows(rshift, row), normed, gather_rows(rscale, row))
    ref = rx + gather_rows(rgate, row) * (mod * rh)
    torch.testing.assert_close(fused, ref, rtol=0, atol=1e-12)
    weights = torch.randn_like(ref)
    (fused * weights).sum().backward()
    (ref * weights).sum().backward()
    for name, a, b in zip(("x", "shift", "scale", "gate", "h"), leaves, ref_leaves):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-10, msg=name)


def test_the_fused_ops_pass_gradcheck():
    x, shift, scale, gate, h, row = rows_and_index(True)
    x, shift, scale, gate, h = (t[:, :9, :4].clone().requires_grad_() if t.shape[1] == 37 else t[..., :4].clone().requires_grad_()
                                for t in (x, shift, scale, gate, h))
    row = row[:, :9]
    assert torch.autograd.gradcheck(lambda a, b, c: norm_modulate(a, b, c, row, 1e-6), (x, shift, scale))
    assert torch.autograd.gradcheck(lambda a, b, c: gated_residual(a, b, c, row), (x, gate, h))


def test_scatter_rows_is_the_adjoint_of_gather_rows():
    g = torch.Generator().manual_seed(1)
    rows, values = torch.randn(2, 4, 3, generator=g), torch.randn(2, 10, 3, generator=g)
    for index in (torch.randint(4, (10,), generator=g), torch.randint(4, (2, 10), generator=g)):
        lhs = (gather_rows(rows, index) * values).sum()
        rhs = (rows * scatter_rows(values, index, 4)).sum()
        torch.testing.assert_close(lhs, rhs)


def test_bf16_autocast_keeps_the_residual_stream_in_float32():
    x, shift, scale, gate, _, row = (t.float() if t.is_floating_point() else t for t in rows_and_index(False))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = gated_residual(x, gate, norm_modulate(x, shift, scale, row).bfloat16(), row)
    assert y.dtype == torch.float32
