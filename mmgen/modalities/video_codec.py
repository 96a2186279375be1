"""Video frames <-> VAE features, and reading videos (decord when installed, else PyAV).

Frames are uint8 RGB, channels-last: [T, H, W, 3] (or batched [B, T, H, W, 3]). Features are
the same layout in float, mapped linearly to [-1, 1] (0 -> -1, 255 -> 1), so `encode` then
`decode` of uint8 frames is exact.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


def frames_to_features(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float32 in [-1, 1], same shape."""
    if not isinstance(frames, torch.Tensor):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames: expected uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected [..., H, W, 3] RGB, got shape {tuple(frames.shape)}")
    return frames.float().div(127.5).sub(1.0)


def features_to_frames(features: torch.Tensor) -> torch.Tensor:
    """float [..., H, W, 3] (clamped to [-1, 1]) -> uint8, rounding to the nearest level."""
    if features.ndim < 3 or features.shape[-1] != 3:
        raise ValueError(f"features: expected [..., H, W, 3], got shape {tuple(features.shape)}")
    return features.detach().float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)


def resample_indices(num_frames: int, src_fps: float, fps: float) -> np.ndarray:
    """Source frame indices for a clip resampled from `src_fps` to `fps` (nearest earlier frame).

    Output frame k is at time k / fps and takes source frame floor(k * src_fps / fps), the frame a
    player shows at that time; the output covers the source's duration num_frames / src_fps.
    """
    if not (src_fps > 0 and fps > 0):
        raise ValueError(f"frame rates must be positive, got source {src_fps} and target {fps}")
    count = int(np.floor(num_frames * fps / src_fps + 1e-6))
    idx = np.floor(np.arange(count) * (src_fps / fps) + 1e-6).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


def read_video(
    path: str | os.PathLike, fps: float | None = None, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, float]:
    """Decode a video file to uint8 frames [T, H, W, 3]; returns (frames, fps).

    decord when installed (resizing while decoding), else PyAV (`mmgen.io.video_backend`).

    Args:
        fps: resample to this rate by frame selection (None keeps the file's rate).
        size: (height, width) to resize to while decoding (None keeps the file's size).
    """
    from mmgen.io.video_backend import backend_name, probe_video

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    if size is not None and (size[0] <= 0 or size[1] <= 0):
        raise ValueError(f"size must be (height, width) > 0, got {size}")
    if backend_name() == "av":
        meta = probe_video(path, "av")
        idx, out_fps = _indices(path, meta.num_frames, meta.fps, fps)
        return _read_with_pyav(path, idx, size), out_fps
    import decord

    kwargs = {} if size is None else {"height": int(size[0]), "width": int(size[1])}
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), **kwargs)
    except (decord.DECORDError, RuntimeError) as err:  # decord raises RuntimeError on unreadable files
        raise ValueError(f"{path}: decord cannot open this video ({str(err).splitlines()[0]})") from None
    idx, out_fps = _indices(path, len(reader), float(reader.get_avg_fps()), fps)
    try:
        frames = reader.get_batch(idx.tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError) as err:
        if "DECORDArrayCopyFromTo" not in str(err):
            raise ValueError(f"{path}: decord failed while decoding ({str(err).splitlines()[0]})") from None
        # decord 0.6 cannot output some frame widths (e.g. 24, 48: dmlc/decord#336); decode with
        # PyAV instead and resize with torch
        log.warning("%s: decord cannot decode to this frame width; falling back to PyAV", path)
        frames = _read_with_pyav(path, idx, size)
    return frames, out_fps


def _indices(path: Path, n: int, src_fps: float, fps: float | None) -> tuple[np.ndarray, float]:
    """Frame numbers to read for `fps` (None: every frame) and the rate they have."""
    if n == 0:
        raise ValueError(f"{path}: the video has no frames")
    if fps is None:
        return np.arange(n), src_fps
    idx = resample_indices(n, src_fps, fps)
    if idx.size == 0:
        raise ValueError(f"{path}: {n} frames at {src_fps:g} fps give no frame at {fps:g} fps")
    log.debug("read %s: %d of %d frames, %g -> %g fps", path, idx.size, n, src_fps, fps)
    return idx, float(fps)


def _read_with_pyav(path: Path, idx: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    from mmgen.io.video_backend import read_frames

    frames = read_frames(path, idx, backend="av")  # [T, H, W, 3]
    if size is None or tuple(frames.shape[1:3]) == tuple(size):
        return frames
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    x = torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
