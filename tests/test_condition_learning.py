"""Each condition of `mmgen generate` is used by a tiny DiT trained on it, through its real
conditioner (tiny random T5 / CLIP, the chroma extractor, the quality levels):

    melody   audio = a synthesised tune; generated from a reference melody, the output's chroma
             follows that reference far better than another example's (shuffled) reference
    text     a structured caption ("<kick @ start>, <bass @ all>") says where each pattern sits
    image    the reference image's colour picks the pattern
    quality  a low score means a noisier version of the pattern (QA-MDT's mixed-quality data)

For text / image / quality: the denoising loss at a high noise level on held-out draws is lower
with the true condition than with the null one (the unconditional model) and than with another
example's. Frozen features are computed once per example pool (as `mmgen cache` stores them).
Run with `pytest -s` for the numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmgen.conditioning import (
    CLIPImageConditioner,
    ConditionEncoder,
    Features,
    MelodyConditioner,
    QualityConditioner,
    T5TextConditioner,
)
from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion.process import VPCosine
from mmgen.diffusion.samplers import sample
from mmgen.diffusion.tasks import PRESETS
from mmgen.dit.model import MultimodalDiT

RATE, T = 7.5, 16  # 2.13 s of latent frames
SR, HOP = 11025, 735  # chroma at 15 Hz: two chroma frames per latent frame


def levels(n: int, gen: torch.Generator, level: float | None = None) -> torch.Tensor:
    return torch.rand(n, generator=gen) * 0.6 + 0.4 if level is None else torch.full((n,), level)


def noisy(x0: torch.Tensor, t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    a, s = torch.cos(math.pi * t / 2)[:, None, None], torch.sin(math.pi * t / 2)[:, None, None]
    return a * x0 + s * torch.randn(x0.shape, generator=gen)


def fit(dit: MultimodalDiT, enc: ConditionEncoder, feats: dict[str, Features], x0: torch.Tensor, steps: int,
        gen: torch.Generator, batch: int = 16) -> None:
    """x0-prediction training on a pool with cached features, 10 % of rows at the null condition."""
    dit.check_levels = False
    opt = torch.optim.Adam([*dit.parameters(), *enc.parameters()], lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, x0.shape[0], (batch,), generator=gen)
        t = levels(batch, gen)
        cond = enc(features={n: f.index(idx) for n, f in feats.items()}, drop=torch.rand(batch, generator=gen) < 0.1)
        pred = dit({"audio": noisy(x0[idx], t, gen)}, {"audio": t[:, None].expand(batch, T)}, cond)["audio"]
        loss = (pred - x0[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def held_out_losses(dit: MultimodalDiT, enc: ConditionEncoder, feats: dict[str, Features], x0: torch.Tensor,
                    gen: torch.Generator) -> dict[str, float]:
    """x0 error at t = 0.9 with the true condition, another example's, and the null one."""
    n = x0.shape[0]
    t = levels(n, gen, 0.9)
    xt = noisy(x0, t, gen)
    perm = torch.roll(torch.arange(n), 1)
    out = {}
    with torch.no_grad():
        for name, f, drop in (("true", feats, None), ("shuffled", {k: v.index(perm) for k, v in feats.items()}, None),
                              ("null", feats, torch.ones(n, dtype=torch.bool))):
            pred = dit({"audio": xt}, {"audio": t[:, None].expand(n, T)}, enc(features=f, drop=drop))["audio"]
            out[name] = float((pred - x0).pow(2).mean())
    return out


def tiny_dit(channels: int, **kw) -> MultimodalDiT:
    torch.manual_seed(0)
    return MultimodalDiT({"audio": ModalitySpec(channels, RATE)}, d_model=32, depth=2, num_heads=2, **kw)


# ------------------------------------------------------------------------------------------- melody
def synth(notes: torch.Tensor) -> torch.Tensor:
    """Pitch classes [n, T] (one per latent frame) -> a sine tune [n, T * SR / RATE] in octave 4."""
    per = round(SR / RATE)
    freq = 261.63 * 2.0 ** (notes.double() / 12.0)  # [n, T]
    f = freq.repeat_interleave(per, dim=1)  # [n, S]
    phase = 2 * math.pi * torch.cumsum(f / SR, dim=1)
    return (0.5 * torch.sin(phase)).float()


@pytest.mark.slow
def test_generated_melody_follows_the_reference():
    gen = torch.Generator().manual_seed(0)
    melody = MelodyConditioner(8, sample_rate=SR, n_fft=2048, hop_length=HOP, target="aligned")
    enc = ConditionEncoder({"melody": melody}, aligned_dim=8, aligned_rate_hz=15.0, groups={"melody": "melody"})
    dit = tiny_dit(12, aligned_dim=8, aligned_rate_hz=15.0)

    def pool(n: int):
        notes = torch.randint(0, 12, (n, T), generator=gen)
        x0 = torch.nn.functional.one_hot(notes, 12).float() * 2.0 - 2.0 / 12  # [n, T, 12] the latent: the note
        return notes, x0, melody.encode({"melody": synth(notes)})

    _, x0, feats = pool(256)
    fit(dit, enc, {"melody": feats}, x0, 300, gen)
    ref_notes, _, ref_feats = pool(32)
    grouped = enc.grouped(features={"melody": ref_feats}, aligned_frames=2 * T)
    z = sample(dit, PRESETS["joint"](("audio",)), {"audio": ModalitySpec(12, RATE)}, seconds=T / RATE, steps=10, process=VPCosine(prediction="x0"),
               cond=grouped, guidance={"melody": 2.0}, batch_size=32, generator=gen, progress=False)["audio"]
    generated = melody.chroma(synth(z.argmax(-1))).argmax(-1)  # [32, chroma frames] dominant pitch class
    ref = melody.chroma(synth(ref_notes)).argmax(-1)
    other = ref[torch.roll(torch.arange(32), 1)]
    follows, follows_other = float((generated == ref).float().mean()), float((generated == other).float().mean())
    print(f"\nmelody: chroma agreement with the reference {follows:.2f}, with a shuffled reference {follows_other:.2f}")
    assert follows > 0.6 and follows > 3 * follows_other


