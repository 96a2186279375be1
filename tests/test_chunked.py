"""Chunked encode / decode (mmgen.modalities.chunked) against whole-clip runs."""

from __future__ import annotations

import pytest
import torch

from mmgen.demo.run import default_pipeline_dir
from mmgen.modalities.chunked import decode_long, encode_long, run_chunked


def test_margins_covering_the_receptive_field_give_the_whole_clip_exactly():
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(3, 3, kernel_size=5, padding=2)  # sees 2 frames each side

    def fn(x):  # [B, T, 3] -> [B, 2T, 3]: two outputs per input frame
        return conv(x.transpose(1, 2)).transpose(1, 2).repeat_interleave(2, dim=1)

    x = torch.randn(2, 37, 3)
    whole = fn(x)
    with torch.no_grad():
        exact = run_chunked(fn, x, 1, 2, chunk=5, margin=2)
        cut = run_chunked(fn, x, 1, 2, chunk=5, margin=0)
        faded = run_chunked(fn, x, 1, 2, chunk=5, margin=3, fade=4)  # the fade needs its own context
    torch.testing.assert_close(exact, whole, atol=1e-6, rtol=0)
    assert (cut - whole).abs().max() > 1e-2  # without context the seams show
    torch.testing.assert_close(faded, whole, atol=1e-6, rtol=0)  # blending two equal pieces changes nothing
    with pytest.raises(ValueError, match="fade"):
        run_chunked(fn, x, 1, 2, chunk=5, margin=1, fade=3)
    # a clip ending 1 frame past a chunk boundary: the last piece (1 frame + half a fade) is
    # shorter than the fade; the ramp stops at the clip's end (60 s of audio crashed here)
    short_tail = torch.randn(2, 36, 3)
    with torch.no_grad():
        faded = run_chunked(fn, short_tail, 1, 2, chunk=5, margin=4, fade=6)
    torch.testing.assert_close(faded, fn(short_tail), atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def shipped():
    from mmgen.data.toydance.clip import generate_clip
    from mmgen.pipeline.config import read_config
    from mmgen.pipeline.load import load_modalities

    d = default_pipeline_dir()
    if not d.is_dir():
        pytest.skip("shipped checkpoint not present")
    clip = generate_clip(3, seconds=8.0)
    raw = {
        "audio": torch.as_tensor(clip.audio)[None].float(),
        "motion": torch.as_tensor(clip.joints)[None].float(),
        "video": torch.as_tensor(clip.video)[None],
    }
    return load_modalities(d, read_config(d), "cpu"), raw


# (encode, decode) max abs difference allowed, chunks of 4 latent frames with 8 of context; the
# video VAE is causal with per-voxel norms and the motion VAE uses per-frame norms, so they match
# the whole clip closely (video decode in uint8 levels). The 7.5-Hz video VAE's 8 latent frames
# of context are 16 raw frames, a little short of its encoder's reach: 1.5e-3 measured.
TOLERANCE = {"video": (5e-3, 1), "motion": (1e-4, 1e-4)}


@pytest.mark.parametrize("name", ["video", "motion"])
def test_chunked_equals_the_whole_clip_at_the_seams(shipped, name):
    mods, raw = shipped
    mod, x = mods[name], raw[name]
    whole = mod.encode(x).cpu()
    z = encode_long(mod, x, chunk=4, margin=8)
    enc_tol, dec_tol = TOLERANCE[name]
    assert z.shape == whole.shape and (z - whole).abs().max() <= enc_tol
    ref = mod.decode(whole, None, None) if name == "motion" else mod.decode(whole, None)
    out = decode_long(mod, whole, ref.shape[1], chunk=4, margin=8)
    assert out.shape == ref.shape
    assert (out.float() - ref.float()).abs().max() <= dec_tol


def test_chunked_audio_stays_close_to_the_whole_clip(shipped):
    """The MelVAE's GroupNorm takes statistics over its whole input, so chunks differ from the
    whole clip everywhere, not only at the seams; bound measured on this clip (docs/long_form.md)."""
    mods, raw = shipped
    mod, x = mods["audio"], raw["audio"]
    whole = mod.encode(x).cpu()
    z = encode_long(mod, x, chunk=16, margin=8)
    assert z.shape == whole.shape
    assert (z - whole).abs().mean() / whole.abs().mean() < AUDIO_REL
    wave = decode_long(mod, whole, x.shape[1], generator=torch.Generator().manual_seed(0), chunk=16, margin=8)
    assert wave.shape == x.shape and torch.isfinite(wave).all() and wave.abs().max() <= 1.0


AUDIO_REL = 0.05  # measured 0.018 on this clip (docs/long_form.md)


def test_the_raw_mask_of_long_audio_is_built_in_steps_and_follows_the_floor_rule(monkeypatch):
    from types import SimpleNamespace

    from mmgen.pipeline import media

    mod = SimpleNamespace(spec=SimpleNamespace(rate_hz=7.5), raw_rate=22050.0)  # 2940 samples per frame
    per_latent = torch.tensor([True, False, False, True, False])
    n = 5 * 2940 - 100  # the last frame is cut short
    monkeypatch.setattr(media, "_SPREAD_CHUNK", 1000)  # 15 steps with seams inside frames
    got = media.spread_to_raw(mod, per_latent, n)
    want = per_latent.repeat_interleave(2940)[:n]  # sample i belongs to frame floor(i / 2940)
    assert got.dtype == torch.bool and torch.equal(got, want)
