"""Constructor options of MultimodalDiT, one test each: SOLA, long skips, prefix, masked tokens, qk-norm, cross-attn."""

import pytest
import torch
from dit_helpers import perturb

from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec, segment_ids
from mmgen.dit import MultimodalDiT, random_token_mask

SPECS = {"audio": ModalitySpec(4, 4.0), "video": ModalitySpec(3, 2.0, (3, 4))}
FRAMES = {"audio": 8, "video": 4}


def tiny(**kw) -> MultimodalDiT:
    kw = {"d_model": 32, "depth": 2, "num_heads": 2, **kw}
    return MultimodalDiT(SPECS, **kw)


def inputs(batch: int = 2, frames=FRAMES, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x, t = {}, {}
    for name, n in frames.items():
        spec = SPECS[name]
        x[name] = torch.randn(batch, *spec.latent_shape(n), generator=g)
        seg = segment_ids(n, spec.rate_hz, 0.5)
        t[name] = torch.rand(batch, int(seg.max()) + 1, generator=g)[:, seg]
    return x, t


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_sola_saves_exactly_the_expected_parameters_and_trains_its_adapters():
    d, depth, r = 64, 6, 8
    block = MultimodalDiT(SPECS, d_model=d, depth=depth, num_heads=4, adaln="block")
    sola = MultimodalDiT(SPECS, d_model=d, depth=depth, num_heads=4, adaln="sola", sola_rank=r)
    per_block = depth * (d * 6 * d + 6 * d)  # a Linear(D, 6D) in every block
    shared = (d * 6 * d + 6 * d) + depth * (d * r + r * 6 * d)  # one Linear(D, 6D) + rank-r adapters
    assert n_params(block) - n_params(sola) == per_block - shared
    print(f"AdaLN parameters: per-block {per_block}, SOLA {shared} ({shared / per_block:.1%})")
    assert shared < 0.35 * per_block
    # the per-block adapters get gradient once the shared path and the outputs have moved
    x, t = inputs()
    opt = torch.optim.SGD(sola.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        out = sola(x, t)
        sum(((out[k] - x[k]) ** 2).mean() for k in x).backward()
        opt.step()
    assert sola.blocks[0].ada_up.weight.abs().sum() > 0 and sola.shared_ada.weight.abs().sum() > 0
    # modulation of block i = shared(c) + up_i(down_i(c)), so blocks modulate differently
    c = torch.randn(2, 3, d)
    assert not torch.allclose(
        sola.blocks[0].modulation_rows(c, sola.shared_ada(c)),
        sola.blocks[1].modulation_rows(c, sola.shared_ada(c)),
    )


def test_long_skips_connect_mirrored_blocks():
    model = perturb(tiny(depth=5, long_skip=True))
    assert len(model.skip_fuse) == 2  # (0 -> 4), (1 -> 3); block 2 is the middle
    x, t = inputs()
    seen = {}
    hooks = [
        b.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, (a[0], out)))
        for i, b in enumerate(model.blocks)
    ]
    model(x, t)
    for h in hooks:
        h.remove()
    for j, (src, dst) in enumerate([(1, 3), (0, 4)]):
        fuse = model.skip_fuse[j]
        expected = fuse(torch.cat([seen[dst - 1][1], seen[src][1]], dim=-1))
        assert torch.allclose(seen[dst][0], expected, atol=1e-6)
    # the middle and first-half blocks take the previous output unchanged
    assert torch.equal(seen[2][0], seen[1][1]) and torch.equal(seen[1][0], seen[0][1])


def test_prefix_tokens_condition_the_output_and_are_not_returned():
    model = perturb(tiny(prefix_dim=3))
    x, t = inputs()
    p = torch.randn(2, 2, 3)
    out = model(x, t, Cond(prefix=p))
    assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in x.items()}
    other = model(x, t, Cond(prefix=p + 1))
    assert not torch.allclose(out["audio"], other["audio"], atol=1e-4)
    any_length = model(x, t, Cond(prefix=torch.randn(2, 5, 3)))
    assert any_length["video"].shape == x["video"].shape


def test_random_token_mask_drops_a_fixed_count_preferring_noisy_frames():
    t = {"a": torch.tensor([[0.5] * 6 + [0.0] * 4, [0.0] * 8 + [0.3] * 2]), "v": torch.rand(2, 5) + 0.1}
    for seed in range(5):
        mask = random_token_mask(t, 0.4, generator=torch.Generator().manual_seed(seed))
        assert mask["a"].dtype == torch.bool and mask["a"].shape == (2, 10)
        assert (~mask["a"]).sum(1).tolist() == [4, 4] and (~mask["v"]).sum(1).tolist() == [2, 2]
        assert mask["a"][0, 6:].all()  # example 0 has 6 noisy frames: its clean frames are all kept
        assert not mask["a"][1, 8:].any()  # example 1 has 2 noisy frames: both dropped first
    with pytest.raises(ValueError, match="ratio"):
        random_token_mask(t, 1.0)


