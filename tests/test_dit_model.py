"""MultimodalDiT: identity at init, per-segment modulation, save/load, checkpointing, autocast, learning."""

import types

import torch
import torch.nn.functional as F
from dit_helpers import perturb

from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec, segment_ids
from mmgen.dit import MultimodalDiT

SPECS = {"audio": ModalitySpec(4, 4.0), "motion": ModalitySpec(6, 2.0), "video": ModalitySpec(3, 2.0, (5, 3))}
FRAMES = {"audio": 9, "motion": 5, "video": 3}  # 2.25 s, 2.5 s, 1.5 s: odd lengths on purpose


def tiny(specs=SPECS, **kw) -> MultimodalDiT:
    kw = {"d_model": 32, "depth": 2, "num_heads": 2, **kw}
    return MultimodalDiT(specs, **kw)


def inputs(model: MultimodalDiT, batch: int = 2, frames=FRAMES, seed: int = 0):
    """Random latents and levels that are constant within each (modality, segment)."""
    g = torch.Generator().manual_seed(seed)
    x, t = {}, {}
    for name, n in frames.items():
        spec = model.specs[name]
        x[name] = torch.randn(batch, *spec.latent_shape(n), generator=g)
        seg = segment_ids(n, spec.rate_hz, model.segment_seconds)
        t[name] = torch.rand(batch, int(seg.max()) + 1, generator=g)[:, seg]  # [B, T], constant per segment
    return x, t


def test_every_block_is_the_identity_and_the_output_is_zero_at_init():
    for adaln in ("block", "sola"):
        model = tiny(
            adaln=adaln,
            context_dim=5,
            long_skip=True,
            prefix_dim=3,
            depth=3,
            pooled_dim=4,
            aligned_dim=2,
            aligned_rate_hz=8.0,
        )
        x, t = inputs(model)
        cond = Cond(
            context=torch.randn(2, 4, 5),
            prefix=torch.randn(2, 2, 3),
            pooled=torch.randn(2, 4),
            aligned=torch.randn(2, 20, 2),
        )
        out = model(x, t, cond)
        assert all(torch.equal(v, torch.zeros_like(v)) for v in out.values())
        assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in x.items()}
        layout, cos, sin = model.layout(FRAMES, 2, torch.device("cpu"))
        # a new condition starts as a no-op: the global and aligned paths add exactly zero at init
        plain = Cond(
            context=cond.context, prefix=cond.prefix, pooled=torch.zeros(2, 4), aligned=torch.zeros(2, 20, 2)
        )
        assert torch.equal(
            model._embed_tokens(x, t, cond.prefix, layout, cond),
            model._embed_tokens(x, t, cond.prefix, layout, plain),
        )
        assert torch.equal(
            model._embed_levels(t, layout, 2, cond)[0], model._embed_levels(t, layout, 2, plain)[0]
        )
        h = torch.randn(2, layout.num_tokens, 32)
        c_rows, row = model._embed_levels(t, layout, 2, cond)
        shared = model.shared_ada(c_rows) if adaln == "sola" else None
        context = model.context_proj(cond.context)
        for block in model.blocks:
            assert torch.equal(block(h, c_rows, row, cos, sin, context, None, shared), h)
        for fuse in model.skip_fuse:  # long-skip fusion passes the main path through at init
            assert torch.equal(fuse(torch.cat([h, torch.randn_like(h)], -1)), h)


def test_one_optimizer_step_makes_the_output_nonzero_and_then_the_blocks_learn():
    model = tiny()
    x, t = inputs(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ada_before = model.blocks[0].ada.weight.detach().clone()
    for step in range(2):
        out = model(x, t)
        loss = sum(F.mse_loss(out[k], x[k]) for k in x)
        opt.zero_grad()
        loss.backward()
        if step == 0:  # zero output projection: only the output side gets gradient at first
            assert model.out_proj["audio"].weight.grad.abs().sum() > 0
        opt.step()
    out = model(x, t)
    assert all(v.abs().max() > 0 for v in out.values())
    assert not torch.equal(model.blocks[0].ada.weight, ada_before)


def test_per_segment_modulation_equals_per_token_computation():
    model = perturb(tiny(prefix_dim=3, pooled_dim=4, depth=2))
    x, t = inputs(model, batch=3)
    cond = Cond(prefix=torch.randn(3, 2, 3), pooled=torch.randn(3, 4))
    fast = model(x, t, cond)

    def per_token(self, t, layout, batch, cond=None):
        """The slow way: embed every token's own level, no rows, no gather tricks."""
        c = []
        for i in range(layout.num_tokens):
            m = int(layout.modality[i])
            if m < 0:
                c.append(self.prefix_cond.expand(batch, -1) + self.pooled_proj(cond.pooled))
                continue
            name = list(self.specs)[m]
            level = t[name][:, int(layout.frame[i])]  # [B]
            c.append(self.level_embed(level) + self.level_modality_embed[m] + self.pooled_proj(cond.pooled))
        return F.silu(torch.stack(c, dim=1)), torch.arange(layout.num_tokens)

    model._embed_levels = types.MethodType(per_token, model)
    slow = model(x, t, cond)
    for name in x:
        assert torch.allclose(fast[name], slow[name], atol=1e-5), name
    # and the result really depends on the levels and on the global condition
    t2 = {k: v.flip(0) for k, v in t.items()}
    assert not torch.allclose(model(x, t2, cond)["audio"], slow["audio"], atol=1e-3)
    other = Cond(prefix=cond.prefix, pooled=cond.pooled.flip(0))
    assert not torch.allclose(model(x, t, other)["audio"], slow["audio"], atol=1e-3)


def test_examples_do_not_leak_across_the_batch():
    model = perturb(tiny(context_dim=5))
    x, t = inputs(model, batch=3)
    cond = Cond(
        context=torch.randn(3, 4, 5),
        context_mask=torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]).bool(),
    )
    out = model(x, t, cond)
    one = model(
        {k: v[1:2] for k, v in x.items()}, {k: v[1:2] for k, v in t.items()}, cond.map(lambda v: v[1:2])
    )
    for name in x:
        assert torch.allclose(out[name][1:2], one[name], atol=1e-5)


