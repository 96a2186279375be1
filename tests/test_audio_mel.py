"""Mel VAE and vocoder: exact latent rate and lengths, determinism, batched = single, save/load, errors."""

import pytest
import torch

from mmgen.modalities.audio_codec import MelAudioCodec, MelSpec
from mmgen.modalities.audio_mel import MEL_PRESETS, MelVAE
from mmgen.modalities.vocoder import VocosVocoder


def _tiny() -> MelVAE:
    return MelVAE.from_preset("tiny").eval()


def test_toydance_preset_runs_at_7_5_hz_with_80_channel_tokens():
    vae = MelVAE.from_preset("toydance")
    assert vae.mel == MelSpec() and vae.mel.frame_rate == 75.0
    assert vae.freq_factor == 4 and vae.time_factor == 10
    assert vae.latent_rate_hz == 7.5 and vae.latent_channels == 4 * 20
    assert vae.spec.rate_hz == 7.5 and vae.spec.channels == 80
    assert MEL_PRESETS["tiny"]["strides"] == MEL_PRESETS["toydance"]["strides"]
    with pytest.raises(ValueError, match="unknown MelVAE preset"):
        MelVAE.from_preset("large")


@pytest.mark.parametrize("num_samples", [2940, 2941, 22050, 22050 * 2 + 1234])
def test_lengths_from_waveform_to_latents_and_back(num_samples):
    """S samples -> ceil(S / 294) mel frames -> ceil(frames / 10) latent frames -> back to S samples."""
    vae = _tiny()
    codec = vae.codec(vocoder=VocosVocoder.from_preset("tiny", num_layers=1))
    mel = codec.encode(torch.randn(num_samples) * 0.1)
    frames = -(-num_samples // 294)
    assert mel.shape == (1, 80, frames)
    with torch.no_grad():
        mean, logvar = vae.encode(mel)
        assert mean.shape == logvar.shape == (1, -(-frames // 10), 80)
        assert mean.shape[1] == -(-num_samples // 2940)
        assert vae.decode(mean).shape == (1, 80, mean.shape[1] * 10)
        rec = vae.decode(mean, num_frames=frames)
        assert rec.shape == mel.shape and vae(mel)[0].shape == mel.shape
        assert codec.decode(rec, num_samples=num_samples).shape == (1, num_samples)


def test_latent_layout_is_channel_major_over_reduced_frequency():
    """Token channel k = c * F' + f: flipping one (c, f) latent changes only the decoder input at that site."""
    vae = _tiny()
    h = torch.zeros(1, 4, 20, 3)  # [B, c_z, F', T']
    h[0, 2, 7, 1] = 1.0
    tokens = torch.zeros(1, 3, 80)
    tokens[0, 1, 2 * 20 + 7] = 1.0
    seen = {}

    def grab(module, inputs, output):
        seen["x"] = inputs[0]

    handle = vae.dec_in.register_forward_hook(grab)
    with torch.no_grad():
        vae.decode(tokens)
    handle.remove()
    assert torch.equal(seen["x"], h)


def test_eval_is_deterministic_and_batched_equals_single():
    vae = _tiny()
    mel = torch.randn(3, 80, 47) * 2 - 5
    with torch.no_grad():
        m1, lv1 = vae.encode(mel)
        m2, lv2 = vae.encode(mel)
        assert torch.equal(m1, m2) and torch.equal(lv1, lv2)
        assert torch.equal(vae(mel, sample_posterior=False)[0], vae(mel, sample_posterior=False)[0])
        singles = torch.cat([vae.encode(mel[i : i + 1])[0] for i in range(3)])
        torch.testing.assert_close(m1, singles, rtol=1e-5, atol=1e-5)
        dec = torch.cat([vae.decode(m1[i : i + 1], 47) for i in range(3)])
        torch.testing.assert_close(vae.decode(m1, 47), dec, rtol=1e-5, atol=1e-5)
    g = torch.Generator().manual_seed(3)
    a = vae(mel, generator=g)[0]
    b = vae(mel, generator=g.manual_seed(3))[0]
    assert torch.equal(a, b)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    vae = MelVAE.from_preset("tiny", mel=MelSpec(n_mels=64, fmax=8000.0), feature_shift=-3.0)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.01 * torch.randn_like(p))
        vae.latent_stats.std.fill_(2.0)
    vae.save_pretrained(tmp_path / "mel")
    loaded = MelVAE.from_pretrained(tmp_path / "mel")
    assert loaded.mel == vae.mel and loaded.latent_channels == 4 * 16
    vae.eval()
    mel = torch.randn(2, 64, 33)
    with torch.no_grad():
        assert torch.equal(vae.encode(mel)[0], loaded.encode(mel)[0])
        assert torch.equal(vae.encode_normalized(mel), loaded.encode_normalized(mel))
        z = torch.randn(2, 4, 64)
        assert torch.equal(vae.decode(z), loaded.decode(z))


def test_vocoder_save_load_and_shapes(tmp_path):
    voc = VocosVocoder.from_preset("tiny").eval()
    mel = MelAudioCodec().encode(torch.randn(2, 5000) * 0.1)
    with torch.no_grad():
        out = voc(mel)
        assert out.shape == (2, mel.shape[-1] * 294)
        assert voc.reconstruct(torch.randn(2, 5000)).shape == (2, 5000)
        torch.testing.assert_close(
            voc.features(torch.ones(1, 3000) * 0.1), MelAudioCodec().encode(torch.ones(1, 3000) * 0.1)
        )
    voc.save_pretrained(tmp_path / "voc")
    loaded = VocosVocoder.from_pretrained(tmp_path / "voc")
    with torch.no_grad():
        assert torch.equal(loaded(mel), out)
        single = torch.cat([voc(mel[i : i + 1]) for i in range(2)])
        torch.testing.assert_close(single, out, rtol=1e-5, atol=1e-5)


def test_bad_input_raises():
    vae = _tiny()
    with pytest.raises(ValueError, match=r"expected \[B, 80, N >= 1\]"):
        vae.encode(torch.randn(1, 64, 20))
    with pytest.raises(ValueError, match=r"expected \[B, 80, N >= 1\]"):
        vae.encode(torch.randn(80, 20))
    with pytest.raises(ValueError, match=r"expected \[B, T, 80\]"):
        vae.decode(torch.randn(1, 3, 79))
    with pytest.raises(ValueError, match="not divisible"):
        MelVAE.from_preset("tiny", mel=MelSpec(n_mels=82))
    with pytest.raises(ValueError, match="channel_mults"):
        MelVAE(channel_mults=(1, 2))
    with pytest.raises(ValueError, match=r"expected \[B, 80, N\]"):
        VocosVocoder.from_preset("tiny")(torch.randn(1, 40, 10))
