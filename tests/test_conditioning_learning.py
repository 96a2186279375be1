"""A tiny DiT learns to use a time-aligned stream and a global condition, end to end through
the ConditionEncoder, and does much worse when the same condition comes from another example.

Both tasks regress x0 from a very noisy x_t (t = 0.9: x_t keeps ~16 % of x0's amplitude), so the
condition carries nearly all the information. Run with `pytest -s` to see the numbers.
"""

from __future__ import annotations

import math

import pytest
import torch

from mmgen.conditioning import ConditionEncoder, FeatureStreamConditioner, QualityConditioner
from mmgen.core.timeline import ModalitySpec
from mmgen.dit.model import MultimodalDiT
from mmgen.dit.streams import resample_stream

RATE, T, C = 7.5, 16, 4  # ~2.1 s of "audio" latents
SPEC = {"audio": ModalitySpec(C, RATE)}


def noisy(x0: torch.Tensor, level: float | None, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n = x0.shape[0]
    t = torch.rand(n, generator=gen) * 0.6 + 0.4 if level is None else torch.full((n,), level)
    a, s = torch.cos(math.pi * t / 2)[:, None, None], torch.sin(math.pi * t / 2)[:, None, None]
    return a * x0 + s * torch.randn(x0.shape, generator=gen), t[:, None].expand(n, x0.shape[1])


LR = 3e-3


def train(dit: MultimodalDiT, enc: ConditionEncoder, draw, steps: int, gen: torch.Generator) -> None:
    dit.check_levels = False
    opt = torch.optim.Adam(list(dit.parameters()) + list(enc.parameters()), lr=LR)
    for _ in range(steps):
        batch, x0 = draw(16, gen)
        xt, t = noisy(x0, None, gen)
        cond = enc(batch=batch, drop=torch.rand(16, generator=gen) < 0.1)
        loss = (dit({"audio": xt}, {"audio": t}, cond)["audio"] - x0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def evaluate(
    dit: MultimodalDiT, enc: ConditionEncoder, draw, key: str, gen: torch.Generator
) -> dict[str, float]:
    """x0 error with the true condition, a shuffled one (another example's), and the null."""
    batch, x0 = draw(128, gen)
    xt, t = noisy(x0, 0.9, gen)
    perm = torch.roll(torch.arange(128), 1)
    shuffled = dict(batch, **{key: batch[key][perm]})
    out = {}
    with torch.no_grad():
        for name, b, drop in (
            ("true", batch, None),
            ("shuffled", shuffled, None),
            ("null", batch, torch.ones(128, dtype=torch.bool)),
        ):
            pred = dit({"audio": xt}, {"audio": t}, enc(batch=b, drop=drop))["audio"]
            out[name] = float((pred - x0).pow(2).mean())
    return out


@pytest.mark.slow
def test_an_aligned_stream_is_used_at_the_right_time():
    """Target: each latent frame copies (through a fixed mix) the stream's mean over the PREVIOUS
    latent frame's 0.133 s, so the model must read the stream at the right time, one token back."""
    gen = torch.Generator().manual_seed(0)
    mix = torch.linalg.qr(torch.randn(C, C, generator=gen))[0][:2] * 2.0  # [2, C]
    stream_rate, frames = 30.0, int(T * 30.0 / RATE)  # 4 stream frames per latent frame

    def draw(n: int, g: torch.Generator):
        stream = torch.randn(n, frames, 2, generator=g)
        per_frame, _ = resample_stream(stream, None, stream_rate, RATE, T)  # [n, T, 2]
        delayed = torch.cat([torch.zeros(n, 1, 2), per_frame[:, :-1]], dim=1)
        return {"stream": stream}, delayed @ mix  # [n, T, C]

    torch.manual_seed(0)
    enc = ConditionEncoder(
        {"sync": FeatureStreamConditioner(8, feature_dim=2, rate_hz=stream_rate)},
        aligned_dim=8,
        aligned_rate_hz=30.0,
    )
    dit = MultimodalDiT(SPEC, d_model=32, depth=2, num_heads=2, aligned_dim=8, aligned_rate_hz=30.0)
    train(dit, enc, draw, 350, gen)
    err = evaluate(dit, enc, draw, "stream", gen)
    print(
        f"\naligned stream: x0 mse true {err['true']:.3f} shuffled {err['shuffled']:.3f} null {err['null']:.3f}"
    )
    assert err["true"] < 0.3 * err["shuffled"] and err["true"] < 0.3 * err["null"]


def test_a_global_condition_through_adaln_is_used():
    """Target: a per-level pattern, constant in time; the level reaches the DiT only as a global
    (AdaLN) condition: QualityConditioner configured with target="global"."""
    gen = torch.Generator().manual_seed(1)
    patterns = torch.randn(4, C, generator=gen)

    def draw(n: int, g: torch.Generator):
        level = torch.randint(0, 4, (n,), generator=g)
        x0 = patterns[level][:, None].expand(n, T, C) + 0.1 * torch.randn(n, T, C, generator=g)
        return {"quality": 1.0 + level.float() + 0.5}, x0  # scores 1.5 .. 4.5 -> levels 0 .. 3

    torch.manual_seed(0)
    enc = ConditionEncoder({"quality": QualityConditioner(8, num_levels=4, target="global")}, pooled_dim=8)
    dit = MultimodalDiT(SPEC, d_model=32, depth=2, num_heads=2, pooled_dim=8)
    train(dit, enc, draw, 150, gen)
    err = evaluate(dit, enc, draw, "quality", gen)
    print(
        f"\nglobal condition: x0 mse true {err['true']:.3f} shuffled {err['shuffled']:.3f} null {err['null']:.3f}"
    )
    assert err["true"] < 0.3 * err["shuffled"] and err["true"] < 0.3 * err["null"]