def test_masked_tokens_inputs_of_dropped_frames_do_not_matter():
    for decoder_depth in (0, 1):
        model = perturb(tiny(depth=3, mask_decoder_depth=decoder_depth, long_skip=True))
        x, t = inputs()
        mask = random_token_mask(t, 0.5, generator=torch.Generator().manual_seed(0))
        out = model(x, t, token_mask=mask)
        assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in x.items()}
        x2 = {k: torch.where(_expand(mask[k], v), v, torch.randn_like(v) * 10) for k, v in x.items()}
        out2 = model(x2, t, token_mask=mask)
        for k in x:
            assert torch.allclose(out[k], out2[k], atol=1e-5)
        # without the mask the changed inputs matter
        assert not torch.allclose(model(x, t)["audio"], model(x2, t)["audio"], atol=1e-3)
        # keeping everything is exactly the unmasked model
        keep_all = {k: torch.ones_like(v) for k, v in mask.items()}
        full, ref = model(x, t, token_mask=keep_all), model(x, t)
        for k in x:
            assert torch.allclose(full[k], ref[k], atol=1e-6)


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(*mask.shape, *([1] * (like.ndim - 2)))


def test_masked_tokens_reject_bad_masks():
    x, t = inputs()
    mask = {"audio": torch.ones(2, 8, dtype=torch.bool)}
    with pytest.raises(ValueError, match="mask_decoder_depth=None"):
        tiny()(x, t, token_mask=mask)
    model = tiny(mask_decoder_depth=1)
    mask["audio"][0, 0] = False  # example 0 keeps one token fewer than example 1
    with pytest.raises(ValueError, match="same number of tokens"):
        model(x, t, token_mask=mask)
    with pytest.raises(ValueError, match="bool"):
        model(x, t, token_mask={"audio": torch.ones(2, 8)})
    with pytest.raises(ValueError, match="missing from x"):
        model(
            {"audio": x["audio"]},
            {"audio": t["audio"]},
            token_mask={"video": torch.ones(2, 4, dtype=torch.bool)},
        )
    with pytest.raises(ValueError, match="mask_decoder_depth"):
        tiny(mask_decoder_depth=3)


def test_qk_norm_makes_attention_invariant_to_query_key_scale():
    x, t = inputs()
    for qk_norm, invariant in ((True, True), (False, False)):
        model = perturb(tiny(qk_norm=qk_norm), std=0.3)
        ref = model(x, t)
        with torch.no_grad():
            for block in model.blocks:
                block.attn.qkv.weight[:64] *= 5.0  # the q and k rows (d_model = 32)
                block.attn.qkv.bias[:64] *= 5.0
        out = model(x, t)
        same = all(torch.allclose(ref[k], out[k], atol=1e-4) for k in x)
        assert same == invariant


def test_cross_attention_reads_the_context_and_honours_its_mask():
    model = perturb(tiny(context_dim=6))
    x, t = inputs()
    ctx = torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    out = model(x, t, Cond(context=ctx, context_mask=mask))
    changed_masked = ctx.clone()
    changed_masked[~mask] = 100.0
    same = model(x, t, Cond(context=changed_masked, context_mask=mask))
    changed_real = ctx.clone()
    changed_real[0, 0] += 1.0
    other = model(x, t, Cond(context=changed_real, context_mask=mask))
    for k in x:
        assert torch.allclose(out[k], same[k], atol=1e-5)
    assert not torch.allclose(out["audio"][0], other["audio"][0], atol=1e-4)
    assert torch.allclose(out["audio"][1], other["audio"][1], atol=1e-6)
    # a fully masked context contributes nothing (no NaN): equal to zeroing every cross-attention
    none = model(x, t, Cond(context=ctx, context_mask=torch.zeros(2, 5, dtype=torch.bool)))
    for block in model.blocks:
        torch.nn.init.zeros_(block.cross.proj.weight)
        torch.nn.init.zeros_(block.cross.proj.bias)
    ref = model(x, t, Cond(context=ctx))
    for k in x:
        assert torch.allclose(none[k], ref[k], atol=1e-6)
