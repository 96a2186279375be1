import numpy as np
import pytest
import torch

from mmgen.core.skeleton import SMPL24_REST
from mmgen.modalities.motion_features import KinematicFeatures, _rotate_y

# COCO-17 keypoints approximated from SMPL-24 joints (+ small head offsets for eyes/ears)
_COCO_FROM_SMPL = [15, 15, 15, 15, 15, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]
_HEAD_OFFSETS = np.array(
    [[0, 0.05, 0.10], [0.03, 0.08, 0.08], [-0.03, 0.08, 0.08], [0.07, 0.06, 0.0], [-0.07, 0.06, 0.0]]
    + [[0, 0, 0]] * 12,
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def smpl_joints() -> torch.Tensor:
    """Two ToyDance clips (the 'real' joints of this project): [2, 120, 24, 3]."""
    from mmgen.data.toydance import generate_clip

    return torch.stack([torch.as_tensor(generate_clip(seed, seconds=4.0).joints) for seed in (3, 4)])


def _turning_clip(frames: int = 60) -> torch.Tensor:
    """Rest pose walking a curve while turning 0.8 rad/s, with jitter: [1, T, 24, 3]."""
    g = torch.Generator().manual_seed(1)
    t = torch.arange(frames) / 30.0
    rest = torch.from_numpy(SMPL24_REST)
    joints = _rotate_y(rest.expand(frames, -1, -1), (0.8 * t + 0.3)[:, None])
    joints = joints + torch.stack([torch.sin(t), 0.1 * torch.sin(5 * t), 0.5 * t], -1)[:, None]
    return (joints + 0.02 * torch.randn(frames, 24, 3, generator=g)).unsqueeze(0)


@pytest.mark.parametrize("facing", [False, True])
def test_inverse_is_exact_on_toydance_joints(smpl_joints, facing):
    codec = KinematicFeatures("smpl24", 3, facing_invariant=facing)
    feats = codec.features(smpl_joints)
    assert feats.shape == (2, smpl_joints.shape[1], codec.feature_dim)
    rebuilt = codec.joints(feats, codec.initial_state(smpl_joints))
    torch.testing.assert_close(rebuilt, smpl_joints, atol=2e-6, rtol=0)
    # without the frame-0 state the clip starts at the horizontal origin (facing +z), shape intact
    moved = codec.joints(feats)
    root0 = moved[:, 0, 0]
    assert torch.allclose(root0[:, [0, 2]], torch.zeros(2, 2), atol=1e-6)
    torch.testing.assert_close(moved[..., 1], smpl_joints[..., 1], atol=2e-6, rtol=0)


def test_inverse_is_exact_for_coco17_in_3d_and_2d(smpl_joints):
    coco = smpl_joints[:, :, _COCO_FROM_SMPL] + torch.from_numpy(_HEAD_OFFSETS)
    for dims, facing in ((3, False), (3, True), (2, False)):
        x = coco[..., :dims].contiguous()
        codec = KinematicFeatures("coco17", dims, facing_invariant=facing)
        feats = codec.features(x)
        # no real root joint in COCO-17: all 17 joints are stored relative to the hip midpoint
        assert codec.slices["rel"].stop == 17 * dims
        torch.testing.assert_close(codec.joints(feats, codec.initial_state(x)), x, atol=2e-6, rtol=0)


def test_feature_values_by_hand():
    frames = 8
    joints = torch.from_numpy(SMPL24_REST).repeat(frames, 1, 1).clone()  # [T, 24, 3]
    step = torch.tensor([0.1, 0.0, -0.2])
    joints += torch.arange(frames)[:, None, None] * step  # the whole body translates
    joints[4:, 7, 0] += 0.05 * torch.arange(1, frames - 3)  # the left ankle slides from frame 4 on
    codec = KinematicFeatures("smpl24", 3)
    f = codec.features(joints)[0]
    s = codec.slices
    torch.testing.assert_close(f[0, s["root_velocity"]], torch.zeros(2))
    torch.testing.assert_close(f[1:, s["root_velocity"]], torch.tensor([0.1, -0.2]).expand(frames - 1, 2))
    torch.testing.assert_close(f[:, s["root_height"]], torch.full((frames, 1), float(SMPL24_REST[0, 1])))
    rel = f[:, s["rel"]].reshape(frames, 23, 3)
    torch.testing.assert_close(rel[0], torch.from_numpy(SMPL24_REST[1:] - SMPL24_REST[0]))
    # contact = |p[t+1] - p[t]| < 0.01; displacement 0.1/0.2 per frame from the body move -> no contact
    assert f[:, s["contacts"]].sum() == 4  # only the last frame (displacement defined as 0)
    joints_still = torch.from_numpy(SMPL24_REST).repeat(frames, 1, 1).clone()
    joints_still[5:, 7, 0] += 0.05 * torch.arange(1, frames - 4)  # left ankle moves from frame 4 to 5 on
    c = codec.features(joints_still)[0, :, s["contacts"]]
    torch.testing.assert_close(c[:, 0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 1]))  # feet order: 7, 10, 8, 11
    assert c[:, 1:].all()


