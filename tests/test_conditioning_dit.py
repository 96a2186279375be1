"""Every condition encoder drives a tiny MultimodalDiT through cross-attention / prefix tokens, and a
tiny DiT trained with condition dropout to the learned null embedding supports CFG."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_conditioning import make_tiny_clip, make_tiny_t5

from mmgen.conditioning import (
    CLIPImageConditioner,
    CLIPTextConditioner,
    ConditionEncoder,
    MelodyConditioner,
    QualityConditioner,
    T5TextConditioner,
    TimingConditioner,
)
from mmgen.core.timeline import ModalitySpec
from mmgen.dit.model import MultimodalDiT

SPEC = {"audio": ModalitySpec(channels=4, rate_hz=4.0)}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    return {
        "t5": str(make_tiny_t5(tmp_path_factory.mktemp("t5"))),
        "clip": make_tiny_clip(tmp_path_factory.mktemp("clip")),
    }


def perturbed_dit(context_dim: int | None, prefix_dim: int | None) -> MultimodalDiT:
    """A fresh DiT ignores conditions (AdaLN-Zero, zero cross-attn out): give the zero-init weights
    small random values so a condition's effect is measurable without training."""
    torch.manual_seed(0)
    dit = MultimodalDiT(
        SPEC, d_model=32, depth=1, num_heads=2, context_dim=context_dim, prefix_dim=prefix_dim
    )
    with torch.no_grad():
        for p in dit.parameters():
            if (p == 0).all():
                p.normal_(std=0.1)
    return dit.eval()


def cases(models: dict) -> dict:
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    return {
        "t5": (
            T5TextConditioner(16, model=models["t5"], max_length=16),
            {"caption": ["a fast dance"]},
            {"caption": ["slow"]},
        ),
        "clip_text": (
            CLIPTextConditioner(16, model=models["clip"], pretrained=None),
            {"caption": ["a fast dance"]},
            {"caption": ["slow"]},
        ),
        "clip_image": (
            CLIPImageConditioner(16, model=models["clip"], pretrained=None, frames_per_clip=2),
            {"frames": rng.integers(0, 256, (1, 4, 32, 32, 3), dtype=np.uint8)},
            {"frames": rng.integers(0, 256, (1, 4, 32, 32, 3), dtype=np.uint8)},
        ),
        "melody": (
            MelodyConditioner(16, sample_rate=8000, n_fft=512, hop_length=256),
            {"melody": np.sin(2 * np.pi * 440 * t)[None]},
            {"melody": np.sin(2 * np.pi * 330 * t)[None]},
        ),
        "timing": (
            TimingConditioner(8, fourier_dim=8),
            {"seconds_start": [0.0], "seconds_total": [10.0]},
            {"seconds_start": [40.0], "seconds_total": [200.0]},
        ),
        "quality": (QualityConditioner(8), {"quality": [5.0]}, {"quality": [1.0]}),
    }


@pytest.mark.parametrize("name", ["t5", "clip_text", "clip_image", "melody", "timing", "quality"])
def test_each_condition_changes_the_dit_output(models, name):
    conditioner, batch_a, batch_b = cases(models)[name]
    is_context = conditioner.target == "context"
    enc = ConditionEncoder(
        {name: conditioner}, context_dim=16 if is_context else None, prefix_dim=None if is_context else 8
    )
    dit = perturbed_dit(enc.context_dim, enc.prefix_dim)
    x = {"audio": torch.randn(1, 8, 4)}
    t = {"audio": torch.full((1, 8), 0.5)}
    with torch.no_grad():
        out_a = dit(x, t, enc(batch_a))["audio"]
        out_b = dit(x, t, enc(batch_b))["audio"]
        out_null = dit(x, t, enc.null_cond(1))["audio"]
        out_a_again = dit(x, t, enc(batch_a))["audio"]
    assert torch.equal(out_a, out_a_again)
    scale = out_a.abs().mean()
    assert (out_a - out_b).abs().mean() > 1e-3 * scale, f"{name}: two conditions give the same output"
    assert (out_a - out_null).abs().mean() > 1e-3 * scale, f"{name}: condition and null give the same output"


def test_cfg_with_the_learned_null_embedding(models):
    """Targets depend only on the caption ("up" -> +v, "down" -> -v in every frame; constant in time
    because RoPE gives tokens no absolute position). Trained with 30 % of captions dropped to the
    null embedding, the conditional x0 prediction finds the class, the null prediction stays
    between the classes (it only sees the weak signal left in x_t), and CFG (scale 3)
    extrapolates past the conditional prediction."""
    torch.manual_seed(0)
    enc = ConditionEncoder({"text": T5TextConditioner(16, model=models["t5"], max_length=8)}, context_dim=16)
    dit = MultimodalDiT(SPEC, d_model=32, depth=1, num_heads=2, context_dim=16)
    dit.check_levels = False
    feats = enc.encode({"caption": ["up", "down"]})  # cached frozen T5 features, [2, 8, 32]
    pattern = torch.randn(1, 4).expand(8, 4)
    pattern = pattern / pattern.pow(2).mean().sqrt()
    params = list(dit.parameters()) + list(enc.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)

    def draw(n: int, t_level: torch.Tensor | None = None):
        label = torch.randint(0, 2, (n,))
        sign = 1.0 - 2.0 * label.float()  # up -> +1, down -> -1
        x0 = sign[:, None, None] * pattern + 0.1 * torch.randn(n, 8, 4)
        t = torch.rand(n) * 0.5 + 0.5 if t_level is None else t_level.expand(n)
        xt = torch.cos(math.pi * t / 2)[:, None, None] * x0 + torch.sin(math.pi * t / 2)[
            :, None, None
        ] * torch.randn_like(x0)
        return label, sign, x0, xt, t[:, None].expand(n, 8)

    for _ in range(120):
        label, _, x0, xt, t = draw(16)
        cond = enc(features={"text": feats["text"].index(label)}, drop=torch.rand(16) < 0.3)
        loss = (dit({"audio": xt}, {"audio": t}, cond)["audio"] - x0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    with torch.no_grad():
        label, sign, x0, xt, t = draw(256, torch.tensor(0.9))
        c = dit({"audio": xt}, {"audio": t}, enc(features={"text": feats["text"].index(label)}))["audio"]
        u = dit({"audio": xt}, {"audio": t}, enc.null_cond(256, context_length=8))["audio"]
        g = u + 3.0 * (c - u)

    def margin(pred: torch.Tensor) -> float:  # projection on the true class direction (1 = exact)
        return float((pred * sign[:, None, None] * pattern).mean() / pattern.pow(2).mean())

    err_c, err_u = float((c - x0).pow(2).mean()), float((u - x0).pow(2).mean())
    print(
        f"\nCFG test: mse cond {err_c:.3f} null {err_u:.3f}; margin null {margin(u):.2f} cond {margin(c):.2f} cfg3 {margin(g):.2f}"
    )
    assert err_c < 0.2 * err_u
    assert margin(c) > 0.8 and margin(u) < margin(c) - 0.3 and margin(g) > margin(c) + 0.5
