"""Video reading through decord or PyAV (`mmgen.io.video_backend`): both give the same frames,
frame count, rate and size on a made mp4; bad files and backends are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from mmgen.io.export import save_video
from mmgen.io.video_backend import VideoReadError, backend_name, probe_video, read_frames
from mmgen.modalities.video_codec import read_video

pytest.importorskip("decord")


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    t = np.arange(18)[:, None, None]
    y, x = np.mgrid[0:32, 0:64]
    frames = np.stack([(x * 5 + t * 9) % 256, (y * 7 + t * 3) % 256, (x + y + t * 11) % 256], axis=-1)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    save_video(path, frames.astype(np.uint8), fps=15.0)
    return path, frames.astype(np.uint8)


def test_both_backends_give_the_same_frames(mp4):
    path, made = mp4
    a, b = probe_video(path, "decord"), probe_video(path, "av")
    assert a == b and (a.num_frames, a.fps, a.height, a.width) == (18, 15.0, 32, 64)
    fa, fb = read_frames(path, backend="decord"), read_frames(path, backend="av")
    assert fa.shape == fb.shape == (18, 32, 64, 3) and fa.dtype == fb.dtype == np.uint8
    assert np.abs(fa.astype(int) - fb.astype(int)).mean() < 0.5  # same FFmpeg decoder, same conversion
    assert np.abs(fa.astype(int) - made.astype(int)).mean() < 12  # and it is the video that was written
    idx = [0, 5, 5, 17, 30]  # repeats, and past the end -> the last frame
    sa, sb = read_frames(path, idx, backend="decord"), read_frames(path, idx, backend="av")
    np.testing.assert_array_equal(sb, fb[[0, 5, 5, 17, 17]])
    assert np.abs(sa.astype(int) - sb.astype(int)).mean() < 0.5


def test_decord_falls_back_to_pyav_on_the_widths_it_cannot_output(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (4, 16, 48, 3), dtype=np.uint8)
    save_video(tmp_path / "w48.mp4", frames, fps=15.0)  # decord 0.6 fails on width 48 (dmlc/decord#336)
    np.testing.assert_array_equal(read_frames(tmp_path / "w48.mp4", backend="decord"),
                                  read_frames(tmp_path / "w48.mp4", backend="av"))


def test_read_video_gives_the_same_clip_with_either_backend(mp4, monkeypatch):
    path, _ = mp4
    out = {}
    for name in ("decord", "av"):
        monkeypatch.setenv("MMGEN_VIDEO_BACKEND", name)
        assert backend_name() == name
        out[name] = read_video(path, fps=7.5)
    (fa, ra), (fb, rb) = out["decord"], out["av"]
    assert ra == rb == 7.5 and fa.shape == fb.shape == (9, 32, 64, 3)
    assert np.abs(fa.astype(int) - fb.astype(int)).mean() < 0.5


def test_bad_files_and_backends_are_refused_by_name(tmp_path, monkeypatch):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    for name in ("decord", "av"):
        with pytest.raises(VideoReadError, match=r"bad.mp4: .*cannot open this video"):
            probe_video(bad, name)
    with pytest.raises(FileNotFoundError, match="nope.mp4: no such video file"):
        read_frames(tmp_path / "nope.mp4", backend="av")
    monkeypatch.setenv("MMGEN_VIDEO_BACKEND", "opencv")
    with pytest.raises(ValueError, match=r"video backend must be one of \('decord', 'av'\), got 'opencv'"):
        backend_name()
