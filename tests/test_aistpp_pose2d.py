"""LORIS-style 2-D pose + audio reader on test-made files in the release layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmgen.core.errors import MmgenError
from mmgen.data.pose2d import Pose2DSet, load_pose2d, pair_files, read_segment_list

NAMES = ["gBR_sFM_c03_d04_mBR0_ch01", "gKR_sFM_c09_d28_mKR1_ch02", "gPO_sFM_c04_d11_mPO2_ch14"]


def write_loris_set(root: Path, seconds: float = 2.0, pose_fps: float = 20.0, sr: int = 11025) -> dict:
    (root / "audio_s25").mkdir(parents=True)
    (root / "pose2d_s25").mkdir()
    poses = {}
    for i, name in enumerate(NAMES):
        t = np.arange(int(seconds * pose_fps)) / pose_fps
        kp = np.zeros((t.size, 17, 3), np.float32)
        kp[..., 0] = 320 + 50 * np.sin(2 * np.pi * (i + 1) * t)[:, None] + np.arange(17)
        kp[..., 1] = 240 + 10 * np.arange(17)[None, :] + t[:, None]
        kp[..., 2] = 0.9
        poses[name] = kp
        np.save(root / "pose2d_s25" / f"{name}.npy", kp)
        sf.write(
            root / "audio_s25" / f"{name}.wav",
            0.2 * np.sin(2 * np.pi * 330 * np.arange(int(seconds * sr)) / sr),
            sr,
        )
    np.save(root / "pose2d_s25" / "orphan.npy", poses[NAMES[0]])
    lists = root / "lists"
    lists.mkdir()
    (lists / "dance_pose2d_s25_test_segment.txt").write_text(
        "".join(f"yourpath/dataset/LORIS/dance/pose2d_s25/{n}.npy\n" for n in NAMES[::-1][:2])
    )
    return poses


@pytest.fixture()
def loris(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "dance"
    return root, write_loris_set(root)


def test_pairs_lists_fps_and_audio(loris):
    root, poses = loris
    items, skipped = pair_files(root)
    assert [it.name for it in items] == NAMES and [Path(s.path).name for s in skipped] == ["orphan.npy"]
    ds = Pose2DSet(root, sample_rate=22050)
    item = ds[1]
    assert item["name"] == NAMES[1] and item["fps"] == pytest.approx(20.0)
    np.testing.assert_array_equal(item["keypoints"].numpy(), poses[NAMES[1]])
    assert item["audio"].shape == (44100,)  # 2 s resampled 11,025 -> 22,050 Hz
    listed = Pose2DSet(root, segment_list=root / "lists" / "dance_pose2d_s25_test_segment.txt")
    assert [it.name for it in listed.items] == [NAMES[2], NAMES[1]]
    assert read_segment_list(root / "lists" / "dance_pose2d_s25_test_segment.txt")[0] == NAMES[2]


def test_resampled_pose_is_interpolated_in_time(loris):
    root, poses = loris
    kp, _, fps = Pose2DSet(root, fps=8.0).read(0)
    assert fps == 8.0 and kp.shape == (16, 17, 3)  # floor(39 / 2.5) + 1
    src = poses[NAMES[0]]
    np.testing.assert_allclose(kp[1], 0.5 * (src[2] + src[3]), rtol=1e-6)  # t = 0.125 s = source frame 2.5


def test_two_column_pose_gets_unit_confidence(tmp_path):
    np.save(tmp_path / "p.npy", np.ones((5, 17, 2), np.float64))
    kp = load_pose2d(tmp_path / "p.npy")
    assert kp.shape == (5, 17, 3) and kp.dtype == np.float32 and (kp[..., 2] == 1).all()


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((10, 24, 3)), r"expected \(T >= 2, 17, 2 or 3\)"),
        (np.zeros((10, 17)), "expected"),
        (
            np.where(np.arange(10 * 17 * 3).reshape(10, 17, 3) == 7, np.nan, 1.0),
            "NaN or infinite values \\(1 bad frames\\)",
        ),
    ],
)
def test_bad_pose_files(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=message) as info:
        load_pose2d(path)
    assert str(path) in str(info.value)


def test_unreadable_and_missing(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="cannot read the pose array"):
        load_pose2d(tmp_path / "x.npy")
    with pytest.raises(FileNotFoundError, match="audio_s25"):
        Pose2DSet(tmp_path)
    (tmp_path / "audio_s25").mkdir()
    (tmp_path / "pose2d_s25").mkdir()
    with pytest.raises(MmgenError, match="no pose/audio pairs"):
        Pose2DSet(tmp_path)
