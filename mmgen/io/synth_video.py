"""Synthetic video files for tests and benchmarks: a square moving to a beat, any length, frame
rate (constant or variable), frame size, with or without an audio track. Written with PyAV.

Variable frame rate: frame i lasts (1 + jitter * sin(i)) / fps seconds, so timestamps drift away
from a constant grid (a player, and `mmgen.io.video_stream`, must follow the timestamps).
"""

from __future__ import annotations

import fractions
import math
import os
from pathlib import Path

import numpy as np

TIME_BASE = fractions.Fraction(1, 90000)


def frame_times(seconds: float, fps: float, jitter: float = 0.0) -> np.ndarray:
    """Presentation times [N] (seconds) of the frames of a clip; jitter in [0, 1) makes it variable."""
    if not (seconds > 0 and fps > 0 and 0 <= jitter < 1):
        raise ValueError(f"need seconds > 0, fps > 0, jitter in [0, 1); got {seconds}, {fps}, {jitter}")
    times, t, i = [], 0.0, 0
    while t < seconds - 1e-9:
        times.append(t)
        t += (1.0 + jitter * math.sin(i)) / fps
        i += 1
    return np.asarray(times)


def square_frame(t: float, height: int, width: int, bpm: float = 120.0) -> np.ndarray:
    """uint8 [H, W, 3]: grey background, a red square bouncing once per beat."""
    img = np.full((height, width, 3), 90, np.uint8)
    side = max(2, min(height, width) // 4)
    phase = abs(math.sin(math.pi * t * bpm / 60.0))
    y = int((height - side) * phase)
    x = int((width - side) * (0.5 + 0.4 * math.sin(2 * math.pi * t / 7.0)))
    img[y : y + side, x : x + side] = (220, 40, 40)
    return img


def write_test_video(
    path: str | os.PathLike,
    seconds: float,
    fps: float = 24.0,
    size: tuple[int, int] = (180, 322),
    jitter: float = 0.0,
    audio: bool = False,
    sample_rate: int = 22050,
) -> Path:
    """Write an mp4 (H.264, yuv420p: even height and width) of `seconds`; returns the path."""
    import av

    h, w = size
    if h % 2 or w % 2:
        raise ValueError(f"H.264 yuv420p needs an even frame size, got {size}")
    path = Path(path)
    times = frame_times(seconds, fps, jitter)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = stream.time_base = TIME_BASE
        stream.options = {"preset": "ultrafast", "crf": "30"}
        a_stream = out.add_stream("aac", rate=sample_rate) if audio else None
        for t in times:
            frame = av.VideoFrame.from_ndarray(square_frame(float(t), h, w), format="rgb24")
            frame.pts, frame.time_base = round(t / TIME_BASE), TIME_BASE
            for packet in stream.encode(frame):
                out.mux(packet)
        out.mux(stream.encode())
        if a_stream is not None:
            n = round(seconds * sample_rate)
            wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / sample_rate)).astype(np.float32)
            for i in range(0, n, 1024):
                chunk = wave[i : i + 1024]
                af = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
                af.sample_rate, af.pts = sample_rate, i
                out.mux(a_stream.encode(af))
            out.mux(a_stream.encode())
    return path
