import pytest
import torch
import torch.nn.functional as F

from mmgen.core.timeline import ModalitySpec
from mmgen.modalities.motion import MotionVAE, TransformerLayer
from mmgen.modalities.motion_train import MotionLossWeights, motion_vae_losses


@pytest.fixture(scope="module")
def vae() -> MotionVAE:
    torch.manual_seed(0)
    return MotionVAE.tiny(channels=(16, 16, 24), strides=(2, 2), latent_channels=4, num_transformer_layers=1).eval()


def test_latent_rate_is_exactly_7_5_hz_and_lengths_round_trip(vae):
    assert vae.latent_rate_hz == 7.5 and vae.downsample == 4
    assert vae.spec == ModalitySpec(4, 7.5, None)
    for t in (2, 3, 4, 5, 37, 150):
        x = torch.randn(2, t, vae.feature_dim)
        mean, logvar = vae.encode(x)
        assert mean.shape == logvar.shape == (2, -(-t // 4), 4)
        assert vae.decode(mean, t).shape == (2, t, vae.feature_dim)
        assert vae.decode(mean).shape == (2, 4 * mean.shape[1], vae.feature_dim)


def test_presets_run_at_7_5_hz():
    assert MotionVAE.tiny().latent_rate_hz == 7.5 and MotionVAE.tiny().spec.channels == 16
    full = MotionVAE()
    assert full.latent_rate_hz == 7.5 and full.downsample == 4
    assert MotionVAE(fps=60.0, strides=(2, 2, 2), channels=(8, 8, 8, 8)).latent_rate_hz == 7.5


def test_odd_lengths_are_padded_by_repeating_the_last_frame(vae):
    x = torch.randn(1, 10, vae.feature_dim)
    padded = torch.cat([x, x[:, -1:].expand(1, 2, -1)], dim=1)  # [1, 12, F]
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(x)[0], vae.encode(padded)[0], atol=0, rtol=0)
        z = vae.encode(x)[0]
        torch.testing.assert_close(vae.decode(z, 10), vae.decode(z)[:, :10], atol=0, rtol=0)


def test_eval_is_deterministic_and_batched_equals_single(vae):
    x = torch.randn(3, 23, vae.feature_dim)
    with torch.no_grad():
        m1, lv1 = vae.encode(x)
        m2, _ = vae.encode(x)
        assert torch.equal(m1, m2)
        assert torch.equal(vae.decode(m1), vae.decode(m1))
        for i in range(3):
            mi, lvi = vae.encode(x[i : i + 1])
            torch.testing.assert_close(mi, m1[i : i + 1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(lvi, lv1[i : i + 1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(vae.decode(mi, 23), vae.decode(m1, 23)[i : i + 1], atol=1e-5, rtol=1e-5)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(1)
    vae = MotionVAE.tiny(skeleton="coco17", dims=2, channels=(16, 24), latent_channels=4, contact_threshold=2.0)
    clip = torch.cumsum(torch.randn(1, 40, 17, 2), dim=1)
    vae.codec.fit([clip])
    vae.latent_stats.fit([torch.randn(50, 4) * 3 + 1])
    vae.eval()
    vae.save_pretrained(tmp_path / "motion")
    loaded = MotionVAE.from_pretrained(tmp_path / "motion")
    assert loaded.config_yaml() == vae.config_yaml() and loaded.codec.contact_threshold == 2.0
    for (k, a), (_, b) in zip(vae.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert {"codec.feature_mean", "codec.feature_std", "latent_stats.mean"} <= set(loaded.state_dict())
    with torch.no_grad():
        assert torch.equal(vae.encode_normalized(vae.codec.encode(clip)), loaded.encode_normalized(loaded.codec.encode(clip)))
        assert torch.equal(vae.reconstruct(clip), loaded.reconstruct(clip))


def test_transformer_layer_attention_matches_the_formula():
    torch.manual_seed(2)
    layer = TransformerLayer(8, num_heads=2).eval()
    x = torch.randn(2, 8, 5)  # [B, C, T]
    h = layer.norm1(x.transpose(1, 2))
    q, k, v = layer.qkv(h).reshape(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)  # [3, B, N, T, D]
    att = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1) @ v  # sqrt(D) = 2
    y = x.transpose(1, 2) + layer.proj(att.permute(0, 2, 1, 3).reshape(2, 5, 8))
    y = y + layer.mlp(layer.norm2(y))
    torch.testing.assert_close(layer(x), y.transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_losses_are_named_and_hand_checkable(vae):
    joints = torch.cumsum(0.01 * torch.randn(2, 20, 24, 3), dim=1) + 1.0
    losses = motion_vae_losses(vae, joints, MotionLossWeights(kl=0.5, rhythm=0.0), sample=False)
    assert set(losses) == {"features", "positions", "velocities", "foot_contact", "kl", "loss"}
    w = MotionLossWeights(kl=0.5)
    total = sum(getattr(w, k) * losses[k] for k in ("features", "positions", "velocities", "foot_contact", "kl"))
    torch.testing.assert_close(losses["loss"], total)
    target = vae.codec.encode(joints)
    mean, logvar = vae.encode(target)
    torch.testing.assert_close(losses["features"], F.mse_loss(vae.decode(mean, 20), target))
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum((1, 2)).mean() / mean[0].numel()
    torch.testing.assert_close(losses["kl"], kl)
    with pytest.raises(ValueError, match="MotionLossWeights.kl must be a finite number >= 0"):
        MotionLossWeights(kl=-1.0)


def test_bad_input_raises_clear_errors(vae):
    with pytest.raises(ValueError, match=r"features: expected \[B, T, 76\]"):
        vae.encode(torch.zeros(1, 8, 75))
    with pytest.raises(ValueError, match="z: expected"):
        vae.decode(torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="num_frames=13 does not fit 3 latent frames"):
        vae.decode(torch.zeros(1, 3, 4), 13)
    with pytest.raises(ValueError, match="smpl24 skeleton"):
        vae.reconstruct(torch.zeros(1, 8, 17, 3))
    with pytest.raises(ValueError, match="too short"):
        vae.reconstruct(torch.zeros(1, 1, 24, 3))
    with pytest.raises(ValueError, match="channels needs len\\(strides\\) \\+ 1"):
        MotionVAE(channels=(8, 8), strides=(2, 2))
