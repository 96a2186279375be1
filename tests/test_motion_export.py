"""Motion export: SMPL parameters by inverse kinematics (checked with smplx FK of a test-made SMPL model
and an independent numpy FK), BVH with mean bone lengths, and both through `Generation.save` and
`mmgen generate --export bvh,smpl` (read back with an independent BVH parser and the AIST++ loader)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from test_aistpp import find_smpl_model, numpy_fk, write_fake_smpl
from test_export import _parse_bvh
from test_pipeline import make_pipeline

from mmgen.cli import main
from mmgen.core.skeleton import SMPL24, SMPL24_REST
from mmgen.data.aistpp import load_motion
from mmgen.data.smpl_fk import SMPLForwardKinematics
from mmgen.data.toydance import generate_clip
from mmgen.io.bvh import rest_pose, save_bvh
from mmgen.io.export import load_motion_npz, save_motion_npz
from mmgen.io.smpl_export import SMPLParams, joints_to_smpl, save_smpl, smpl_forward, smpl_rest_joints
from mmgen.pipeline.generation import Generation


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("smpl")
    write_fake_smpl(d)
    return d


def random_smpl_motion(num_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None] / 30.0
    poses = 0.5 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5, (1, 72)) * t + rng.uniform(0, 6, (1, 72)))
    transl = np.stack([0.5 * np.sin(t[:, 0]), 0.9 + 0.05 * np.cos(4 * t[:, 0]), -0.3 * t[:, 0]], axis=1)
    return poses.astype(np.float32), transl.astype(np.float32)


def test_smpl_ik_reproduces_joints_through_smplx_fk(smpl_dir):
    """Joints made by SMPL FK come back through SMPL FK of the exported parameters (1e-5 m)."""
    fk = SMPLForwardKinematics(smpl_dir)
    poses, transl = random_smpl_motion(60)
    joints = fk(torch.from_numpy(poses), torch.from_numpy(transl)).double().numpy()  # [60, 24, 3]
    rest = smpl_rest_joints(smpl_dir)
    np.testing.assert_allclose(rest, fk.rest_joints.double().numpy())
    params = joints_to_smpl(joints, 30.0, rest)
    assert params.poses.shape == (60, 72) and params.trans.shape == (60, 3)
    again = fk(torch.from_numpy(params.poses), torch.from_numpy(params.trans / params.scaling)).double().numpy()
    assert np.abs(again - joints).max() < 1e-5  # smplx (float32)
    independent = numpy_fk(find_smpl_model(smpl_dir), params.poses, params.trans)
    assert np.abs(independent - joints).max() < 1e-5
    # the positions do not fix the twist about each bone: the parameters differ, the joints do not
    assert np.abs(params.poses - poses).max() > 0.1


def test_smpl_ik_keeps_directions_with_smpl_lengths():
    """Joints of other proportions come back with the rest skeleton's bone lengths, same directions."""
    rng = np.random.default_rng(3)
    rest = smpl_rest_joints()  # mmgen's template (no SMPL model given)
    base = SMPLParams(rng.normal(0, 0.4, (20, 72)), rng.normal(0, 0.5, (20, 3)), rest, 30.0)
    joints = smpl_forward(base)
    stretched = joints.copy()  # every bone 1.2x longer: rebuild top-down
    for j, p in enumerate(SMPL24.parents):
        if p >= 0:
            stretched[:, j] = stretched[:, p] + 1.2 * (joints[:, j] - joints[:, p])
    back = smpl_forward(joints_to_smpl(stretched, 30.0, rest))
    for j, p in enumerate(SMPL24.parents):
        if p < 0:
            np.testing.assert_allclose(back[:, j], stretched[:, j], atol=1e-9)  # the root is placed exactly
            continue
        bone, want = back[:, j] - back[:, p], stretched[:, j] - stretched[:, p]
        cos = np.sum(bone * want, -1) / np.linalg.norm(bone, axis=-1) / np.linalg.norm(want, axis=-1)
        assert cos.min() > 1 - 1e-9, SMPL24.joint_names[j]
        np.testing.assert_allclose(np.linalg.norm(bone, axis=-1), np.linalg.norm(rest[j] - rest[p]), rtol=1e-9)


