"""Audio losses and discriminators: references (auraloss, librosa, closed forms), hand-computed GAN terms, one GAN step."""

import auraloss
import librosa
import numpy as np
import pytest
import torch

from mmgen.modalities.audio_discriminators import AudioDiscriminator, MelPatchDiscriminator
from mmgen.modalities.audio_losses import (
    AudioReconstructionLoss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    discriminator_adversarial_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    kl_loss,
)
from mmgen.modalities.audio_training import train_step, vocoder_forward
from mmgen.modalities.vocoder import VocosVocoder


def test_kl_matches_torch_distributions():
    mean, logvar = torch.randn(3, 7, 5), torch.randn(3, 7, 5)
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    ref = torch.distributions.kl_divergence(q, p).mean()
    torch.testing.assert_close(kl_loss(mean, logvar), ref, rtol=1e-5, atol=1e-6)
    assert float(kl_loss(torch.zeros(4, 3), torch.zeros(4, 3))) == 0.0
    # hand value: mu = 1, var = e -> 0.5 * (1 + e - 1 - 1)
    np.testing.assert_allclose(float(kl_loss(torch.ones(1), torch.ones(1))), 0.5 * (np.e - 1), rtol=1e-6)


def test_multi_resolution_stft_equals_auraloss():
    """auraloss pads reflectively, we pad with zeros: silent edges longer than n_fft / 2 make both equal."""
    torch.manual_seed(1)
    x, y = (torch.nn.functional.pad(torch.randn(2, 1, 8000), (600, 600)) for _ in range(2))
    ref = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=[1024, 512], hop_sizes=[256, 128], win_lengths=[1024, 400]
    )(x, y)
    ours = MultiResolutionSTFTLoss(fft_sizes=(1024, 512), hop_sizes=(256, 128), win_lengths=(1024, 400))(x, y)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    assert float(MultiResolutionSTFTLoss()(x, x)) == 0.0


def test_mel_loss_matches_a_librosa_computation():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(6000).astype(np.float32), rng.standard_normal(6000).astype(np.float32)
    ours = MultiScaleMelLoss(22050, fft_sizes=(512, 1024), n_mels=(40, 80))(
        torch.from_numpy(x)[None], torch.from_numpy(y)[None]
    )
    ref = []
    for n_fft, n_mels in ((512, 40), (1024, 80)):
        mx, my = (
            np.log(
                np.maximum(
                    librosa.feature.melspectrogram(
                        y=s, sr=22050, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, power=1.0
                    ),
                    1e-5,
                )
            )
            for s in (x, y)
        )
        ref.append(np.abs(mx - my).mean())
    np.testing.assert_allclose(float(ours), np.mean(ref), rtol=1e-4)


def _disc_out(values):
    """A fake discriminator output: one sub-discriminator per value, logits and one feature map."""
    return [(torch.tensor(v), [torch.tensor(v) * 2]) for v in values]


def test_adversarial_losses_by_hand():
    real, fake = _disc_out([[0.5, 2.0]]), _disc_out([[-2.0, 0.3]])
    # hinge: D: mean(relu(1 - r)) + mean(relu(1 + f)) = (0.5 + 0)/2 + (0 + 1.3)/2; G: mean(relu(1 - f)) = (3 + 0.7)/2
    d = discriminator_adversarial_loss(real, fake, "hinge")
    np.testing.assert_allclose(float(d["disc"]), 0.25 + 0.65, rtol=1e-6)
    np.testing.assert_allclose(float(generator_adversarial_loss(fake, "hinge")), 1.85, rtol=1e-6)
    # least squares: D: mean((r-1)^2) + mean(f^2) = (0.25 + 1)/2 + (4 + 0.09)/2; G: mean((f-1)^2) = (9 + 0.49)/2
    d = discriminator_adversarial_loss(real, fake, "lsgan")
    np.testing.assert_allclose(float(d["disc_real"]), 0.625, rtol=1e-6)
    np.testing.assert_allclose(float(d["disc_fake"]), 2.045, rtol=1e-6)
    np.testing.assert_allclose(float(generator_adversarial_loss(fake, "lsgan")), 4.745, rtol=1e-6)
    # two sub-discriminators add up
    two = generator_adversarial_loss(_disc_out([[-2.0, 0.3], [-2.0, 0.3]]), "hinge")
    np.testing.assert_allclose(float(two), 3.7, rtol=1e-6)
    # feature matching: L1 between feature maps 2r and 2f
    np.testing.assert_allclose(float(feature_matching_loss(real, fake)), (5.0 + 3.4) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="hinge"):
        generator_adversarial_loss(fake, "wgan")


