"""Reading video files with decord when it is installed, else PyAV (which mmgen always has).

decord has no wheels for arm64 Linux or macOS, so it is optional (`pip install "mmgen[decord]"`);
both backends decode with FFmpeg and give the same frames (tests/test_video_backend.py).

    backend_name()            "decord" if importable, else "av"; MMGEN_VIDEO_BACKEND=av|decord forces one
    probe_video(path)         VideoMeta(num_frames, fps, height, width), without decoding every frame
    read_frames(path, idx)    uint8 frames [T, H, W, 3] at the given indices (all when None)

Errors a file can cause are `VideoReadError` (a ValueError) naming the file and the reason.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
BACKENDS = ("decord", "av")
ENV = "MMGEN_VIDEO_BACKEND"


class VideoReadError(ValueError):
    """A video file that cannot be opened or decoded."""


@dataclass(frozen=True)
class VideoMeta:
    num_frames: int
    fps: float
    height: int
    width: int


def backend_name(name: str | None = None) -> str:
    """The backend to use: `name`, else $MMGEN_VIDEO_BACKEND, else decord when installed, else av."""
    name = name or os.environ.get(ENV) or None
    if name is None:
        return "decord" if importlib.util.find_spec("decord") is not None else "av"
    if name not in BACKENDS:
        raise ValueError(f"video backend must be one of {BACKENDS}, got {name!r} (${ENV})")
    if name == "decord" and importlib.util.find_spec("decord") is None:
        raise ValueError('the decord video backend is not installed (pip install "mmgen[decord]"; av works without it)')
    return name


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__


def probe_video(path: str | os.PathLike, backend: str | None = None) -> VideoMeta:
    """Frame count, average frame rate and frame size of a video file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    if backend_name(backend) == "decord":
        import decord

        try:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
            n, fps = len(reader), float(reader.get_avg_fps())
            h, w = reader[0].shape[:2] if n else (0, 0)
        except (decord.DECORDError, RuntimeError) as err:
            raise VideoReadError(f"{path}: decord cannot open this video ({_first_line(err)})") from None
        return VideoMeta(int(n), fps, int(h), int(w))
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            n = int(stream.frames) or sum(1 for p in container.demux(stream) if p.size)
            return VideoMeta(n, float(rate), int(stream.codec_context.height), int(stream.codec_context.width))
    except (av.FFmpegError, OSError) as err:
        raise VideoReadError(f"{path}: PyAV cannot open this video ({_first_line(err)})") from None


def read_frames(
    path: str | os.PathLike, indices: np.ndarray | list[int] | None = None, backend: str | None = None
) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] at `indices` (frame numbers of the file; None: every frame).
    Indices past the last decoded frame give the last frame (containers may over-count by one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    if backend_name(backend) == "decord":
        import decord

        try:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
            idx = np.arange(len(reader)) if indices is None else np.minimum(np.asarray(indices), len(reader) - 1)
            return reader.get_batch([int(i) for i in idx]).asnumpy()
        except (decord.DECORDError, RuntimeError) as err:
            if "DECORDArrayCopyFromTo" not in str(err):
                raise VideoReadError(f"{path}: decord failed while decoding ({_first_line(err)})") from None
            # decord 0.6 cannot output some frame widths (e.g. 24, 48: dmlc/decord#336)
            log.warning("%s: decord cannot decode this frame width; reading it with PyAV", path)
    import av

    try:
        with av.open(str(path)) as container:
            last = None if indices is None or len(indices) == 0 else int(np.max(indices))
            decoded = []
            for frame in container.decode(video=0):
                decoded.append(frame.to_ndarray(format="rgb24"))  # [H, W, 3]
                if last is not None and len(decoded) > last:
                    break
    except (av.FFmpegError, OSError) as err:
        raise VideoReadError(f"{path}: PyAV failed while decoding ({_first_line(err)})") from None
    if not decoded:
        raise VideoReadError(f"{path}: the video has no frames")
    idx = np.arange(len(decoded)) if indices is None else np.minimum(np.asarray(indices), len(decoded) - 1)
    return np.stack([decoded[int(i)] for i in idx]) if len(idx) else np.zeros((0, *decoded[0].shape), np.uint8)