def test_bvh_with_mean_bone_lengths(tmp_path):
    """Generated joints whose bones wobble: 'mean' keeps each bone's mean length, 'first' frame 0's."""
    clip = generate_clip(20003, seconds=2.0, render_video=False)
    wobble = 1 + 0.04 * np.sin(np.arange(len(clip.joints)) / 2.0)  # frame 0: exactly 1
    wobble[0] = 1.1  # an outlier first frame
    joints = clip.joints.astype(np.float64).copy()
    for j, p in enumerate(SMPL24.parents):
        if p >= 0:
            joints[:, j] = joints[:, p] + wobble[:, None] * (clip.joints[:, j] - clip.joints[:, p])
    rest = rest_pose(joints, bone_lengths="mean")
    for j in (4, 7, 18):  # knee, ankle, elbow bones
        p = SMPL24.parents[j]
        assert np.linalg.norm(rest[j] - rest[p]) == pytest.approx(
            np.linalg.norm(joints[:, j] - joints[:, p], axis=-1).mean(), rel=1e-9
        )
    # every joint is off by at most (its bone-length error) x (its chain length, <= 1.2 m here)
    errors = {}
    for mode, reference in (("first", 1.1), ("mean", wobble.mean())):
        save_bvh(tmp_path / f"{mode}.bvh", joints, 30.0, bone_lengths=mode)
        names, pos, _ = _parse_bvh(tmp_path / f"{mode}.bvh")
        pos = pos[:, [names.index(n) for n in SMPL24.joint_names]] / 100.0
        per_frame = np.abs(pos - joints).max(axis=(1, 2))  # [T]
        assert (per_frame <= 1.2 * np.abs(wobble - reference) + 1e-6).all(), mode
        errors[mode] = per_frame[1:].max()  # frames after the outlier
    assert errors["mean"] < 0.5 * errors["first"] and errors["mean"] < 0.06
    with pytest.raises(ValueError, match="bone_lengths"):
        rest_pose(joints, bone_lengths="median")


def _generation(joints: np.ndarray, fps: float = 30.0) -> Generation:
    return Generation(task="music2dance", seconds=len(joints) / fps, joints=joints[None].astype(np.float32), fps=fps)


def test_generation_save_exports_bvh_and_smpl(tmp_path):
    clip = generate_clip(20004, seconds=2.0, render_video=False)
    written = _generation(clip.joints).save(tmp_path, prefix="d", export=("bvh", "smpl"))
    assert {p.name for p in written} == {"d.npz", "d.bvh", "d_smpl.pkl", "d.mp4"}
    names, pos, frame_time = _parse_bvh(tmp_path / "d.bvh")
    pos = pos[:, [names.index(n) for n in SMPL24.joint_names]] / 100.0  # centimetres in the file
    assert frame_time == pytest.approx(1 / 30) and np.abs(pos - clip.joints).max() < 1e-5
    motion = load_motion(tmp_path / "d_smpl.pkl")  # the AIST++ loader (restricted unpickler)
    assert motion.poses.shape == (60, 72) and motion.scaling == 1.0
    rest = (SMPL24_REST - SMPL24_REST[0]).astype(np.float64)  # no SMPL model given: mmgen's template
    np.testing.assert_allclose(load_motion_dict(tmp_path / "d_smpl.pkl")["rest_joints"], rest, atol=1e-7)
    back = smpl_forward(SMPLParams(motion.poses.astype(np.float64), motion.trans.astype(np.float64), rest, 30.0))
    assert_same_directions(back, clip.joints, rest)


def load_motion_dict(path):
    from mmgen.data.annotation_pickle import load_annotation_pickle

    return load_annotation_pickle(path)