# ------------------------------------------------------------------------------------ text / image / quality
PATTERNS = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))  # one 6-channel pattern per instrument
INSTRUMENTS, PLACES = ("kick", "bass", "lead", "pad"), ("all", "start", "mid", "end")


def caption_pool(n: int, gen: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """Two instruments per clip, each at a place; x0 = the instruments' patterns where they play."""
    x0 = 0.1 * torch.randn(n, T, 6, generator=gen)
    captions = []
    third = T // 3
    spans = {"all": (0, T), "start": (0, third), "mid": (third, 2 * third), "end": (2 * third, T)}
    for i in range(n):
        picks = torch.randperm(4, generator=gen)[:2].tolist()
        tags = []
        for k in picks:
            place = PLACES[int(torch.randint(0, 4, (), generator=gen))]
            a, e = spans[place]
            x0[i, a:e] += PATTERNS[k]
            tags.append(f"<{INSTRUMENTS[k]} @ {place}>")
        captions.append(", ".join(tags))
    return captions, x0


def check_used(name: str, err: dict[str, float]) -> None:
    """Conditional below unconditional (measured ratios ~0.74 text / quality) and below a shuffled
    condition (~0.55): the model relies on the condition and on the right one."""
    print(f"\n{name}: held-out x0 mse true {err['true']:.3f} shuffled {err['shuffled']:.3f} null {err['null']:.3f}")
    assert err["true"] < 0.85 * err["null"] and err["true"] < 0.7 * err["shuffled"]


@pytest.mark.slow
def test_text_structured_captions_are_used(tmp_path):
    from test_conditioning import make_tiny_t5

    gen = torch.Generator().manual_seed(1)
    text = T5TextConditioner(16, model=str(make_tiny_t5(tmp_path / "t5")), max_length=32)
    enc = ConditionEncoder({"text": text}, context_dim=16)
    dit = tiny_dit(6, context_dim=16)
    captions, x0 = caption_pool(256, gen)
    fit(dit, enc, {"text": text.encode({"caption": captions})}, x0, 300, gen)
    captions, x0 = caption_pool(64, gen)  # held out
    check_used("text", held_out_losses(dit, enc, {"text": text.encode({"caption": captions})}, x0, gen))


@pytest.mark.slow
def test_the_reference_image_is_used(tmp_path):
    from test_conditioning import make_tiny_clip

    gen = torch.Generator().manual_seed(2)
    image = CLIPImageConditioner(16, model=make_tiny_clip(tmp_path / "clip"), pretrained=None, frames_per_clip=1)
    enc = ConditionEncoder({"image": image}, context_dim=16, groups={"image": "image"})
    dit = tiny_dit(6, context_dim=16)
    # green, magenta, blue, red: the colours the tiny random CLIP tells apart best (cosine 0.52-0.91)
    colours = torch.tensor([[0, 255, 0], [255, 0, 255], [0, 0, 255], [255, 0, 0]], dtype=torch.uint8)

    def pool(n: int):
        k = torch.randint(0, 4, (n,), generator=gen)
        frames = colours[k][:, None, None, None].expand(n, 1, 32, 32, 3).clone()  # [n, 1, 32, 32, 3]
        frames = (frames.int() + torch.randint(-20, 21, frames.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
        x0 = PATTERNS[k][:, None].expand(n, T, 6) + 0.1 * torch.randn(n, T, 6, generator=gen)
        return {"image": image.encode({"frames": frames})}, x0

    feats, x0 = pool(256)
    fit(dit, enc, feats, x0, 300, gen)
    check_used("image", held_out_losses(dit, enc, *pool(64), gen))


@pytest.mark.slow
def test_the_quality_score_is_used():
    gen = torch.Generator().manual_seed(3)
    quality = QualityConditioner(8)  # prefix token per level (its default way)
    enc = ConditionEncoder({"quality": quality}, prefix_dim=8, groups={"quality": "quality"})
    dit = tiny_dit(6, prefix_dim=8)

    def pool(n: int):
        score = torch.rand(n, generator=gen) * 4 + 1  # MOS 1..5
        level = quality.encode({"quality": score}).values[:, 0, 0]  # [n] 0..4
        clean = PATTERNS[0][None, None].expand(n, T, 6)
        # low quality: the pattern's sign flips at random frames (a crackle), more often at lower levels
        flip = torch.rand(n, T, 1, generator=gen) < (0.5 - 0.12 * level)[:, None, None]
        x0 = torch.where(flip, -clean, clean) * (1.0 - 0.15 * (4 - level))[:, None, None]
        return {"quality": quality.encode({"quality": score})}, x0

    feats, x0 = pool(256)
    fit(dit, enc, feats, x0, 200, gen)
    check_used("quality", held_out_losses(dit, enc, *pool(64), gen))


def test_synth_is_in_tune():
    """The melody test's synthesiser: the chroma of a note is its pitch class."""
    melody = MelodyConditioner(8, sample_rate=SR, n_fft=2048, hop_length=HOP)
    notes = torch.arange(12).repeat_interleave(2)[None, :T]  # [1, 16]
    chroma = melody.chroma(synth(notes)).argmax(-1)[0]  # [S / HOP + 1]
    inner = [2 * i + 1 for i in range(T)]  # chroma frame centred in each latent frame
    assert np.array_equal(chroma[inner].numpy(), notes[0].numpy())
