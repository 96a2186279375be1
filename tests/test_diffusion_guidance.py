"""CFG by masking (branches, nesting order, scales) and MoMu cross-guidance, checked by hand."""

import pytest
import torch

from mmgen.core.cond import Cond, GroupedCond
from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion import CrossGuidance, GuidedDenoiser, VPCosine, sample
from mmgen.diffusion.tasks import dance2music, joint

B, T, C = 2, 4, 3
X0 = VPCosine(prediction="x0")  # x0_hat == the (guided) prediction: easy to check by hand


class Recorder:
    """out["a"] = x_a + 1 * [c clean] + 10 * [text on] + 100 * [c clean] * [text on], per example."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, cond=None):
        self.calls.append(({m: v.clone() for m, v in x.items()}, {m: v.clone() for m, v in t.items()}, cond))
        c_clean = (t["c"] == 0).float().mean(1) if "c" in t else torch.zeros(x["a"].shape[0])
        text = cond.context[:, 0, 0] if cond is not None else torch.zeros(x["a"].shape[0])
        bump = (c_clean + 10 * text + 100 * c_clean * text)[:, None, None]
        return {m: v + (bump if m == "a" else 0) for m, v in x.items()}


def setup():
    start = {"a": torch.ones(B, T), "c": torch.zeros(B, T)}
    values = {"a": torch.zeros(B, T, C), "c": torch.randn(B, T, C)}
    cond, uncond = Cond(context=torch.ones(B, 1, 1)), Cond(context=torch.zeros(B, 1, 1))
    x = {"a": torch.randn(B, T, C), "c": values["c"]}
    levels = {"a": torch.full((B, T), 0.7), "c": torch.zeros(B, T)}
    return start, values, cond, uncond, x, levels


@pytest.mark.parametrize(("order", "expected"), [(("c", "text"), 332.0), (("text", "c"), 232.0)])
def test_nested_groups_combine_in_the_given_order(order, expected):
    start, values, cond, uncond, x, levels = setup()
    model = Recorder()
    scales = {"c": 2.0, "text": 3.0}
    den = GuidedDenoiser(model, X0, start, values, cond, uncond, {g: scales[g] for g in order})
    x0_hat, _, branches = den(x, levels, tau=0.7)
    assert branches == 3 and len(model.calls) == 1  # ONE batched call of 3B
    xs, ts, cb = model.calls[0]
    assert xs["a"].shape[0] == 3 * B and cb.context.shape[0] == 3 * B
    # p0 + s1 (p1 - p0) + s2 (p2 - p1) with the documented nesting; the plain conditional bump is 111
    torch.testing.assert_close(x0_hat["a"], x["a"] + expected)
    # branch 0 drops everything: c's GIVEN tokens re-noised to t = 1 (pure noise for VP-cosine), null text
    assert torch.equal(ts["c"][:B], torch.ones(B, T)) and not torch.allclose(xs["c"][:B], values["c"])
    assert torch.equal(ts["c"][2 * B :], torch.zeros(B, T)) and torch.equal(xs["c"][2 * B :], values["c"])
    assert cb.context[:B].sum() == 0 and cb.context[2 * B :].min() == 1


def test_single_group_is_ordinary_cfg_and_scale_one_is_conditional():
    start, values, _, _, x, levels = setup()
    for scale, bump in [(1.0, 1.0), (2.5, 2.5), (0.0, 0.0)]:
        den = GuidedDenoiser(Recorder(), X0, start, values, guidance={"c": scale})
        x0_hat, _, n = den(x, levels, tau=0.7)
        assert n == 2
        torch.testing.assert_close(x0_hat["a"], x["a"] + bump)


def test_groups_without_given_tokens_are_skipped_and_bad_groups_raise():
    start, values, cond, _, x, levels = setup()
    start_gen = {"a": torch.ones(B, T), "c": torch.ones(B, T)}
    den = GuidedDenoiser(Recorder(), X0, start_gen, values, guidance={"c": 3.0})
    assert den(x, levels, tau=0.7)[2] == 1
    with pytest.raises(ValueError, match="null `uncond`"):
        GuidedDenoiser(Recorder(), X0, start, values, cond, None, {"text": 2.0})
    with pytest.raises(ValueError, match="neither 'text' nor"):
        GuidedDenoiser(Recorder(), X0, start, values, guidance={"video": 2.0})
    with pytest.raises(ValueError, match="finite"):
        GuidedDenoiser(Recorder(), X0, start, values, guidance={"c": float("nan")})
    with pytest.raises(ValueError, match=">= 2 generated"):
        GuidedDenoiser(Recorder(), X0, start, values, cross=CrossGuidance())
    with pytest.raises(ValueError, match="switch"):
        CrossGuidance(switch=1.5)
    with pytest.raises(ValueError, match="estimate"):
        CrossGuidance(estimate="next")


class Partner:
    """x0 prediction: own x + 100 * (fraction of the other modality's tokens that are clean)."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, cond=None):
        self.calls.append(({m: v.clone() for m, v in x.items()}, {m: v.clone() for m, v in t.items()}))
        other = {"a": "b", "b": "a"}
        return {m: v + 100 * (t[other[m]] == 0).float().mean(1)[:, None, None] for m, v in x.items()}


def cross_inputs():
    start = {"a": torch.ones(B, T), "b": torch.ones(B, T)}
    values = {"a": torch.zeros(B, T, C), "b": torch.zeros(B, T, C)}
    x = {"a": torch.randn(B, T, C), "b": torch.randn(B, T, C)}
    levels = {m: torch.full((B, T), 0.4) for m in x}
    return start, values, x, levels


@pytest.mark.parametrize(("scale", "branches", "bump"), [(1.0, 2, 100.0), (2.0, 4, 200.0)])
def test_cross_guidance_branches_with_previous_estimates(scale, branches, bump):
    start, values, x, levels = cross_inputs()
    prev = {"a": torch.randn(B, T, C), "b": torch.randn(B, T, C)}
    model = Partner()
    den = GuidedDenoiser(
        model, X0, start, values, cross=CrossGuidance(switch=0.5, scale=scale, estimate="previous")
    )
    x0_hat, _, n = den(x, levels, tau=0.6, x0_prev=prev)  # before the switch: one joint branch
    assert n == 1
    torch.testing.assert_close(x0_hat["a"], x["a"])
    x0_hat, _, n = den(x, levels, tau=0.4, x0_prev=prev)
    assert n == branches and len(model.calls) == 2 and model.calls[-1][0]["a"].shape[0] == branches * B
    xs, ts = model.calls[-1]
    k = branches // 2  # branches per head: (K + 1)
    # head a's conditional branch: b GIVEN at level 0 with its previous x0 estimate; a untouched
    assert torch.equal(xs["b"][(k - 1) * B : k * B], prev["b"]) and torch.equal(
        ts["b"][(k - 1) * B : k * B], torch.zeros(B, T)
    )
    assert torch.equal(xs["a"][(k - 1) * B : k * B], x["a"])
    if k == 2:  # the dropped branch re-noises the partner to t = 1
        assert torch.equal(ts["b"][:B], torch.ones(B, T)) and not torch.allclose(xs["b"][:B], prev["b"])
    # head b's conditional branch: a GIVEN with its previous x0 estimate
    assert torch.equal(xs["a"][-B:], prev["a"]) and torch.equal(ts["a"][-B:], torch.zeros(B, T))
    torch.testing.assert_close(x0_hat["a"], x["a"] + bump)
    torch.testing.assert_close(x0_hat["b"], x["b"] + bump)


def test_cross_guidance_with_current_estimates_makes_a_joint_pass_first():
    start, values, x, levels = cross_inputs()
    model = Partner()
    den = GuidedDenoiser(
        model, X0, start, values, cross=CrossGuidance()
    )  # MoMu defaults: 0.5, s = 2, current
    x0_hat, _, n = den(x, levels, tau=0.5)
    assert n == 1 + 4 and [c[0]["a"].shape[0] for c in model.calls] == [B, 4 * B]
    joint_x0 = x  # the joint pass sees no clean partner: x0_hat = x
    xs, ts = model.calls[-1]
    assert torch.equal(xs["b"][B : 2 * B], joint_x0["b"]) and torch.equal(
        ts["b"][B : 2 * B], torch.zeros(B, T)
    )
    torch.testing.assert_close(x0_hat["a"], x["a"] + 200.0)


def test_sample_switches_to_cross_steps_at_tau_switch():
    specs = {"a": ModalitySpec(C, 2.0), "b": ModalitySpec(C, 2.0)}
    for cross, per_step in [(0.5, [B, 4 * B]), (CrossGuidance(0.5, 1.0, "previous"), [2 * B])]:
        model = Partner()
        out = sample(
            model,
            joint(("a", "b")),
            specs,
            seconds=2.0,
            process=VPCosine(prediction="v"),
            steps=10,
            cross_guidance=cross,
            sampler="ddim",
            batch_size=B,
            progress=False,
        )
        sizes = [xs["a"].shape[0] for xs, _ in model.calls]
        assert sizes == [B] * 5 + per_step * 5  # clock 1.0 .. 0.6 joint, 0.5 .. 0.1 cross
        assert set(out) == {"a", "b"} and torch.isfinite(out["a"]).all()


def test_guided_sampling_keeps_given_tokens_bit_identical():
    specs = {"audio": ModalitySpec(C, 2.0), "motion": ModalitySpec(C, 2.0)}
    motion = torch.randn(B, 6, C)
    cond, uncond = Cond(context=torch.ones(1, 1, 1)), Cond(context=torch.zeros(1, 1, 1))  # batch 1 broadcasts

    def model(x, t, c=None):
        return {m: torch.tanh(v) + c.context[:, :1] for m, v in x.items()}

    for sampler in ("ddpm", "dpmpp2m", "heun"):
        out = sample(
            model,
            dance2music(),
            specs,
            {"motion": motion},
            process=VPCosine(prediction="v"),
            steps=5,
            sampler=sampler,
            cond=cond,
            uncond=uncond,
            guidance={"motion": 2.0, "text": 1.5},
            progress=False,
        )
        assert torch.equal(out["motion"], motion)


class TwoConds:
    """out["a"] = x_a + 1 * [c clean] + 10 * [text on] + 1000 * [sync on]: which drops a branch saw."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, cond=None):
        self.calls.append(({m: v.clone() for m, v in x.items()}, {m: v.clone() for m, v in t.items()}, cond))
        c_clean = (t["c"] == 0).float().mean(1)
        bump = (c_clean + 10 * cond.context[:, 0, 0] + 1000 * cond.context[:, 0, 1])[:, None, None]
        return {m: v + (bump if m == "a" else 0) for m, v in x.items()}


def two_groups() -> GroupedCond:
    """Condition groups "text" (context channel 0) and "c" (channel 1: a stream derived from c)."""

    def make(dropped):
        ctx = torch.ones(B, 1, 2)
        ctx[..., 0] = 0.0 if "text" in dropped else 1.0
        ctx[..., 1] = 0.0 if "c" in dropped else 1.0
        return Cond(context=ctx)

    return GroupedCond(make, {"text", "c"})


def test_a_group_named_like_a_modality_also_drops_its_conditioners():
    start, values, _, _, x, levels = setup()
    model = TwoConds()
    den = GuidedDenoiser(model, X0, start, values, two_groups(), None, {"c": 2.0, "text": 3.0})
    x0_hat, _, n = den(x, levels, tau=0.7)
    assert n == 3
    _xs, ts, cb = model.calls[0]
    # branch 0: c re-noised AND its stream null, text null; branch 1: c and its stream kept, text null
    assert torch.equal(ts["c"][:B], torch.ones(B, T)) and cb.context[:B].abs().sum() == 0
    assert torch.equal(ts["c"][B : 2 * B], torch.zeros(B, T))
    assert cb.context[B : 2 * B, 0, 0].abs().sum() == 0 and cb.context[B : 2 * B, 0, 1].min() == 1
    assert cb.context[2 * B :].min() == 1
    # p0 + 2 (p1 - p0) + 3 (p2 - p1): p0 = 0, p1 = 1001, p2 = 1011
    torch.testing.assert_close(x0_hat["a"], x["a"] + 2.0 * 1001 + 3.0 * 10)


def test_a_condition_only_group_drops_only_its_conditioners():
    start, values, _, _, x, levels = setup()
    model = TwoConds()
    # "sync" names no modality: dropping it nulls channel 1 only
    grouped = GroupedCond(lambda d: two_groups()({"c"} if "sync" in d else set()), {"sync"})
    den = GuidedDenoiser(model, X0, start, values, grouped, None, {"sync": 4.0})
    x0_hat, _, n = den(x, levels, tau=0.7)
    _xs, ts, _cb = model.calls[0]
    assert n == 2 and torch.equal(ts["c"], torch.zeros(2 * B, T))  # c's GIVEN tokens never re-noised
    torch.testing.assert_close(x0_hat["a"], x["a"] + 11 + 4.0 * 1000)  # p0 = 11, p1 = 1011


def test_the_pair_form_is_bit_identical_to_cond_and_uncond():
    specs = {"audio": ModalitySpec(C, 2.0), "motion": ModalitySpec(C, 2.0)}
    motion = torch.randn(B, 6, C)
    cond, uncond = Cond(context=torch.randn(1, 3, 2)), Cond(context=torch.randn(1, 3, 2))

    def model(x, t, c):
        return {
            m: torch.tanh(v * (1 + c.context.mean((1, 2))[:, None, None])) + 0.1 * t[m][..., None]
            for m, v in x.items()
        }

    runs = []
    for args in ({"cond": cond, "uncond": uncond}, {"cond": GroupedCond.pair(cond, uncond)}):
        runs.append(
            sample(
                model,
                dance2music(),
                specs,
                {"motion": motion},
                steps=6,
                process=VPCosine(prediction="v"),
                guidance={"motion": 2.0, "text": 1.5},
                generator=torch.Generator().manual_seed(3),
                progress=False,
                **args,
            )
        )
    assert torch.equal(runs[0]["audio"], runs[1]["audio"])


def test_grouped_cond_errors():
    start, values, _cond, uncond, _, _ = setup()
    with pytest.raises(ValueError, match="give no `uncond`"):
        GuidedDenoiser(TwoConds(), X0, start, values, two_groups(), uncond, {"c": 2.0})
    with pytest.raises(ValueError, match=r"neither a condition group \['c', 'text'\] nor a present modality"):
        GuidedDenoiser(TwoConds(), X0, start, values, two_groups(), None, {"video": 2.0})
    with pytest.raises(ValueError, match="reserved"):
        GuidedDenoiser(TwoConds(), X0, start, values, two_groups(), None, {"cross": 2.0})