def assert_same_directions(back: np.ndarray, joints: np.ndarray, rest: np.ndarray) -> None:
    """Root placed exactly; knees / elbows (one child each) point exactly along the input's bones,
    with the rest skeleton's lengths (float32 parameters in the file: 1e-6)."""
    np.testing.assert_allclose(back[:, 0], joints[:, 0], atol=1e-5)
    for j in (4, 5, 18, 19):
        p = SMPL24.parents[j]
        bone, want = back[:, j] - back[:, p], joints[:, j] - joints[:, p]
        cos = np.sum(bone * want, -1) / np.linalg.norm(bone, axis=-1) / np.linalg.norm(want, axis=-1)
        assert cos.min() > 1 - 1e-6, SMPL24.joint_names[j]
        np.testing.assert_allclose(np.linalg.norm(bone, axis=-1), np.linalg.norm(rest[j] - rest[p]), rtol=1e-5)


def test_export_refuses_what_it_cannot_write(tmp_path):
    pose2d = np.zeros((1, 10, 17, 2), np.float32)
    gen = Generation(task="music2dance", seconds=1.0, joints=pose2d, fps=10.0)
    with pytest.raises(ValueError, match=r"SMPL-24 3-D joints.*\[17, 2\]"):
        gen.save(tmp_path / "a", export=("bvh",))
    with pytest.raises(ValueError, match="unknown format"):
        _generation(np.repeat(SMPL24_REST[None], 5, 0)).save(tmp_path / "b", export=("fbx",))
    with pytest.raises(ValueError, match="no motion"):
        Generation(task="dance2music", seconds=1.0, audio=np.zeros((1, 100), np.float32), sample_rate=100).save(
            tmp_path / "c", export=("smpl",)
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    save_smpl(tmp_path / "ok.pkl", joints_to_smpl(np.repeat(SMPL24_REST[None], 3, 0), 30.0))
    with pytest.raises(ValueError, match="fps"):
        joints_to_smpl(np.repeat(SMPL24_REST[None], 3, 0), 0.0)


def test_cli_generate_exports(tmp_path, smpl_dir, capsys):
    pipe_dir = tmp_path / "pipe"
    make_pipeline(video=False).save_pretrained(pipe_dir)
    clip = generate_clip(20005, seconds=2.0, render_video=False)
    save_motion_npz(tmp_path / "dance.npz", clip.joints, clip.fps)
    base = ["generate", "--pipeline", str(pipe_dir), "--task", "dance2music", "--motion", str(tmp_path / "dance.npz"),
            "--steps", "1", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "out"), "--export", "bvh,smpl", "--smpl-dir", str(smpl_dir)]) == 0
    out = tmp_path / "out"
    joints = load_motion_npz(out / "sample.npz")["joints"]
    np.testing.assert_array_equal(joints, clip.joints)  # dance2music returns the given dance
    names, pos, _ = _parse_bvh(out / "sample.bvh")
    assert np.abs(pos[:, [names.index(n) for n in SMPL24.joint_names]] / 100.0 - joints).max() < 1e-5
    # SMPL parameters for the test model: FK gives the dance's bone directions with that model's lengths
    motion = load_motion(out / "sample_smpl.pkl")
    fk = SMPLForwardKinematics(smpl_dir)
    back = fk(torch.from_numpy(motion.poses), torch.from_numpy(motion.transl)).double().numpy()
    assert_same_directions(back, joints, fk.rest_joints.double().numpy())
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "o2"), "--export", "obj"]) == 2
    assert "--export: unknown format(s) ['obj']" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "o3"), "--export", "smpl", "--smpl-dir", str(tmp_path)]) == 2
    assert "SMPL_MALE.pkl" in capsys.readouterr().err and not (tmp_path / "o3").exists()


def test_rotation_helper_is_consistent():
    # smpl_forward's convention: a rotation of the root turns the whole body about the root joint
    rest = smpl_rest_joints()
    poses = np.zeros((1, 72))
    poses[0, :3] = Rotation.from_euler("y", 90, degrees=True).as_rotvec()
    pos = smpl_forward(SMPLParams(poses, np.zeros((1, 3)), rest, 30.0))[0]
    np.testing.assert_allclose(pos[0], rest[0], atol=1e-12)
    np.testing.assert_allclose(pos[1] - pos[0], Rotation.from_rotvec(poses[0, :3]).apply(rest[1] - rest[0]), atol=1e-12)