def test_any_subset_of_modalities_and_any_length():
    model = perturb(tiny())
    x, t = inputs(model, frames={"audio": 7})
    out = model(x, t)
    assert list(out) == ["audio"] and out["audio"].shape == (2, 7, 4) and torch.isfinite(out["audio"]).all()
    joint = model(*inputs(model, frames={"audio": 7, "motion": 3}))
    assert not torch.allclose(joint["audio"], out["audio"])  # motion tokens take part in attention
    for n in (1, 2, 13):
        x, t = inputs(model, frames={"video": n, "motion": n + 2})
        out = model(x, t)
        assert out["video"].shape == (2, n, 5, 3, 3) and out["motion"].shape == (2, n + 2, 6)


def test_save_and_load_give_identical_outputs(tmp_path):
    model = perturb(
        tiny(
            context_dim=5,
            adaln="sola",
            sola_rank=4,
            long_skip=True,
            mask_decoder_depth=1,
            pooled_dim=2,
            aligned_dim=3,
            aligned_rate_hz=6.0,
            aligned_targets=["audio", "video"],
        )
    )
    x, t = inputs(model)
    cond = Cond(context=torch.randn(2, 3, 5), pooled=torch.randn(2, 2), aligned=torch.randn(2, 9, 3))
    model.save_pretrained(tmp_path / "dit")
    loaded = MultimodalDiT.from_pretrained(tmp_path / "dit")
    assert loaded.specs == model.specs and loaded.adaln == "sola" and loaded.mask_decoder_depth == 1
    assert loaded.aligned.targets == ("audio", "video") and loaded.aligned.rate_hz == 6.0
    a, b = model.eval()(x, t, cond), loaded(x, t, cond)
    for name in x:
        assert torch.equal(a[name], b[name])


def test_gradient_checkpointing_gives_the_same_gradients():
    model = perturb(tiny(long_skip=True, context_dim=5))
    x, t = inputs(model)
    cond = Cond(context=torch.randn(2, 3, 5))

    def grads(flag: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        model.gradient_checkpointing = flag
        out = model(x, t, cond)
        sum((v**2).mean() for v in out.values()).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, ckpt = grads(False), grads(True)
    for name in plain:
        assert torch.allclose(plain[name], ckpt[name], atol=1e-6), name
    assert any(g.abs().sum() > 0 for g in plain.values())


def test_runs_under_bf16_autocast_close_to_fp32():
    model = perturb(tiny(context_dim=5, adaln="sola", mask_decoder_depth=1))
    x, t = inputs(model)
    cond = Cond(context=torch.randn(2, 3, 5), context_mask=torch.ones(2, 3, dtype=torch.bool))
    ref = model(x, t, cond)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, t, cond)
        low["audio"].float().sum().backward()
    for name in x:
        assert torch.isfinite(low[name]).all()
        err = (low[name].float() - ref[name]).norm() / ref[name].norm()
        assert err < 0.05, (name, float(err))


def test_a_tiny_model_learns_to_denoise():
    """Fit x0 from x_t = cos(pi t/2) x0 + sin(pi t/2) eps for structured x0; beat the best constant guess."""
    torch.manual_seed(0)
    specs = {"a": ModalitySpec(2, 4.0), "b": ModalitySpec(2, 4.0)}
    model = MultimodalDiT(specs, d_model=32, depth=2, num_heads=2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    seg = segment_ids(8, 4.0, 0.5)

    def batch(n: int):
        phase = torch.rand(n, 1, 1) * 6.28
        time = torch.arange(8).float()[None, :, None]
        a = torch.cat([torch.sin(time + phase), torch.cos(time + phase)], -1)  # [n, 8, 2]
        x0 = {"a": a, "b": a.flip(-1) * 0.8}
        t = {k: torch.rand(n, 4)[:, seg] for k in x0}
        xt = {
            k: torch.cos(t[k] * 1.5708)[..., None] * v
            + torch.sin(t[k] * 1.5708)[..., None] * torch.randn_like(v)
            for k, v in x0.items()
        }
        return xt, t, x0

    def loss_of(xt, t, x0):
        out = model(xt, t)
        return sum(F.mse_loss(out[k], x0[k]) for k in x0) / 2

    test = batch(256)
    baseline = sum(F.mse_loss(torch.zeros_like(v), v) for v in test[2].values()) / 2  # E[x0] = 0
    for _ in range(60):
        opt.zero_grad()
        loss_of(*batch(64)).backward()
        opt.step()
    with torch.no_grad():
        final = loss_of(*test)
    print(f"denoising MSE {float(final):.3f} vs predict-the-mean baseline {float(baseline):.3f}")
    assert final < 0.4 * baseline
