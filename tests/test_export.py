"""Exports read back with the right lengths and values (soundfile, numpy, a tiny BVH parser, decord)."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mmgen.core.skeleton import SMPL24, SMPL24_REST
from mmgen.io.bvh import solve_rotations
from mmgen.io.export import (
    load_motion_npz,
    plot_mel_with_beats,
    render_stick_figure,
    save_bvh,
    save_motion_npz,
    save_video,
    save_wav,
)
from mmgen.io.render import LIMB_COLORS, _fit_view

SR = 22050


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _random_fk(num_frames: int, seed: int = 0) -> np.ndarray:
    """SMPL-24 positions from random local rotations, a random root path and constant bone lengths."""
    rng = np.random.default_rng(seed)
    offsets = np.zeros((24, 3))
    for j, p in enumerate(SMPL24.parents):
        if p >= 0:
            offsets[j] = SMPL24_REST[j] - SMPL24_REST[p]
    rot = (
        Rotation.from_rotvec(rng.normal(0, 0.6, (num_frames * 24, 3)))
        .as_matrix()
        .reshape(num_frames, 24, 3, 3)
    )
    glob = np.zeros_like(rot)
    pos = np.zeros((num_frames, 24, 3))
    pos[:, 0] = rng.normal(0, 0.3, (num_frames, 3)) + [0, 0.9, 0]
    for j, p in enumerate(SMPL24.parents):
        if p < 0:
            glob[:, j] = rot[:, j]
            continue
        glob[:, j] = glob[:, p] @ rot[:, j]
        pos[:, j] = pos[:, p] + glob[:, p] @ offsets[j]
    return pos


def _parse_bvh(path: Path) -> tuple[list[str], np.ndarray, float]:
    """A tiny independent BVH reader: hierarchy + motion -> joint names, positions [T, J, 3], frame time."""
    lines = path.read_text().splitlines()
    names, parents, offsets, channels, stack, current = [], [], [], [], [], None
    i = 0
    while lines[i].strip() != "MOTION":
        tok = lines[i].split()
        if tok[0] in ("ROOT", "JOINT"):
            names.append(tok[1])
            parents.append(stack[-1] if stack else -1)
            current = len(names) - 1
        elif tok[0] == "End":
            current = None
        elif tok[0] == "{":
            stack.append(current)
        elif tok[0] == "}":
            stack.pop()
        elif tok[0] == "OFFSET" and current is not None:
            offsets.append([float(v) for v in tok[1:4]])
        elif tok[0] == "CHANNELS":
            channels.append(tok[2:])
        i += 1
    num_frames = int(lines[i + 1].split(":")[1])
    frame_time = float(lines[i + 2].split(":")[1])
    data = np.array([[float(v) for v in line.split()] for line in lines[i + 3 : i + 3 + num_frames]])
    pos = np.zeros((num_frames, len(names), 3))
    glob = np.zeros((num_frames, len(names), 3, 3))
    col = 0
    for j, chans in enumerate(channels):
        values = data[:, col : col + len(chans)]
        col += len(chans)
        rot_axes = [c[0] for c in chans if c.endswith("rotation")]
        angles = values[:, [chans.index(f"{a}rotation") for a in rot_axes]]
        local = Rotation.from_euler("".join(rot_axes).upper(), angles, degrees=True).as_matrix()
        if parents[j] < 0:
            pos[:, j] = values[:, [chans.index(c) for c in ("Xposition", "Yposition", "Zposition")]]
            glob[:, j] = local
        else:
            p = parents[j]
            pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", glob[:, p], offsets[j])
            glob[:, j] = glob[:, p] @ local
    return names, pos, frame_time


# ------------------------------------------------------------------------------------------ wav / npz


def test_wav_round_trip_exact_and_pcm16(tmp_path):
    import soundfile as sf

    audio = (0.5 * np.sin(np.linspace(0, 200, 5000))).astype(np.float32)
    save_wav(tmp_path / "a.wav", audio, SR)
    back, sr = sf.read(tmp_path / "a.wav", dtype="float32")
    assert sr == SR and np.array_equal(back, audio)
    save_wav(tmp_path / "a2.wav", audio, SR)
    assert _md5(tmp_path / "a.wav") == _md5(tmp_path / "a2.wav")  # no timestamped PEAK chunk
    stereo = np.stack([audio, -audio], axis=1)
    save_wav(tmp_path / "s.wav", stereo, SR)
    assert np.array_equal(sf.read(tmp_path / "s.wav", dtype="float32")[0], stereo)
    save_wav(tmp_path / "b.wav", audio, SR, subtype="PCM_16")
    back16, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    assert len(back16) == len(audio) and np.abs(back16 - audio).max() <= 1.0 / 32768 + 1e-7


@pytest.mark.parametrize(
    "audio, match",
    [
        (np.array([0.0, np.nan], np.float32), "NaN"),
        (np.zeros(10, np.int16), "floating"),
        (np.zeros(0, np.float32), "S > 0"),
    ],
)
def test_wav_bad_input_names_the_file(tmp_path, audio, match):
    with pytest.raises(ValueError, match=match) as err:
        save_wav(tmp_path / "bad.wav", audio, SR)
    assert "bad.wav" in str(err.value)
    assert not (tmp_path / "bad.wav").exists()


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match="subtype"):
        save_wav(tmp_path / "x.wav", np.zeros(10, np.float32), SR, subtype="NOT_A_SUBTYPE")
    assert list(tmp_path.iterdir()) == []


def test_motion_npz_round_trip_and_determinism(tmp_path):
    joints = np.random.default_rng(0).normal(size=(12, 24, 3)).astype(np.float32)
    beats = np.array([0.1, 0.6, 1.1])
    save_motion_npz(tmp_path / "m.npz", joints, 30.0, beat_times=beats, bpm=120.0, style="house")
    data = load_motion_npz(tmp_path / "m.npz")
    assert np.array_equal(data["joints"], joints) and data["joints"].dtype == np.float32
    assert (
        float(data["fps"]) == 30.0
        and np.array_equal(data["beat_times"], beats)
        and str(data["style"]) == "house"
    )
    save_motion_npz(tmp_path / "m2.npz", joints, 30.0, beat_times=beats, bpm=120.0, style="house")
    assert _md5(tmp_path / "m.npz") == _md5(tmp_path / "m2.npz")  # fixed zip timestamps


def test_motion_npz_errors(tmp_path):
    with pytest.raises(ValueError, match="meta 'bad'"):
        save_motion_npz(tmp_path / "m.npz", np.zeros((2, 24, 3)), 30.0, bad=[{"a": 1}])
    with pytest.raises(ValueError, match=r"\[T, J, 3\]"):
        save_motion_npz(tmp_path / "m.npz", np.zeros((2, 24)), 30.0)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_motion_npz(tmp_path / "missing.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt.npz"):
        load_motion_npz(tmp_path / "corrupt.npz")


# ------------------------------------------------------------------------------------------ BVH


@pytest.mark.parametrize("scale", [100.0, 1.0])
def test_bvh_reproduces_joint_positions(tmp_path, scale):
    joints = _random_fk(40, seed=1)
    save_bvh(tmp_path / "d.bvh", joints, fps=30.0, scale=scale)
    names, pos, frame_time = _parse_bvh(tmp_path / "d.bvh")
    assert sorted(names) == sorted(SMPL24.joint_names)  # depth-first order in the file
    pos = pos[:, [names.index(n) for n in SMPL24.joint_names]]
    assert pos.shape == joints.shape and frame_time == pytest.approx(1 / 30, abs=1e-8)
    assert np.abs(pos / scale - joints).max() < 1e-3


def test_bvh_first_frame_is_the_rest_pose(tmp_path):
    joints = _random_fk(5, seed=2)
    offsets, local = solve_rotations(joints)
    assert np.allclose(local[0], np.eye(3), atol=1e-9)  # offsets are frame 0's bone vectors
    assert np.allclose(offsets[4], joints[0, 4] - joints[0, 1])


def test_bvh_bad_input(tmp_path):
    with pytest.raises(ValueError, match="smpl24"):
        save_bvh(tmp_path / "x.bvh", np.zeros((3, 17, 3)), 30.0)
    with pytest.raises(ValueError, match="NaN"):
        save_bvh(tmp_path / "x.bvh", np.full((3, 24, 3), np.nan), 30.0)
    with pytest.raises(ValueError, match="fps"):
        save_bvh(tmp_path / "x.bvh", np.zeros((3, 24, 3)), 0.0)


# ------------------------------------------------------------------------------------------ rendering


def _tpose(num_frames: int = 4) -> np.ndarray:
    return np.repeat(SMPL24_REST[None], num_frames, axis=0)


def test_render_shape_fps_background_and_fill():
    frames = render_stick_figure(_tpose(30), fps=30.0, size=64, out_fps=15.0, background=(10, 20, 30))
    assert frames.shape == (15, 64, 64, 3) and frames.dtype == np.uint8
    assert (frames[:, 0, 0] == [10, 20, 30]).all()
    figure = np.abs(frames[0].astype(int) - [10, 20, 30]).sum(-1) > 60  # [H, W]
    rows = np.nonzero(figure.any(axis=1))[0]
    height = rows.max() - rows.min() + 1
    assert 0.72 * 64 <= height <= 0.88 * 64  # floor to head top fills ~80 %



def test_render_marks_generated_frames_with_a_top_bar_at_the_output_rate():
    from mmgen.io.render import GENERATED_BAR_COLOR

    generated = np.zeros(30, dtype=bool)
    generated[10:20] = True  # input frames 10-19 at 30 fps -> output frames 5-9 at 15 fps
    frames = render_stick_figure(_tpose(30), fps=30.0, size=48, out_fps=15.0, generated=generated)
    plain = render_stick_figure(_tpose(30), fps=30.0, size=48, out_fps=15.0)
    barred = [f for f in range(15) if (frames[f, 0] == GENERATED_BAR_COLOR).all()]
    assert barred == [5, 6, 7, 8, 9]
    assert np.array_equal(frames[:, 2:], plain[:, 2:])  # only the bar differs
    with pytest.raises(ValueError, match="expected a mask of 30 frames, got 29"):
        render_stick_figure(_tpose(30), fps=30.0, size=48, generated=generated[:29])


def test_mark_generated_checks_its_input():
    from mmgen.io.render import mark_generated

    frames = np.zeros((4, 48, 48, 3), np.uint8)
    with pytest.raises(ValueError, match="mask has 3 frames, the video 4"):
        mark_generated(frames, np.ones(3, bool))
    with pytest.raises(ValueError, match=r"expected uint8 frames \[F, H, W, 3\], got float32"):
        mark_generated(frames.astype(np.float32), np.ones(4, bool))
    marked = mark_generated(frames, np.array([False, True, False, True]))
    assert marked[[1, 3], :2].any() and not marked[[0, 2]].any() and not marked[:, 2:].any() and not frames.any()

def test_render_left_limbs_on_the_viewers_right():
    frame = render_stick_figure(_tpose(1), fps=30.0, size=64, floor=False)[0].astype(int)
    left_arm, right_arm = np.array(LIMB_COLORS["left_arm"]), np.array(LIMB_COLORS["right_arm"])

    def count(color, cols):
        return int((np.abs(frame[:, cols] - color).sum(-1) < 40).sum())

    # the figure faces the camera (+z): its left hand (+x) is on the image's right
    assert count(left_arm, slice(40, 64)) > 10 and count(left_arm, slice(0, 24)) == 0
    assert count(right_arm, slice(0, 24)) > 10 and count(right_arm, slice(40, 64)) == 0


@pytest.mark.parametrize("front", ["left", "right"])
def test_render_draws_nearer_bones_on_top(front):
    # the forearms cross at (x, y) = (0, 1.3); the one with the larger z (nearer the camera) wins
    pose = SMPL24_REST.copy()
    pose[:, 2] = 0.0
    z_left = 0.3 if front == "left" else -0.3
    pose[18], pose[20], pose[22] = [0.3, 1.1, z_left], [-0.3, 1.5, z_left], [-0.35, 1.55, z_left]
    pose[19], pose[21], pose[23] = [-0.3, 1.1, -z_left], [0.3, 1.5, -z_left], [0.35, 1.55, -z_left]
    frame = render_stick_figure(pose[None], fps=30.0, size=64, floor=False, line_width=3)[0].astype(int)
    scale, x_mid, floor_row = _fit_view(pose[None], 64, 0.8, head_joint=SMPL24.index("head"))
    row, col = int(floor_row - scale * 1.3), int(32 + scale * (0.0 - x_mid))
    assert np.abs(frame[row, col] - LIMB_COLORS[f"{front}_arm"]).sum() < 15


def test_render_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        render_stick_figure(np.full((2, 24, 3), np.nan), fps=30.0)
    with pytest.raises(ValueError, match="smpl24"):
        render_stick_figure(np.zeros((2, 17, 3)), fps=30.0)


# ------------------------------------------------------------------------------------------ video / plot


def test_video_with_audio_reads_back_with_decord(tmp_path):
    import decord

    rng = np.random.default_rng(0)
    frames = render_stick_figure(_random_fk(60, seed=3) * 0.5 + [0, 0.9, 0], fps=30.0, size=64, out_fps=15.0)
    t = np.arange(2 * SR) / SR
    audio = (0.5 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    path = save_video(
        tmp_path / "v.mp4",
        frames,
        15.0,
        audio=audio + 0.001 * rng.normal(size=len(t)).astype(np.float32),
        sr=SR,
    )
    reader = decord.VideoReader(str(path))
    assert len(reader) == len(frames) == 30 and reader.get_avg_fps() == pytest.approx(15.0)
    decoded = reader.get_batch(list(range(len(reader)))).asnumpy()
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 8  # lossy H.264 + yuv420p
    sound = decord.AudioReader(str(path), sample_rate=SR, mono=True)[:].asnumpy()[0]
    assert len(audio) <= len(sound) <= len(audio) + 2048  # AAC pads a few hundred samples
    corr = np.corrcoef(sound[: len(audio)], audio)[0, 1]
    assert corr > 0.95  # aligned at the start, not delayed by the encoder priming
    save_video(tmp_path / "w.mp4", frames, 15.0)
    save_video(tmp_path / "w2.mp4", frames, 15.0)
    assert _md5(tmp_path / "w.mp4") == _md5(tmp_path / "w2.mp4")


def test_video_bad_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        save_video(tmp_path / "v.mp4", np.zeros((2, 63, 64, 3), np.uint8), 15.0)
    with pytest.raises(ValueError, match="uint8"):
        save_video(tmp_path / "v.mp4", np.zeros((2, 64, 64, 3), np.float32), 15.0)
    with pytest.raises(ValueError, match="sample rate"):
        save_video(
            tmp_path / "v.mp4", np.zeros((2, 64, 64, 3), np.uint8), 15.0, audio=np.zeros(100, np.float32)
        )
    assert not (tmp_path / "v.mp4").exists()


def test_mel_plot_is_a_png_with_the_time_axis(tmp_path):
    from matplotlib.image import imread

    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)).astype(np.float32)
    path = plot_mel_with_beats(
        tmp_path / "m.png", audio, SR, music_beats=[0.25, 0.75], motion_beats=[0.26], title="x"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 300
    with pytest.raises(ValueError, match="NaN"):
        plot_mel_with_beats(tmp_path / "n.png", np.full(100, np.nan, np.float32), SR)
