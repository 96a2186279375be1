"""Any video file -> frames at the model's rate and size, decoded in chunks (PyAV).

Time. Frames are placed by their presentation timestamps, so constant and variable frame rates
are read alike: output frame k (at k / fps seconds from the first frame) is the source frame a
player shows then, the last one whose timestamp is <= k / fps. The clip lasts from the first
frame's timestamp to the last one's plus its duration (the median frame step when the file does
not say), and gives floor(duration * fps) frames.

Space (crop / pad rule). The frame is scaled so that its shorter side fits the model's frame
(bilinear, antialiased), keeping the aspect ratio, and the longer side is centre-cropped:

    322 x 180 source, 64 x 64 model      ->  scale to 114.5 x 64 (by height)  ->  centre 64 x 64
    +----------------------------+            +---+--------+---+
    |      |              |      |            |cut|  kept  |cut|    (25 columns cut each side)
    +----------------------------+            +---+--------+---+

Nothing is padded and nothing is stretched (a stretched dancer has the wrong proportions for a
model trained on square renders); the sides of a wide shot are lost. A source smaller than the
model's frame is scaled up by the same rule.

Memory. Frames are decoded one at a time and resized in chunks of `CHUNK` frames, so reading holds
the output (model size) plus one chunk of source frames, whatever the file's length and size.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmgen.core.errors import MmgenError

logger = logging.getLogger(__name__)

CHUNK = 64  # source frames resized at once


class VideoFileError(MmgenError, ValueError):
    """A video file that cannot be read: names the file and what is wrong."""


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns from a file's header and first frame."""

    path: Path
    width: int
    height: int
    seconds: float  # from the header (container or stream duration); 0 when it does not say
    fps: float  # average frame rate from the header (0 when unknown)
    has_audio: bool


def _open(path: Path):  # type: ignore[no-untyped-def]
    import av

    try:
        return av.open(str(path))
    except av.error.EOFError:
        raise VideoFileError(f"{path}: not a readable video (the file ends before any frame: no frames or truncated)") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoFileError(f"{path}: not a readable video ({str(err).splitlines()[0][:160]})") from None


def probe(path: str | os.PathLike) -> VideoInfo:
    """Open the file and decode its first frame: raises VideoFileError naming the file when it has
    no video stream, no frames, or a codec that cannot be decoded."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoFileError(f"{path}: no such video file")
    with _open(path) as container:
        if not container.streams.video:
            raise VideoFileError(f"{path}: has no video stream (streams: "
                                 f"{', '.join(s.type for s in container.streams) or 'none'})")
        stream = container.streams.video[0]
        name = stream.codec_context.name if stream.codec_context is not None else "unknown codec"
        try:
            first = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as err:
            raise VideoFileError(f"{path}: cannot decode its video ({name}: {str(err).splitlines()[0][:120]})") from None
        if first is None:
            raise VideoFileError(f"{path}: the video stream has no frames (codec {name})")
        seconds = 0.0
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1e6
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        return VideoInfo(path, first.width, first.height, seconds, fps, bool(container.streams.audio))


def crop_box(height: int, width: int, size: tuple[int, int]) -> tuple[int, int, int, int, int, int]:
    """(scaled h, scaled w, top, left, out h, out w) of the crop / pad rule above."""
    th, tw = size
    scale = max(th / height, tw / width)  # the shorter side (relative to the target) fits
    sh, sw = max(th, round(height * scale)), max(tw, round(width * scale))
    return sh, sw, (sh - th) // 2, (sw - tw) // 2, th, tw


def fit_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [n, H, W, 3] -> [n, size[0], size[1], 3] by the crop / pad rule (scale, centre crop)."""
    n, h, w, _ = frames.shape
    sh, sw, top, left, th, tw = crop_box(h, w, size)
    if (h, w) == (th, tw):
        return frames
    x = frames.permute(0, 3, 1, 2).float()  # [n, 3, H, W]
    if (sh, sw) != (h, w):
        x = F.interpolate(x, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False)
    x = x[:, :, top : top + th, left : left + tw]  # [n, 3, th, tw]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _timed_frames(path: Path) -> Iterator[tuple[float, float | None, np.ndarray]]:
    """(timestamp s, duration s or None, rgb uint8 [H, W, 3]) of every decodable frame, in order."""
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if frame.pts is None or frame.time is None:
                    continue
                dur = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else None
                yield float(frame.time), dur, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as err:
            raise VideoFileError(f"{path}: decoding failed ({str(err).splitlines()[0][:160]})") from None


def iter_video(
    path: str | os.PathLike, fps: float, size: tuple[int, int], chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """Chunks uint8 [n, size[0], size[1], 3] of the frames at `fps` (see the module doc), in order.

    Each source frame is resized once, when it is first shown; a frame shown for several output
    frames (a slow or variable-rate source) is repeated.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    t0: float | None = None
    k = 0  # next output frame
    prev: tuple[float, np.ndarray] | None = None
    steps: list[float] = []
    pending: list[np.ndarray] = []  # source frames, one per output frame, waiting to be resized
    last_dur: float | None = None
    for t, dur, img in _timed_frames(path):
        if t0 is None:
            t0 = t
        t -= t0
        if prev is not None:
            steps.append(t - prev[0])
            while k / fps < t - 1e-9:  # output frames before this one show the previous frame
                pending.append(prev[1])
                k += 1
        prev, last_dur = (t, img), dur
        if len(pending) >= chunk:
            yield _fit_all(pending, size)
            pending = []
    if prev is None:
        raise VideoFileError(f"{path}: the video stream has no frames")
    step = last_dur if last_dur else (float(np.median(steps)) if steps else 1.0 / fps)
    end = prev[0] + step
    total = max(1, math.floor(end * fps + 1e-6))
    while k < total:
        pending.append(prev[1])
        k += 1
        if len(pending) >= chunk:
            yield _fit_all(pending, size)
            pending = []
    if pending:
        yield _fit_all(pending, size)


def _fit_all(frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    # a repeated source frame is resized once
    unique: dict[int, int] = {}
    order = [unique.setdefault(id(f), len(unique)) for f in frames]
    distinct = [None] * len(unique)
    for f in frames:
        distinct[unique[id(f)]] = f
    out = fit_frames(torch.from_numpy(np.stack(distinct)), size)  # [u, h, w, 3]
    return out[torch.tensor(order)].numpy()


def read_video_frames(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> np.ndarray:
    """All frames uint8 [F, size[0], size[1], 3] at `fps` (checked with `probe` first)."""
    info = probe(path)
    logger.info("reading %s: %dx%d, %.2f s, %s audio", info.path, info.width, info.height, info.seconds,
                "with" if info.has_audio else "no")
    # filled in place (a list of chunks plus their concatenation would hold the clip twice)
    out = np.empty((max(1, math.floor(info.seconds * fps) + 2), *size, 3), np.uint8)
    n = 0
    for chunk in iter_video(path, fps, size):
        if n + len(chunk) > len(out):  # the header understated the length
            out = np.concatenate([out, np.empty((max(len(chunk), len(out) // 2), *size, 3), np.uint8)])
        out[n : n + len(chunk)] = chunk
        n += len(chunk)
    return out[:n]
