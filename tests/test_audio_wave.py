"""Waveform VAE: Snake numerics, equality with diffusers' AutoencoderOobleck, lengths, determinism, save/load, errors."""

import warnings

import numpy as np
import pytest
import torch

from mmgen.modalities.audio_wave import WAVE_PRESETS, Snake1d, WaveVAE, WNConv1d


def _small(**kw) -> WaveVAE:
    cfg = {
        "sample_rate": 8000,
        "audio_channels": 1,
        "latent_channels": 4,
        "encoder_channels": 8,
        "decoder_channels": 8,
        "ratios": (2, 4),
        "channel_mults": (1, 2),
    }
    return WaveVAE(**{**cfg, **kw})


def test_snake_matches_numpy_formula():
    snake = Snake1d(3)
    with torch.no_grad():
        snake.alpha.copy_(torch.tensor([0.0, 0.7, -1.2]).view(1, 3, 1))
        snake.beta.copy_(torch.tensor([0.0, -0.4, 1.5]).view(1, 3, 1))
    x = torch.randn(2, 3, 11)
    a, b = np.exp(snake.alpha.detach().numpy()), np.exp(snake.beta.detach().numpy())
    ref = x.numpy() + 1.0 / (b + 1e-9) * np.sin(a * x.numpy()) ** 2
    with torch.no_grad():  # the in-place inference path
        np.testing.assert_allclose(snake(x).numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(snake(x.requires_grad_()).detach().numpy(), ref, rtol=1e-5, atol=1e-6)


def test_snake_gradients_match_finite_differences():
    """Autograd w.r.t. x, log-alpha and log-beta vs central differences (float64)."""
    snake = Snake1d(2).double()
    with torch.no_grad():
        snake.alpha.copy_(torch.tensor([0.3, -0.5], dtype=torch.float64).view(1, 2, 1))
        snake.beta.copy_(torch.tensor([-0.2, 0.4], dtype=torch.float64).view(1, 2, 1))
    x = torch.randn(1, 2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: snake(x), (x,))
    out_grad = torch.randn(1, 2, 5, dtype=torch.float64)
    (snake(x) * out_grad).sum().backward()
    for name in ("alpha", "beta"):
        p = getattr(snake, name)
        numeric = torch.zeros_like(p)
        for c in range(2):
            with torch.no_grad():
                p[0, c, 0] += 1e-6
                up = (snake(x) * out_grad).sum()
                p[0, c, 0] -= 2e-6
                down = (snake(x) * out_grad).sum()
                p[0, c, 0] += 1e-6
            numeric[0, c, 0] = (up - down) / 2e-6
        torch.testing.assert_close(p.grad, numeric, rtol=1e-6, atol=1e-8)


def test_equals_diffusers_oobleck_with_the_same_weights():
    """Same architecture as AutoencoderOobleck: its state dict loads and the outputs agree."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AutoencoderOobleck

        ref = AutoencoderOobleck(
            encoder_hidden_size=16,
            downsampling_ratios=[2, 4],
            channel_multiples=[1, 2],
            decoder_channels=12,
            decoder_input_channels=8,
            audio_channels=2,
        ).eval()
    with torch.no_grad():  # move Snake away from its identity-like init so it matters
        for name, p in ref.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.normal_(0, 0.5)
    ours = WaveVAE(
        audio_channels=2,
        latent_channels=8,
        encoder_channels=16,
        decoder_channels=12,
        ratios=(2, 4),
        channel_mults=(1, 2),
    ).eval()
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=False)
    assert set(missing) == {"latent_stats.mean", "latent_stats.std"} and not unexpected
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    x = 0.5 * torch.randn(2, 2, 800)
    with torch.no_grad():
        dist = ref.encode(x).latent_dist
        mean, logvar = ours.encode(x)
        torch.testing.assert_close(mean, dist.mean.transpose(1, 2), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logvar, dist.logvar.transpose(1, 2), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.decode(mean), ref.decode(dist.mean).sample, rtol=1e-4, atol=1e-5)


def test_sao_preset_matches_stable_audio_open_size():
    """Built on the meta device: no memory, but the full parameter count of diffusers' default model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AutoencoderOobleck

        with torch.device("meta"):
            ref = AutoencoderOobleck()
            vae = WaveVAE.from_preset("sao")
    cfg = WAVE_PRESETS["sao"]
    assert cfg["ratios"] == (2, 4, 4, 8, 8) and cfg["latent_channels"] == 64 and cfg["sample_rate"] == 44100
    assert sum(p.numel() for p in vae.parameters()) == sum(p.numel() for p in ref.parameters()) == 156_112_514
    assert vae.hop_length == 2048 and abs(vae.latent_rate_hz - 21.533203125) < 1e-9
    assert WaveVAE.from_preset("toydance").latent_rate_hz == 7.5
    with pytest.raises(ValueError, match="unknown WaveVAE preset"):
        WaveVAE.from_preset("huge")


@pytest.mark.parametrize("ratios", [(2, 4), (3, 5), (2, 7)])
def test_lengths_exact_for_odd_sizes(ratios):
    vae = _small(ratios=ratios).eval()
    hop = int(np.prod(ratios))
    assert vae.latent_rate_hz == 8000 / hop
    for num_samples in (1, 57, 64, 129):
        x = torch.randn(1, 1, num_samples)
        with torch.no_grad():
            mean, logvar = vae.encode(x)
            assert mean.shape == logvar.shape == (1, -(-num_samples // hop), 4)
            assert vae.decode(mean).shape == (1, 1, mean.shape[1] * hop)
            assert vae.decode(mean, num_samples).shape == (1, 1, num_samples)
            assert vae(x)[0].shape == x.shape


def test_std_is_softplus_plus_eps():
    vae = _small().eval()
    x = torch.randn(1, 1, 64)
    with torch.no_grad():
        h = vae.encoder(x)  # [1, 2L, T]
        mean, logvar = vae.encode(x)
    assert h.shape == (1, 8, 8)
    torch.testing.assert_close(mean, h[:, :4].transpose(1, 2))
    expected = 2 * torch.log(torch.nn.functional.softplus(h[:, 4:]) + 1e-4)
    torch.testing.assert_close(logvar, expected.transpose(1, 2))


def test_eval_is_deterministic_and_batched_equals_single():
    vae = _small().eval()
    x = torch.randn(3, 1, 200)
    with torch.no_grad():
        m1, _ = vae.encode(x)
        m2, _ = vae.encode(x)
        assert torch.equal(m1, m2)
        r1, r2 = vae(x, sample_posterior=False)[0], vae(x, sample_posterior=False)[0]
        assert torch.equal(r1, r2)
        singles = torch.cat([vae.encode(x[i : i + 1])[0] for i in range(3)])
        torch.testing.assert_close(m1, singles, rtol=1e-5, atol=1e-6)
        dec = torch.cat([vae.decode(m1[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(vae.decode(m1), dec, rtol=1e-5, atol=1e-6)


def test_weight_norm_cache_follows_parameter_updates():
    conv = WNConv1d(3, 4, kernel_size=3, padding=1).eval()
    x = torch.randn(1, 3, 10)
    with torch.no_grad():
        y0 = conv(x)
        assert conv._cache is not None
        conv.weight_g.mul_(2.0)  # in-place update, as an optimizer step or load_state_dict does
        y1 = conv(x)
    torch.testing.assert_close(y1 - conv.bias.view(1, -1, 1), 2 * (y0 - conv.bias.view(1, -1, 1)))
    v = conv.weight_v
    w = conv.weight_g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1)
    torch.testing.assert_close(conv(x), torch.nn.functional.conv1d(x, w, conv.bias, padding=1))


def test_save_load_round_trip_is_bit_exact(tmp_path):
    vae = _small(ratios=(2, 3)).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.01 * torch.randn_like(p))
        vae.latent_stats.mean.fill_(0.3)
    vae.save_pretrained(tmp_path / "wave")
    loaded = WaveVAE.from_pretrained(tmp_path / "wave")
    assert loaded.config_yaml() == vae.config_yaml() and loaded.hop_length == 6
    x = torch.randn(2, 1, 100)
    with torch.no_grad():
        assert torch.equal(vae.encode(x)[0], loaded.encode(x)[0])
        z = torch.randn(2, 5, 4)
        assert torch.equal(vae.decode(z), loaded.decode(z))
        assert torch.equal(vae.encode_normalized(x), loaded.encode_normalized(x))


def test_bad_input_raises():
    vae = _small()
    with pytest.raises(ValueError, match=r"expected \[B, 1, S\]"):
        vae.encode(torch.randn(1, 2, 64))
    with pytest.raises(ValueError, match=r"expected \[B, T, 4\]"):
        vae.decode(torch.randn(1, 3, 5))
    with pytest.raises(ValueError, match="NaN"):
        vae.prepare(torch.full((1, 100), float("nan")), 8000)
    with pytest.raises(ValueError, match="too short"):
        vae.prepare(torch.randn(1, 5), 8000)
    assert vae.prepare(torch.randn(1, 2, 100), 8000).shape == (1, 1, 100)  # stereo averaged
    assert vae.prepare(torch.randn(1, 200), 16000).shape == (1, 1, 100)  # resampled
    with pytest.raises(ValueError, match="ratio must be >= 2"):
        _small(ratios=(1, 4))
    with pytest.raises(ValueError, match="equal length"):
        _small(ratios=(2, 4), channel_mults=(1,))
