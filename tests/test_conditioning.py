"""Condition encoders against their references (transformers T5, open_clip, librosa, hand formulas),
the combining ConditionEncoder (drop -> null, caching, save/load) and bad input.

Tiny random T5 / CLIP models are written to tmp dirs by the helpers below (no network);
`test_conditioning_dit.py` reuses them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mmgen.conditioning import (
    CLIPImageConditioner,
    CLIPTextConditioner,
    ConditionEncoder,
    MelodyConditioner,
    QualityConditioner,
    T5TextConditioner,
    TimingConditioner,
    load_features,
    quality_caption,
    quality_level,
    save_features,
    structure_caption,
)
from mmgen.conditioning.captions import event_place

CAPTIONS = ["an energetic hip-hop dance at 124 bpm", "a calm waltz"]
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def make_tiny_t5(directory: Path) -> Path:
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    torch.manual_seed(1)
    cfg = T5Config(
        vocab_size=384, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0
    )
    T5EncoderModel(cfg).save_pretrained(directory)
    ByT5Tokenizer().save_pretrained(directory)
    return directory


def make_tiny_clip(directory: Path) -> str:
    """An open_clip `local-dir:` model: config + random safetensors weights."""
    import open_clip

    torch.manual_seed(2)
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": {"mean": CLIP_MEAN, "std": CLIP_STD, "size": 32}})
    )
    state = {k: v.contiguous() for k, v in open_clip.CLIP(**cfg).state_dict().items()}
    save_file(state, str(directory / "open_clip_model.safetensors"))
    return f"local-dir:{directory}"


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory) -> Path:
    return make_tiny_t5(tmp_path_factory.mktemp("t5"))


@pytest.fixture(scope="module")
def clip_name(tmp_path_factory) -> str:
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))


# ----------------------------------------------------------------------------- encoders vs references
def test_t5_features_match_transformers(t5_dir):
    from transformers import AutoTokenizer, T5EncoderModel

    cond = T5TextConditioner(dim=16, model=str(t5_dir), max_length=24)
    assert cond.config["feature_dim"] == 32  # resolved from the model config and recorded
    feats = cond.encode({"caption": CAPTIONS})
    tok = AutoTokenizer.from_pretrained(t5_dir)
    enc = tok(CAPTIONS, padding="max_length", max_length=24, truncation=True, return_tensors="pt")
    ref = T5EncoderModel.from_pretrained(t5_dir)(**enc).last_hidden_state
    mask = enc["attention_mask"].bool()
    assert torch.equal(feats.mask, mask) and mask.sum(1).tolist() == [
        24,
        len(CAPTIONS[1]) + 1,
    ]  # bytes + </s>
    torch.testing.assert_close(feats.values, ref * mask[..., None], atol=1e-5, rtol=1e-5)
    tokens, out_mask = cond({"caption": CAPTIONS})
    torch.testing.assert_close(tokens, cond.proj(feats.values))
    assert tokens.shape == (2, 24, 16) and torch.equal(out_mask, mask)


def test_clip_text_and_image_features_match_open_clip(clip_name):
    import open_clip
    from PIL import Image

    ref_model, _, preprocess = open_clip.create_model_and_transforms(clip_name)
    tokenizer = open_clip.get_tokenizer(clip_name)
    text = CLIPTextConditioner(dim=8, model=clip_name, pretrained=None)
    feats = text.encode({"caption": CAPTIONS})
    ref = ref_model.encode_text(tokenizer(CAPTIONS), normalize=True)
    assert feats.values.shape == (2, 1, 16)
    torch.testing.assert_close(feats.values[:, 0], ref, atol=1e-5, rtol=1e-5)

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 5, 32, 32, 3), dtype=np.uint8)
    image = CLIPImageConditioner(dim=8, model=clip_name, pretrained=None, frames_per_clip=3)
    feats = image.encode({"frames": frames})
    picked = frames[:, [0, 2, 4]].reshape(6, 32, 32, 3)  # evenly spaced: 0, 2, 4
    ref = ref_model.encode_image(
        torch.stack([preprocess(Image.fromarray(f)) for f in picked]), normalize=True
    )
    assert feats.values.shape == (2, 3, 16) and feats.mask.all()
    torch.testing.assert_close(feats.values.reshape(6, 16), ref, atol=1e-4, rtol=1e-4)
    # frames of another size are resized (short side) and centre-cropped like open_clip's transform
    big = np.kron(frames[:, :1], np.ones((1, 1, 2, 3, 1), np.uint8))  # [2, 1, 64, 96, 3]
    ref = ref_model.encode_image(
        torch.stack([preprocess(Image.fromarray(f)) for f in big[:, 0]]), normalize=True
    )
    ours = CLIPImageConditioner(dim=8, model=clip_name, pretrained=None).encode({"frames": big}).values[:, 0]
    assert torch.nn.functional.cosine_similarity(ours, ref).min() > 0.99


def test_timing_tokens_follow_the_formula():
    cond = TimingConditioner(dim=8, max_value=100.0, fourier_dim=4)
    tokens, mask = cond({"seconds_start": [10.0, 250.0], "seconds_total": [50.0, -3.0]})
    assert tokens.shape == (2, 2, 8) and mask.all()
    emb = cond.embedders[0]
    u = torch.tensor([0.1, 1.0])  # 10 / 100 and 250 clamped to 100
    w = emb.weights.detach()
    phi = torch.cat(
        [u[:, None], torch.sin(2 * math.pi * u[:, None] * w), torch.cos(2 * math.pi * u[:, None] * w)], 1
    )
    torch.testing.assert_close(tokens[:, 0], phi @ emb.linear.weight.T + emb.linear.bias)
    torch.testing.assert_close(
        cond.encode({"seconds_start": [0, 0], "seconds_total": [50.0, -3.0]}).values[:, 1, 0],
        torch.tensor([0.5, 0.0]),
    )
    with pytest.raises(ValueError, match="NaN"):
        cond({"seconds_start": [float("nan"), 1.0], "seconds_total": [1.0, 1.0]})
    with pytest.raises(ValueError, match="no 'seconds_total'"):
        cond({"seconds_start": [1.0]})


def test_chroma_matches_librosa_and_the_bottleneck_keeps_only_pitch():
    sr, n_fft, hop = 22050, 2048, 512
    t = np.arange(sr) / sr
    rng = np.random.default_rng(0)
    y = (
        np.sin(2 * np.pi * 261.63 * t) * (t < 0.5)
        + 0.7 * np.sin(2 * np.pi * 392.0 * t) * (t >= 0.5)
        + 0.4 * np.sin(2 * np.pi * 440.0 * t)
        + 0.01 * rng.standard_normal(sr)
    ).astype(np.float32)
    cond = MelodyConditioner(dim=8, sample_rate=sr, n_fft=n_fft, hop_length=hop, argmax=False)
    ours = cond.encode({"melody": y[None]}).values[0].numpy()  # [T, 12]
    ref = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop, tuning=0.0, norm=np.inf).T
    assert ours.shape == ref.shape == (sr // hop + 1, 12)
    np.testing.assert_allclose(ours, ref, atol=2e-4)
    onehot = MelodyConditioner(dim=8, sample_rate=sr, n_fft=n_fft, hop_length=hop)
    hard = onehot.encode({"melody": np.stack([y, 0.05 * y])}).values
    assert torch.equal(hard[0], hard[1])  # loudness does not pass the bottleneck
    assert (hard.sum(-1) == 1).all()
    mid = hard[0, 5:15].argmax(-1)  # first half: C4 + A4 -> C (0) dominates; second half G (7)
    assert (mid == 0).all() and (hard[0, -15:-5].argmax(-1) == 7).all()
    tokens, _ = onehot({"melody": y[None]})
    torch.testing.assert_close(tokens[0], onehot.proj.weight[:, hard[0].argmax(-1)].T + onehot.proj.bias)


def test_quality_levels_caption_and_token():
    assert quality_level(torch.tensor([1.0, 1.79, 1.81, 3.0, 4.99, 5.0, 7.0])).tolist() == [
        0,
        0,
        1,
        2,
        4,
        4,
        4,
    ]
    assert quality_caption("a house dance", 4.6) == "high quality, a house dance"
    assert quality_caption("a house dance", 3.1) == "medium quality, a house dance"
    assert quality_caption("", 1.2) == "low quality"
    cond = QualityConditioner(dim=8)
    tokens, _ = cond({"quality": [4.6, 1.0]})
    torch.testing.assert_close(tokens[:, 0], cond.embed.weight[[4, 0]])


def test_structure_captions():
    s = [
        {"instrument": "kick", "start": 0.0, "end": 8.0},
        {"instrument": "bass", "start": 0.0, "end": 2.1},
        {"instrument": "chords", "start": 3.0, "end": 5.0},
        {"instrument": "hat", "start": 6.0, "end": 8.0},
    ]
    assert structure_caption(s, 8.0) == "<bass @ start>, <kick @ all>, <chords @ mid>, <hat @ end>"
    assert event_place(0.3, 7.9, 8.0) == "all"
    with pytest.raises(ValueError, match="structure\\[0\\]"):
        structure_caption([{"instrument": "kick"}], 8.0)
    toydance = pytest.importorskip("mmgen.data.toydance.clip")
    clip = toydance.generate_clip(3, seconds=8.0, render_video=False)
    caption = structure_caption(clip.structure, clip.seconds)
    for ev in clip.structure:
        assert f"<{ev['instrument']} @ " in caption


# ----------------------------------------------------------------------------- the combining encoder
def make_encoder(t5_dir: Path) -> ConditionEncoder:
    return ConditionEncoder(
        {
            "text": T5TextConditioner(dim=16, model=str(t5_dir), max_length=12),
            "melody": MelodyConditioner(dim=16, sample_rate=8000, n_fft=512, hop_length=256),
            "timing": TimingConditioner(dim=8, fourier_dim=8),
            "quality": QualityConditioner(dim=8),
        },
        context_dim=16,
        prefix_dim=8,
    )


def raw_batch() -> dict:
    rng = np.random.default_rng(0)
    return {
        "caption": CAPTIONS,
        "melody": rng.standard_normal((2, 2048)).astype(np.float32),
        "seconds_start": [0.0, 3.0],
        "seconds_total": [10.0, 30.0],
        "quality": [4.5, 2.0],
    }


def test_encoder_assembles_drops_to_null_and_caches(t5_dir, tmp_path):
    enc = make_encoder(t5_dir)
    cond = enc(raw_batch())
    assert (
        cond.context.shape == (2, 12 + 9, 16)
        and cond.context_mask.shape == (2, 21)
        and cond.prefix.shape == (2, 3, 8)
    )
    null = enc.null_cond(2, context_length=21)
    dropped = enc(raw_batch(), drop=torch.tensor([True, True]))
    # the same real (unmasked) tokens: one learned null per context conditioner; padding differs only
    assert null.context_mask.sum(1).tolist() == dropped.context_mask.sum(1).tolist() == [2, 2]
    assert torch.equal(dropped.context[dropped.context_mask], null.context[null.context_mask])
    assert torch.equal(dropped.prefix, null.prefix) and null.context.shape == cond.context.shape
    partial = enc(raw_batch(), drop={"text": torch.tensor([True, False])})
    assert torch.equal(partial.context[1], cond.context[1]) and torch.equal(
        partial.context[0, 12:], cond.context[0, 12:]
    )
    text_null, text_null_mask = enc.conditioners["text"].null(1, 12)
    assert torch.equal(partial.context[0, :12], text_null[0]) and torch.equal(
        partial.context_mask[0, :12], text_null_mask[0]
    )
    assert torch.equal(partial.prefix, cond.prefix)
    # frozen features saved and reloaded give the same Cond without touching the encoders
    save_features(tmp_path / "f.safetensors", enc.encode(raw_batch()))
    cached = enc(features=load_features(tmp_path / "f.safetensors"))
    torch.testing.assert_close(cached.context, cond.context)
    torch.testing.assert_close(cached.prefix, cond.prefix)


def test_encoder_save_load_round_trip_keeps_frozen_weights_out(t5_dir, tmp_path):
    enc = make_encoder(t5_dir)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1)  # "trained"
    enc.save_pretrained(tmp_path / "cond")
    keys = set(load_file(str(tmp_path / "cond" / "model.safetensors")))
    assert not any("encoder" in k or "shared" in k for k in keys) and "conditioners.text.proj.weight" in keys
    again = ConditionEncoder.from_pretrained(tmp_path / "cond")
    a, b = enc(raw_batch()), again(raw_batch())
    torch.testing.assert_close(a.context, b.context)
    torch.testing.assert_close(a.prefix, b.prefix)
    import copy

    twin = copy.deepcopy(enc)  # EMA copies share the frozen T5 instead of duplicating it
    assert twin.conditioners["text"]._frozen is enc.conditioners["text"]._frozen


def test_bad_conditions_raise_clear_errors(t5_dir):
    with pytest.raises(ValueError, match="'timing' has dim 8, the prefix width is 4"):
        ConditionEncoder({"timing": TimingConditioner(dim=8)}, prefix_dim=4)
    with pytest.raises(ValueError, match="produces context tokens but context_dim is None"):
        ConditionEncoder({"m": MelodyConditioner(dim=8)})
    enc = make_encoder(t5_dir)
    batch = raw_batch()
    del batch["caption"]
    with pytest.raises(ValueError, match="no 'caption'"):
        enc(batch)
    with pytest.raises(ValueError, match="list of strings"):
        enc(dict(raw_batch(), caption="one string"))
    bad = raw_batch()
    bad["melody"][0, 5] = np.nan
    with pytest.raises(ValueError, match="melody.*NaN"):
        enc(bad)
    with pytest.raises(ValueError, match="disagree on the batch size"):
        enc(dict(raw_batch(), quality=[1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="drop for 'text' must be"):
        enc(raw_batch(), drop={"text": torch.tensor([True])})