def test_discriminators_shapes_and_gradients():
    disc = AudioDiscriminator(
        audio_channels=2, periods=(2, 3), period_channels=(8, 16), fft_sizes=(256, 128), stft_channels=8
    )
    x = torch.randn(2, 2, 3001, requires_grad=True)
    out = disc(x)
    assert len(out) == 4
    for logits, feats in out:
        assert logits.shape[0] == 2 and len(feats) >= 3
    torch.stack([logits.mean() for logits, _ in out]).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    mel_out = MelPatchDiscriminator((8, 16))(torch.randn(3, 80, 30))
    assert len(mel_out) == 1 and mel_out[0][0].shape[0] == 3


def test_reconstruction_loss_terms_are_named_and_weighted():
    loss = AudioReconstructionLoss(
        l1_weight=0.5, stft_weight=2.0, mel_weight=3.0, kl_weight=0.1, adv_weight=0.0, fm_weight=0.0
    )
    x, y = torch.randn(2, 1, 4096), torch.randn(2, 1, 4096)
    mean, logvar = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    terms = loss(x, y, mean, logvar)
    assert set(terms) == {"l1", "stft", "mel", "kl", "total"}
    expected = 0.5 * terms["l1"] + 2.0 * terms["stft"] + 3.0 * terms["mel"] + 0.1 * terms["kl"]
    torch.testing.assert_close(terms["total"], expected)
    torch.testing.assert_close(terms["kl"], kl_loss(mean, logvar))
    with pytest.raises(ValueError, match="differ"):
        loss(x, y[..., :-1])
    with pytest.raises(ValueError, match="non-negative"):
        AudioReconstructionLoss(kl_weight=-1.0)


def test_gan_train_step_updates_both_players():
    torch.manual_seed(0)
    voc = VocosVocoder.from_preset("tiny", num_layers=1)
    disc = AudioDiscriminator(periods=(2, 3), period_channels=(8, 16), fft_sizes=(512,), stft_channels=8)
    loss = AudioReconstructionLoss(
        stft_weight=1.0, mel_weight=1.0, adv_weight=1.0, fm_weight=2.0, kl_weight=0.0
    )
    opt_g, opt_d = torch.optim.Adam(voc.parameters(), 1e-3), torch.optim.Adam(disc.parameters(), 1e-3)
    wave = 0.3 * torch.randn(2, 4096)
    before_g = [p.detach().clone() for p in voc.parameters()]
    before_d = [p.detach().clone() for p in disc.parameters()]
    logs = train_step(vocoder_forward(voc, wave), loss, opt_g, disc, opt_d, max_grad_norm=10.0)
    assert {"stft", "mel", "adv", "fm", "total", "disc", "disc_real", "disc_fake", "grad_norm"} <= set(logs)
    assert all(torch.isfinite(v).all() for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(before_g, voc.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, disc.parameters()))
    assert all(p.requires_grad for p in disc.parameters())
    with pytest.raises(ValueError, match="both"):
        train_step(vocoder_forward(voc, wave), loss, opt_g, disc, None)


def test_mel_vae_gan_step_with_patch_discriminator():
    """The mel VAE's optional GAN: L1 + KL + adversarial + feature matching on log-mel images."""
    from mmgen.modalities.audio_mel import MelVAE
    from mmgen.modalities.audio_training import vae_forward

    vae = MelVAE.from_preset("tiny")
    disc = MelPatchDiscriminator((8, 16))
    loss = AudioReconstructionLoss(
        l1_weight=1.0, stft_weight=0.0, mel_weight=0.0, kl_weight=1e-4, adv_weight=0.1, fm_weight=1.0
    )
    opt_g, opt_d = torch.optim.Adam(vae.parameters(), 1e-3), torch.optim.Adam(disc.parameters(), 1e-3)
    logs = train_step(vae_forward(vae, torch.randn(2, 80, 40) - 5), loss, opt_g, disc, opt_d)
    assert {"l1", "kl", "adv", "fm", "total", "disc"} <= set(logs)
    expected = logs["l1"] + 1e-4 * logs["kl"] + 0.1 * logs["adv"] + 1.0 * logs["fm"]
    torch.testing.assert_close(logs["total"], expected)


def test_spectral_terms_stay_float32_under_bf16_autocast():
    x, y = 0.1 * torch.randn(2, 1, 4096), 0.1 * torch.randn(2, 1, 4096)
    loss = AudioReconstructionLoss(adv_weight=0.0, fm_weight=0.0)
    ref = loss(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss(x.bfloat16(), y.bfloat16())
        features = VocosVocoder.from_preset("tiny", num_layers=1).features(x[:, 0])
    assert features.dtype == torch.float32
    for name in ("stft", "mel"):
        assert low[name].dtype == torch.float32
        torch.testing.assert_close(low[name], ref[name], rtol=0.02, atol=0.02)  # only the bf16 inputs differ
