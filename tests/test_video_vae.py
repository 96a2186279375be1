import pytest
import torch

from mmgen.core.timeline import ModalitySpec
from mmgen.modalities.video import CausalConv3d, VideoVAE
from mmgen.modalities.video_train import (
    PatchDiscriminator,
    VideoLossWeights,
    gradient_loss,
    hinge_discriminator_loss,
    temporal_loss,
    video_training_step,
    video_vae_losses,
)


@pytest.fixture(scope="module")
def vae() -> VideoVAE:
    torch.manual_seed(0)
    return VideoVAE.tiny(channels=(12, 24, 48), latent_channels=4).eval()


def _clip(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 64, 64, 3, generator=g) * 2 - 1


def test_toydance_preset_rate_and_shapes(vae):
    assert vae.latent_rate_hz == 3.75 and vae.latent_spatial == (8, 8)
    assert vae.spec == ModalitySpec(4, 3.75, (8, 8))
    with torch.no_grad():
        for t in (1, 3, 4, 5, 9):
            mean, logvar = vae.encode(_clip(1, t))
            assert mean.shape == logvar.shape == (1, -(-t // 4), 8, 8, 4)
            assert vae.decode(mean, t).shape == (1, t, 64, 64, 3)
            assert vae.decode(mean).shape == (1, 4 * mean.shape[1], 64, 64, 3)
    big = VideoVAE(frame_size=(32, 64), channels=(6, 12, 24, 24), num_res_blocks=0, latent_channels=2)
    assert big.latent_spatial == (4, 8) and big.latent_rate_hz == 3.75


def test_lengths_not_divisible_by_4_are_padded_with_the_last_frame(vae):
    x = _clip(1, 6)
    padded = torch.cat([x, x[:, -1:], x[:, -1:]], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(x)[0], vae.encode(padded)[0], atol=0, rtol=0)
        # a single frame encodes alone (as a still of 4 frames)
        torch.testing.assert_close(vae.encode(x[:, :1])[0], vae.encode(x[:, :1].expand(1, 4, -1, -1, -1))[0])


def test_encoder_and_decoder_are_causal_in_time(vae):
    x = _clip(1, 16)
    with torch.no_grad():
        z = vae.encode(x)[0]  # [1, 4, 8, 8, C]
        for k in (0, 5, 11, 15):
            changed = x.clone()
            changed[:, k] = -changed[:, k]
            z2 = vae.encode(changed)[0]
            first = k // 4  # latent frame holding video frame k
            assert torch.equal(z2[:, :first], z[:, :first]), k
            assert (z2[:, first] - z[:, first]).abs().max() > 1e-4, k
        # latent frame 0 of a long clip is that of its first 4 frames alone
        torch.testing.assert_close(vae.encode(x[:, :4])[0][:, 0], z[:, 0], atol=0, rtol=0)
        y = vae.decode(z)
        z3 = z.clone()
        z3[:, 2] += 1.0
        y3 = vae.decode(z3)
        assert torch.equal(y3[:, :8], y[:, :8]) and (y3[:, 8:12] - y[:, 8:12]).abs().max() > 1e-4


def test_causal_conv_pads_left_only():
    conv = CausalConv3d(1, 1, kernel=(3, 1, 1), stride=(2, 1, 1))
    with torch.no_grad():
        conv.conv.weight.copy_(torch.tensor([1.0, 10.0, 100.0]).reshape(1, 1, 3, 1, 1))
        conv.conv.bias.zero_()
    x = torch.arange(1.0, 5.0).reshape(1, 1, 4, 1, 1)  # frames 1, 2, 3, 4
    # padded (first frame repeated): 1 1 2 3 4 -> out j = p[2j] + 10 p[2j+1] + 100 p[2j+2]
    assert conv(x).flatten().tolist() == [1 + 10 + 200, 2 + 30 + 400]


def test_eval_is_deterministic_and_batched_equals_single(vae):
    x = _clip(2, 7)
    with torch.no_grad():
        m, lv = vae.encode(x)
        assert torch.equal(m, vae.encode(x)[0])
        y = vae.decode(m, 7)
        assert torch.equal(y, vae.decode(m, 7))
        for i in range(2):
            mi, lvi = vae.encode(x[i : i + 1])
            torch.testing.assert_close(mi, m[i : i + 1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(lvi, lv[i : i + 1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(vae.decode(mi, 7), y[i : i + 1], atol=1e-5, rtol=1e-5)


def test_save_load_round_trip_is_bit_exact(vae, tmp_path):
    vae.latent_stats.fit([torch.randn(40, 4) + 2])
    vae.save_pretrained(tmp_path / "video")
    loaded = VideoVAE.from_pretrained(tmp_path / "video")
    assert loaded.config_yaml() == vae.config_yaml()
    for (k, a), (_, b) in zip(vae.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = _clip(1, 5)
    with torch.no_grad():
        assert torch.equal(vae.encode_normalized(x), loaded.encode_normalized(x))
        z = vae.encode(x)[0]
        assert torch.equal(vae.decode(z, 5), loaded.decode(z, 5))


def test_gradient_and_hinge_losses_by_hand():
    target = torch.zeros(1, 1, 4, 4, 3)
    assert gradient_loss(target + 0.7, target) == 0  # a constant offset has no edges
    pred = target.clone()
    pred[0, 0, 1, 1, 0] = 1.0  # one bright sub-pixel: 2 of 12*3 x-differences and 2 of 12*3 y-differences are +-1
    assert gradient_loss(pred, target).item() == pytest.approx(0.5 * (2 / 36 + 2 / 36))
    still = torch.zeros(1, 3, 2, 2, 1)
    assert temporal_loss(still + 0.4, still) == 0  # a constant offset does not move
    moving = still.clone()
    moving[0, 1, 0, 0, 0] = 1.0  # one pixel lit in the middle frame: two differences of +-1 of 2*4 values
    assert temporal_loss(moving, still).item() == pytest.approx(2 / 8)
    assert temporal_loss(moving[:, :1], still[:, :1]) == 0  # one frame has no differences
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # relu(1 - real) = [0, 0.5], relu(1 + fake) = [0, 1]
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))


def test_losses_are_named_weighted_and_the_adversarial_step_trains_only_its_own_net():
    torch.manual_seed(3)
    vae = VideoVAE.tiny(channels=(12, 24, 48), latent_channels=2, num_res_blocks=0)
    disc = PatchDiscriminator(channels=8, num_layers=2)
    frames = (torch.rand(2, 4, 64, 64, 3) * 255).to(torch.uint8)
    w = VideoLossWeights(l1=1.0, gradient=0.5, kl=0.1, adversarial=0.2, temporal=0.3)
    losses, recon = video_vae_losses(vae, frames, w, disc, sample=False)
    assert set(losses) == {"l1", "l2", "gradient", "temporal", "kl", "adversarial", "loss"}
    assert recon.shape == (2, 4, 64, 64, 3)
    total = (losses["l1"] + 0.5 * losses["gradient"] + 0.1 * losses["kl"] + 0.2 * losses["adversarial"]
             + 0.3 * losses["temporal"])  # fmt: skip
    torch.testing.assert_close(losses["loss"], total)
    x = frames.float() / 127.5 - 1
    torch.testing.assert_close(losses["l1"], (recon - x).abs().mean())
    torch.testing.assert_close(losses["l2"], (recon - x).pow(2).mean())
    d_before = [p.detach().clone() for p in disc.parameters()]
    opt = torch.optim.SGD(vae.parameters(), lr=0.01)
    d_opt = torch.optim.SGD(disc.parameters(), lr=0.1)
    out = video_training_step(vae, opt, frames, w, disc, d_opt)
    assert set(out) == {"l1", "l2", "gradient", "temporal", "kl", "adversarial", "loss", "discriminator"}
    assert any(not torch.equal(a, b) for a, b in zip(d_before, disc.parameters()))
    assert all(p.requires_grad for p in disc.parameters())  # frozen only during the VAE step
    with pytest.raises(ValueError, match="both discriminator and disc_optimizer"):
        video_training_step(vae, opt, frames, w, disc, None)
    with pytest.raises(ValueError, match="VideoLossWeights.l1"):
        VideoLossWeights(l1=float("nan"))


def test_bad_input_raises_clear_errors(vae):
    with pytest.raises(ValueError, match=r"expected \[B, T, 64, 64, 3\].*got \(1, 4, 32, 64, 3\)"):
        vae.encode(torch.zeros(1, 4, 32, 64, 3))
    with pytest.raises(ValueError, match="got \\(4, 64, 64, 3\\)"):
        vae.encode(torch.zeros(4, 64, 64, 3))
    with pytest.raises(ValueError, match=r"z: expected \[B, T', 8, 8, 4\]"):
        vae.decode(torch.zeros(1, 2, 8, 8, 3))
    with pytest.raises(ValueError, match="num_frames=9 does not fit 2 latent frames"):
        vae.decode(torch.zeros(1, 2, 8, 8, 4), 9)
    with pytest.raises(ValueError, match="power of two"):
        VideoVAE(temporal_downsample=3)
    with pytest.raises(ValueError, match="channels needs 4 entries"):
        VideoVAE(channels=(8, 8))
    with pytest.raises(ValueError, match="shortcut from 3 to 8 channels"):
        VideoVAE(channels=(8, 16, 32, 32))
    with pytest.raises(ValueError, match="multiples of spatial_downsample"):
        VideoVAE(frame_size=(60, 64))