def test_facing_invariant_features_ignore_global_rotation_and_translation():
    clip = _turning_clip()
    moved = _rotate_y(clip, torch.tensor(1.1)) + torch.tensor([1.0, 0.0, 2.0])
    inv = KinematicFeatures("smpl24", 3, facing_invariant=True)
    torch.testing.assert_close(inv.features(moved), inv.features(clip), atol=2e-6, rtol=0)
    plain = KinematicFeatures("smpl24", 3)
    assert (plain.features(moved) - plain.features(clip)).abs().max() > 0.1  # plain features see the rotation
    # heading: the rest pose (+x = left) faces +z (up to the template's slight asymmetry)
    rest = torch.from_numpy(SMPL24_REST)[None, None]
    assert inv.heading(rest).abs().item() < 0.02
    torch.testing.assert_close(inv.heading(_rotate_y(rest, torch.tensor(0.5))), inv.heading(rest) + 0.5)


def test_fit_matches_numpy_and_normalization_inverts(smpl_joints):
    codec = KinematicFeatures("smpl24", 3, min_std=1e-3)
    codec.fit([smpl_joints[0], smpl_joints[1]])
    f = codec.features(smpl_joints).reshape(-1, codec.feature_dim).double().numpy()
    np.testing.assert_allclose(codec.feature_mean.numpy(), f.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(codec.feature_std.numpy(), np.maximum(f.std(0, ddof=1), 1e-3), rtol=1e-5, atol=1e-6)
    rel_var = f[:, codec.slices["rel"]].var(0, ddof=1)
    assert codec.position_scale.item() == pytest.approx(np.sqrt(rel_var.mean()), rel=1e-5)
    disp = np.diff(smpl_joints.double().numpy(), axis=1)
    assert codec.velocity_scale.item() == pytest.approx(np.sqrt((disp**2).mean()), rel=1e-5)
    norm = codec.encode(smpl_joints)
    assert norm.reshape(-1, codec.feature_dim).mean(0).abs().max() < 1e-4
    torch.testing.assert_close(codec.decode(norm, codec.initial_state(smpl_joints)), smpl_joints, atol=1e-5, rtol=0)


def test_bad_input_raises_clear_errors():
    codec = KinematicFeatures("smpl24", 3)
    good = torch.zeros(1, 10, 24, 3)
    with pytest.raises(ValueError, match=r"\[B, T, 24, 3\] for the smpl24 skeleton.*got \(1, 10, 23, 3\)"):
        codec.features(torch.zeros(1, 10, 23, 3))
    with pytest.raises(ValueError, match="got \\(1, 10, 24, 2\\)"):
        codec.features(torch.zeros(1, 10, 24, 2))
    bad = good.clone()
    bad[0, 3, 5, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        codec.features(bad)
    with pytest.raises(ValueError, match="too short \\(1 frames\\)"):
        codec.features(torch.zeros(1, 1, 24, 3))
    with pytest.raises(ValueError, match="unknown skeleton 'smplx'"):
        KinematicFeatures("smplx")
    with pytest.raises(ValueError, match="facing_invariant needs 3-D"):
        KinematicFeatures("coco17", 2, facing_invariant=True)
    with pytest.raises(ValueError, match=r"features: expected \[B, T, 76\]"):
        codec.joints(torch.zeros(1, 10, 75))
    with pytest.raises(ValueError, match="state: expected"):
        codec.joints(torch.zeros(1, 10, 76), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="at least two frames"):
        codec.fit([])
