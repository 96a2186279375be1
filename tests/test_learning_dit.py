"""A tiny MultimodalDiT trained on CPU with MoNL learns a two-modality task, and the tasks, CFG and
cross-guidance of mmgen.diffusion work on it.

Data (4 s at 4 Hz, 4 channels): A = smooth random curves (random sin/cos coefficients at 0.25 and
0.5 Hz per channel); B = 1.5 tanh(A shifted by one frame @ W), a fixed nonlinear function of A.
One model, trained for a few hundred steps with the default MoNL mixture, is then asked for
B | A, an interpolation, CFG-guided B | A and joint samples with and without cross-guidance.
Run with `pytest -s` to see the numbers.
"""

from __future__ import annotations

import math

import pytest
import torch

from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion import (
    GEN,
    GIVEN,
    CrossGuidance,
    MoNLConfig,
    Task,
    VPCosine,
    denoising_loss,
    sample,
    sample_levels,
)
from mmgen.diffusion.tasks import interpolate, joint
from mmgen.dit.model import MultimodalDiT

pytestmark = pytest.mark.slow

RATE, SECONDS, C = 4.0, 4.0, 4
PROCESS = VPCosine(prediction="v")  # trained and sampled with
T = int(RATE * SECONDS)
SPECS = {"a": ModalitySpec(C, RATE), "b": ModalitySpec(C, RATE)}
FREQS = torch.tensor([0.25, 0.5])
W = torch.randn(C, C, generator=torch.Generator().manual_seed(123)) * 1.5 / math.sqrt(C)
STEPS, BATCH, EVAL, SAMPLE_STEPS = 500, 48, 128, 16
B_GIVEN_A = Task.from_roles("b|a", {"a": GIVEN, "b": GEN})


def f(a: torch.Tensor) -> torch.Tensor:
    """B as a function of A: [n, T, C] -> [n, T, C]."""
    shifted = torch.cat([a[:, :1], a[:, :-1]], dim=1)  # A one frame later
    return 1.5 * torch.tanh(shifted @ W)


def make(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    time = torch.arange(T) / RATE  # [T]
    coef = torch.randn(n, C, len(FREQS), 2, generator=gen) / math.sqrt(len(FREQS))  # [n, C, K, sin/cos]
    angle = 2 * math.pi * FREQS[:, None] * time[None]  # [K, T]
    a = (coef[..., 0, None] * torch.sin(angle) + coef[..., 1, None] * torch.cos(angle)).sum(2)  # [n, C, T]
    a = a.transpose(1, 2).contiguous()  # [n, T, C]
    return a, f(a)


def mse(x: torch.Tensor, y: torch.Tensor) -> float:
    return ((x - y) ** 2).mean().item()


@pytest.fixture(scope="module")
def trained():
    """(model, first losses, last losses): trained once for the whole module."""
    torch.manual_seed(0)
    model = MultimodalDiT(SPECS, d_model=64, depth=2, num_heads=4, segment_seconds=0.5, check_levels=False)
    process, config = PROCESS, MoNLConfig(p_drop_text=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=STEPS, pct_start=0.1)
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(STEPS):
        a, b = make(BATCH, gen)
        x0 = {"a": a, "b": b}
        loss, _ = denoising_loss(model, process, x0, sample_levels(x0, SPECS, config, gen), generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return model, sum(losses[:20]) / 20, sum(losses[-50:]) / 50


@pytest.fixture(scope="module")
def eval_data():
    return make(EVAL, torch.Generator().manual_seed(7))


@torch.no_grad()
def run(model, task, given, **kw):
    return sample(
        model,
        task,
        SPECS,
        given,
        process=PROCESS,
        steps=SAMPLE_STEPS,
        sampler="ddim",
        progress=False,
        generator=torch.Generator().manual_seed(3),
        **kw,
    )


def test_training_lowers_the_loss(trained):
    _, first, last = trained
    print(f"\nMoNL loss: first 20 steps {first:.3f}, last 50 steps {last:.3f}")
    assert last < 0.5 * first


def test_conditional_b_given_a_beats_shuffled_a(trained, eval_data):
    model, _, _ = trained
    a, b = eval_data
    cond = mse(run(model, B_GIVEN_A, {"a": a})["b"], b)
    perm = torch.randperm(EVAL, generator=torch.Generator().manual_seed(0))
    shuffled = mse(run(model, B_GIVEN_A, {"a": a[perm]})["b"], b)
    print(f"\nB|A error {cond:.4f} vs shuffled-A baseline {shuffled:.4f} (Var B = {b.var().item():.3f})")
    assert cond < 0.1 * shuffled


def test_interpolation_beats_a_linear_blend(trained, eval_data):
    model, _, _ = trained
    a, b = eval_data
    out = run(model, interpolate(("a", "b"), head=1.0), {"a": a, "b": b})
    gap = slice(4, 12)  # 1 s .. 3 s generated, both ends GIVEN
    w = torch.linspace(0, 1, 10)[1:-1].view(1, -1, 1)  # 8 frames strictly between frames 3 and 12
    for name, x in (("a", a), ("b", b)):
        ours = mse(out[name][:, gap], x[:, gap])
        blend = mse(x[:, 3:4] * (1 - w) + x[:, 12:13] * w, x[:, gap])
        print(f"\ninterpolation {name}: error {ours:.4f} vs linear blend {blend:.4f}")
        assert ours < 0.5 * blend
        assert torch.equal(out[name][:, :4], x[:, :4]) and torch.equal(out[name][:, 12:], x[:, 12:])


def test_cfg_on_the_condition_lowers_the_conditional_error(trained, eval_data):
    model, _, _ = trained
    a, b = eval_data
    errs = {s: mse(run(model, B_GIVEN_A, {"a": a}, guidance={"a": s})["b"], b) for s in (1.0, 2.0, 3.0)}
    print("\nB|A error by CFG scale on A: " + ", ".join(f"{s}: {e:.4f}" for s, e in errs.items()))
    assert errs[2.0] < 0.9 * errs[1.0]


def test_cross_guidance_makes_joint_samples_more_consistent(trained):
    model, _, _ = trained
    plain = run(model, joint(("a", "b")), {}, seconds=SECONDS, batch_size=EVAL)
    cross = run(
        model, joint(("a", "b")), {}, seconds=SECONDS, batch_size=EVAL, cross_guidance=CrossGuidance()
    )
    e_plain, e_cross = mse(plain["b"], f(plain["a"])), mse(cross["b"], f(cross["a"]))
    print(
        f"\njoint samples, |B - f(A)|^2: plain {e_plain:.4f}, cross-guided {e_cross:.4f} "
        f"(std of A: plain {plain['a'].std():.3f}, cross {cross['a'].std():.3f}, data 1.0)"
    )
    assert e_cross < 0.8 * e_plain
    assert 0.7 < cross["a"].std().item() < 1.2  # consistency not bought by collapsing the samples
