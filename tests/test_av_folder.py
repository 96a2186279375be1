"""Video+audio folder reader on test-made files: frames, audio length/alignment, skips with reasons."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from mmgen.core.errors import MmgenError
from mmgen.data.av_folder import AVFolder, frame_indices, probe, read_av, scan_folder
from mmgen.io.audio import resample_audio

SR = 16000


def make_video(
    path: Path,
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (48, 64),
    audio: bool = True,
    seed: int = 0,
    audio_delay: int = 0,
    codecs: tuple[str, str] = ("libx264", "aac"),
) -> np.ndarray | None:
    """Write a video (+audio) file with PyAV. Frame i is gray level 4·i on the right half and red on
    the left half; the audio is band-limited noise starting `audio_delay` samples after the first
    frame. Returns the audio written (or None)."""
    h, w = size
    with av.open(str(path), "w") as c:
        v = c.add_stream(codecs[0], rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"crf": "10"} if codecs[0] == "libx264" else {}
        a = None
        if audio:
            a = c.add_stream(codecs[1], rate=SR)
            a.layout = "mono"
        for i in range(round(seconds * fps)):
            img = np.full((h, w, 3), 4 * i % 256, np.uint8)
            img[:, : w // 2] = (200, 30, 30)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is None:
            return None
        rng = np.random.default_rng(seed)
        y = np.convolve(rng.standard_normal(int(seconds * SR)), np.ones(8) / 8, mode="same").astype(
            np.float32
        )
        y *= 0.5 / np.abs(y).max()
        hop = a.codec_context.frame_size or 1024
        for s in range(0, y.size, hop):
            chunk = y[None, s : s + hop]
            if chunk.shape[1] < hop:
                chunk = np.pad(chunk, ((0, 0), (0, hop - chunk.shape[1])))
            fr = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            fr.sample_rate, fr.pts = SR, audio_delay + s
            for p in a.encode(fr):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    return y


def make_folder(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    refs = {"a.mp4": make_video(root / "a.mp4"), "sub/b.mkv": None}
    (root / "sub").mkdir()
    refs["sub/b.mkv"] = make_video(root / "sub" / "b.mkv", seconds=1.5, fps=30, seed=1)
    make_video(root / "silent.mp4", audio=False)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    (root / "notes.txt").write_text("not a video")
    return refs


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("videos")
    return root, make_folder(root)


def lag_and_corr(y: np.ndarray, ref: np.ndarray) -> tuple[int, float]:
    n = min(y.size, ref.size) - 400
    c = np.correlate(y[: n + 400], ref[:n], mode="valid")
    best = int(np.argmax(c))
    return best, float(c[best] / np.sqrt((ref[:n] ** 2).sum() * (y[best : best + n] ** 2).sum()))


def test_scan_reports_no_audio_and_corrupt_with_reasons(folder):
    root, _ = folder
    items, skipped = scan_folder(root)
    assert sorted(Path(i.path).name for i in items) == ["a.mp4", "b.mkv"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons.keys() == {"silent.mp4", "corrupt.mp4"}
    assert reasons["silent.mp4"] == "no audio track"
    assert "decord cannot open" in reasons["corrupt.mp4"]
    items_any, skipped_any = scan_folder(root, require_audio=False)
    assert len(items_any) == 3 and len(skipped_any) == 1


def test_frames_and_audio_match_the_source(folder):
    root, refs = folder
    info = probe(root / "a.mp4")
    assert (info.num_frames, info.fps, info.height, info.width, info.audio_rate) == (50, 25.0, 48, 64, SR)
    clip = read_av(info, fps=10, sample_rate=8000, size=None)
    assert clip.frames.shape == (20, 48, 64, 3) and clip.frames.dtype == np.uint8
    # output frame k shows source frame floor(2.5 k): its gray level is 4 * that index
    gray = clip.frames[:, :, 40:, :].astype(np.float64).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(gray, 4 * np.floor(2.5 * np.arange(20)), atol=2.0)
    # audio covers exactly the 20 frames (2 s) and is aligned with what was written
    assert clip.audio.shape == (16000,) and clip.audio.dtype == np.float32
    lag, corr = lag_and_corr(clip.audio, resample_audio(refs["a.mp4"], SR, 8000))
    assert lag == 0 and corr > 0.95


def test_window_resize_and_center_crop(folder):
    root, refs = folder
    clip = read_av(root / "a.mp4", fps=25, sample_rate=SR, size=(32, 32), start=0.5, seconds=1.0)
    assert clip.frames.shape == (25, 32, 32, 3)
    gray = clip.frames[:, :, 20:, :].astype(np.float64).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(gray, 4 * (12 + np.arange(25)), atol=2.5)  # starts at source frame 12
    left = clip.frames[:, :, :14].reshape(-1, 3).mean(0)  # 64x48 -> 43x32 -> centre 32: red half kept
    assert left[0] > 150 and left[1] < 80
    assert clip.audio.shape == (SR,)
    lag, corr = lag_and_corr(clip.audio, refs["a.mp4"][SR // 2 :])
    assert lag == 0 and corr > 0.95


@pytest.mark.parametrize("fps, expected", [(30, 45), (15, 22), (7.5, 11)])
def test_mkv_frame_count_and_audio_length_match_to_one_frame(folder, fps, expected):
    root, refs = folder
    clip = read_av(root / "sub" / "b.mkv", fps=fps, sample_rate=22050, size=(16, 16), crop=False)
    assert clip.frames.shape == (expected, 16, 16, 3)
    assert abs(clip.audio.size - 1.5 * 22050) <= 22050 / fps  # within one video frame of 1.5 s
    assert clip.audio.size == round(expected / fps * 22050)
    lag, corr = lag_and_corr(clip.audio, resample_audio(refs["sub/b.mkv"], SR, 22050))
    assert lag == 0 and corr > 0.95


def test_webm_opus_and_late_audio_stay_in_sync(tmp_path):
    y = make_video(tmp_path / "c.webm", seconds=1.0, fps=20, codecs=("libvpx-vp9", "libopus"))
    clip = read_av(tmp_path / "c.webm", fps=20, sample_rate=SR, size=(32, 32))
    assert clip.frames.shape == (20, 32, 32, 3) and clip.audio.shape == (SR,)
    lag, corr = lag_and_corr(clip.audio, y)
    assert lag == 0 and corr > 0.9
    y = make_video(tmp_path / "late.mp4", audio_delay=SR // 2)  # audio starts 0.5 s after the first frame
    clip = read_av(tmp_path / "late.mp4", fps=25, sample_rate=SR)
    assert clip.audio.shape == (2 * SR,)
    lag, corr = lag_and_corr(clip.audio, np.concatenate([np.zeros(SR // 2, np.float32), y]))
    assert lag == 0 and corr > 0.95


def test_frame_indices_convention_and_bad_windows():
    assert frame_indices(50, 25, 10).tolist() == [int(2.5 * k) for k in range(20)]
    assert frame_indices(50, 25, 25, start=1.0, seconds=0.2).tolist() == [25, 26, 27, 28, 29]
    with pytest.raises(ValueError, match="exceeds"):
        frame_indices(50, 25, 25, start=1.5, seconds=1.0)


def test_dataset_windows_and_failure_mid_epoch(folder, tmp_path):
    root, _ = folder
    ds = AVFolder(root, fps=10, size=(24, 24), sample_rate=8000, clip_seconds=1.0, stride_seconds=0.5)
    assert ds.num_skipped == 2 and len(ds) == 3 + 2  # a.mp4: 0, .5, 1.0 ; b.mkv: 0, .5
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    assert batch["frames"].shape == (5, 10, 24, 24, 3) and batch["audio"].shape == (5, 8000)
    # a file that breaks after the scan: reported, and the next item is returned instead
    broken = tmp_path / "v"
    broken.mkdir()
    make_video(broken / "x.mp4")
    make_video(broken / "y.mp4", seed=3)
    ds2 = AVFolder(broken, fps=5, size=(16, 16), sample_rate=8000)
    (broken / "x.mp4").write_bytes(b"garbage")
    item = ds2[0]
    assert item["path"].endswith("y.mp4") and item["audio"].shape == (16000,)
    assert len(ds2.skipped) == 1 and ds2.skipped[0].path.endswith("x.mp4")
    (broken / "y.mp4").write_bytes(b"garbage")
    with pytest.raises(MmgenError, match="every file of the folder failed"):
        ds2[1]


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(NotADirectoryError):
        scan_folder(tmp_path / "nope")
    (tmp_path / "corrupt.mp4").write_bytes(b"xx")
    with pytest.raises(MmgenError, match="no usable video.*corrupt.mp4"):
        AVFolder(tmp_path)
