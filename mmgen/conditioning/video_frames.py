"""The sync encoder's input rule: any video -> grayscale frames at a fixed rate and size.

    frames [T, H, W, 3] uint8 (or float in [0, 1]) at `fps`
        ──luma (0.299 R + 0.587 G + 0.114 B)──► [T, H, W]
        ──resize the whole frame to size x size (bilinear, antialiased; no crop, so every part
          of the picture moves the features)──► [T, size, size]
        ──linear interpolation in time──► [T', size, size] at `rate` Hz, T' = floor(T * rate / fps)

    output frame k sits at k / rate seconds and blends the two source frames around it:
        source  |0    |1    |2    |3    |4    |5  ...     (24 fps: frame j at j / 24 s)
        output  |0       |1       |2      ...            (15 fps: frame k at k / 15 s = source j = 1.6 k)
        out[1] = 0.4 * src[1] + 0.6 * src[2]

A source whose rate is a whole multiple of `rate` (30, 45, 60 fps for 15 Hz) gives exactly its
frames 0, m, 2m, ... (no blending), so a 30 fps render and a 15 fps render of the same motion
give the same frames. Sources slower than `rate` are interpolated: their timing is only as
precise as their own frames. Only the source frames an output needs are converted, so a 60 fps
clip costs a quarter of its frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)
_CHUNK = 256  # output frames converted at once (bounds memory for long, large clips)


def as_frames(frames: Any, what: str) -> torch.Tensor:
    """Check a clip's frames: [T, H, W, 3], uint8 or floating point; returns a CPU/device tensor."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"{what}: expected frames as a numpy array or tensor, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{what}: expected frames [T, H, W, 3], got shape {tuple(frames.shape)}")
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise ValueError(f"{what}: frames must be uint8 (0..255) or float (0..1), got {frames.dtype}")
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"{what}: the clip has no frames (shape {tuple(frames.shape)})")
    return frames


def resampled_positions(num_frames: int, fps: float, rate: float) -> np.ndarray:
    """Source positions (in frames, float64) of the output frames at `rate` Hz."""
    if not (math.isfinite(fps) and fps > 0 and math.isfinite(rate) and rate > 0):
        raise ValueError(f"frame rates must be positive and finite, got fps={fps}, rate={rate}")
    count = math.floor(num_frames * rate / fps + 1e-6)
    return np.arange(count, dtype=np.float64) * (fps / rate)


def _gray_resized(frames: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """[n, H, W, 3] -> [n, size, size] float32 luma in [0, 1]."""
    x = frames.to(device)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    luma = torch.tensor(LUMA, device=device)
    gray = (x * luma).sum(-1)  # [n, H, W]
    if tuple(gray.shape[1:]) != (size, size):
        gray = F.interpolate(
            gray[:, None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[:, 0]  # [n, size, size]
    return gray


def conform_sync_chunks(
    frames: Any,
    fps: float,
    rate: float,
    size: int,
    device: torch.device | str = "cpu",
    what: str = "video",
    chunk: int = _CHUNK,
) -> Iterator[torch.Tensor]:
    """`conform_sync_frames` in pieces of at most `chunk` output frames, in order.

    Each piece converts only the source frames it needs, so memory stays bounded however long
    the clip is; concatenated, the pieces equal `conform_sync_frames` exactly.
    """
    frames = as_frames(frames, what)
    fps = float(fps)
    if frames.is_floating_point():
        if not torch.isfinite(frames).all():
            raise ValueError(f"{what}: frames hold NaN or infinite values")
        lo, hi = float(frames.min()), float(frames.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ValueError(f"{what}: float frames must lie in [0, 1], got [{lo:g}, {hi:g}] (pass uint8 for 0..255)")
    pos = resampled_positions(frames.shape[0], fps, rate)
    if pos.size < 2:
        raise ValueError(
            f"{what}: {frames.shape[0]} frames at {fps:g} fps give {pos.size} frame(s) at {rate:g} Hz; "
            "the sync encoder needs at least 2 (one frame difference)"
        )
    last = frames.shape[0] - 1
    device = torch.device(device)
    for start in range(0, pos.size, chunk):
        p = pos[start : start + chunk]
        j0 = np.minimum(np.floor(p + 1e-9).astype(np.int64), last)
        w = np.clip(p - j0, 0.0, 1.0)
        w[np.abs(w) < 1e-9] = 0.0
        j1 = np.where(w > 0, np.minimum(j0 + 1, last), j0)
        needed = np.unique(np.concatenate([j0, j1]))  # sorted source frames this piece uses
        gray = _gray_resized(frames[torch.from_numpy(needed)], size, device)  # [len(needed), size, size]
        i0 = torch.from_numpy(np.searchsorted(needed, j0)).to(device)
        i1 = torch.from_numpy(np.searchsorted(needed, j1)).to(device)
        out = gray[i0]
        if bool((w > 0).any()):
            wt = torch.from_numpy(w).to(device=device, dtype=torch.float32)[:, None, None]
            out = torch.where(wt > 0, (1 - wt) * out + wt * gray[i1], out)
        yield out  # [len(p), size, size]


def conform_sync_frames(
    frames: Any, fps: float, rate: float, size: int, device: torch.device | str = "cpu", what: str = "video"
) -> torch.Tensor:
    """One clip's frames at `fps` -> grayscale [T', size, size] float32 at `rate` Hz (see module doc)."""
    return torch.cat(list(conform_sync_chunks(frames, fps, rate, size, device, what)))  # [T', size, size]
