"""The fused qk-norm + RoPE function equals the unfused modules (HeadRMSNorm, then apply_rope)."""

from __future__ import annotations

import pytest
import torch

from mmgen.dit.attention import CrossAttention, SelfAttention
from mmgen.dit.qknorm import qk_norm_rope
from mmgen.dit.rope import apply_rope, rope_angles, rope_cos_sin, rope_frequencies


def tables(n: int, dh: int, batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    shape = (n,) if batch is None else (batch, n)
    seconds = torch.rand(shape, generator=g, dtype=torch.float64) * 30
    cos, sin = rope_cos_sin(rope_angles(seconds, seconds * 0, seconds * 0, *rope_frequencies(dh, False)))
    return cos.double(), sin.double()


def reference(x: torch.Tensor, weight: torch.Tensor, cos, sin, eps: float) -> list[torch.Tensor]:
    """The unfused path: [B, N, S, H, Dh] -> S tensors [B, H, N, Dh]."""
    outs = []
    for j in range(x.shape[2]):
        h = x[:, :, j].transpose(1, 2)  # [B, H, N, Dh]
        if j < weight.shape[0]:
            h = torch.nn.functional.rms_norm(h, (h.shape[-1],), weight[j], eps)  # HeadRMSNorm.forward
            if cos is not None:
                h = apply_rope(h, cos, sin)
        outs.append(h)
    return outs


@pytest.mark.parametrize("rope", ["shared", "per_example", None])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("compiling", [False, True])
def test_values_and_gradients_equal_the_unfused_path(rope, groups, compiling, monkeypatch):
    """Both code paths: eager (in-place, `out=`) and the out-of-place one torch.compile traces."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: compiling)
    g = torch.Generator().manual_seed(0)
    b, n, s, h, dh = 2, 7, 3, 2, 8
    x = torch.randn(b, n, s, h, dh, generator=g, dtype=torch.float64, requires_grad=True)
    w = (1 + 0.3 * torch.randn(groups, dh, generator=g, dtype=torch.float64)).requires_grad_()
    cos, sin = (None, None) if rope is None else tables(n, dh, b if rope == "per_example" else None)
    weights = [torch.randn(b, h, n, dh, generator=g, dtype=torch.float64) for _ in range(s)]
    got = qk_norm_rope(x, w, cos, sin, 1e-6)
    want = reference(x, w, cos, sin, 1e-6)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    grads_got = torch.autograd.grad(sum((o * c).sum() for o, c in zip(got, weights)), (x, w))
    grads_want = torch.autograd.grad(sum((o * c).sum() for o, c in zip(want, weights)), (x, w))
    for a, e in zip(grads_got, grads_want):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def test_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 3, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    cos, sin = tables(4, 4)
    assert torch.autograd.gradcheck(lambda a, b: qk_norm_rope(a, b, cos, sin), (x, w))


def test_attention_modules_equal_their_unfused_forward():
    """SelfAttention / CrossAttention through the fused function == the same weights through
    HeadRMSNorm + apply_rope (the code path of the checkpoints' training)."""
    torch.manual_seed(0)
    dim, heads, n = 16, 2, 9
    attn, cross = SelfAttention(dim, heads).double(), CrossAttention(dim, heads).double()
    for m in (attn, cross):
        for p in m.parameters():
            torch.nn.init.normal_(p, mean=1.0 if p.ndim == 1 else 0.0, std=0.3)
    x = torch.randn(2, n, dim, dtype=torch.float64)
    ctx = torch.randn(2, 5, dim, dtype=torch.float64)
    cos, sin = tables(n, dim // heads)

    def heads_of(t):  # [B, N, D] -> [B, H, N, Dh]
        return t.unflatten(-1, (heads, -1)).transpose(1, 2)

    q, k, v = attn.qkv(x).chunk(3, dim=-1)
    q, k = apply_rope(attn.q_norm(heads_of(q)), cos, sin), apply_rope(attn.k_norm(heads_of(k)), cos, sin)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, heads_of(v))
    torch.testing.assert_close(
        attn(x, cos, sin), attn.proj(out.transpose(1, 2).flatten(2)), rtol=1e-12, atol=1e-12
    )

    ck, cv = cross.kv(ctx).chunk(2, dim=-1)
    q, k = cross.q_norm(heads_of(cross.q(x))), cross.k_norm(heads_of(ck))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, heads_of(cv))
    torch.testing.assert_close(
        cross(x, ctx, None), cross.proj(out.transpose(1, 2).flatten(2)), rtol=1e-12, atol=1e-12
    )


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="qk_norm_rope"):
        qk_norm_rope(torch.zeros(1, 2, 3, 4), torch.ones(1, 4))
    with pytest.raises(ValueError, match="qk_norm_rope"):
        qk_norm_rope(torch.zeros(1, 2, 1, 2, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="cos and sin"):
        qk_norm_rope(torch.zeros(1, 2, 1, 2, 4), torch.ones(1, 4), torch.ones(2, 4), None)


def test_bf16_autocast_runs_and_matches_float32():
    """Under CPU bf16 autocast the projection output is bf16: the fused path stays bf16 (float32
    norm), its gradients reach the float32 weights, and it stays near the float32 result."""
    torch.manual_seed(0)
    attn = SelfAttention(32, 2)
    x = torch.randn(2, 11, 32, requires_grad=True)
    cos, sin = (t.float() for t in tables(11, 16))
    want = attn(x, cos, sin)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = attn(x, cos, sin)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)
    got.float().sum().backward()
    assert attn.q_norm.weight.grad is not None and attn.q_norm.weight.grad.dtype == torch.float32


def test_heads_major_groups_are_contiguous_and_equal():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 6, 3, 2, 8, generator=g)
    w = torch.rand(2, 8, generator=g) + 0.5
    cos, sin = (t.float() for t in tables(6, 8))
    plain = qk_norm_rope(x, w, cos, sin)
    q, k, v = qk_norm_rope(x, w, cos, sin, heads_major=(1,))
    assert k.is_contiguous() and not q.is_contiguous()  # q keeps [B, N, H, Dh] memory
    for a, b in zip((q, k, v), plain):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
