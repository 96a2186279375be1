"""Raw inputs for a pipeline: read wav / motion npz / mp4 and conform them to a modality's rates.

What each reader does when a file does not match the model (the CLI's `generate` and `cache`):

    audio   any sample rate, mono or stereo    -> mono, resampled (soxr) to the mel VAE's rate
    motion  joints [T, J, 3] at any fps        -> resampled to the VAE's fps by linear interpolation
                                                  (a wrong joint count is an error; 2-D pose drops
                                                  its confidence channel for a 2-D VAE)
    video   any fps (also variable), any size  -> frames picked at the VAE's fps by timestamp (the frame
                                                  a player shows at each time), scaled and centre-cropped
                                                  (`mmgen.io.video_stream`), decoded in chunks

Fitting a clip to whole latent frames (`fit_length`, `coverage_length`) is in `mmgen.modalities.raw_length`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from mmgen.core.limits import MAX_SECONDS, MOTION_FPS, LimitError, check_rate, scalar
from mmgen.modalities.media import MediaModality, MotionModality, VideoModality

logger = logging.getLogger(__name__)


def resample_motion(joints: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Joints [T, J, D] at `fps` -> at `target_fps` (linear interpolation, same duration)."""
    from mmgen.io.render import resample_frames

    joints = np.asarray(joints, dtype=np.float32)
    if abs(fps - target_fps) < 1e-9:
        return joints
    logger.info("resampling motion from %g to %g fps", fps, target_fps)
    return resample_frames(joints, float(fps), float(target_fps))


def motion_for_codec(joints: np.ndarray, dims: int) -> np.ndarray:
    """2-D pose stored as [T, J, 3] (x, y, detector confidence; `mmgen preprocess` / LORIS) -> [T, J, 2]
    for a 2-D motion VAE; anything else is returned unchanged."""
    if dims == 2 and joints.ndim == 3 and joints.shape[-1] == 3:
        return joints[..., :2]
    return joints


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 frames [F, H, W, 3] -> [F, size[0], size[1], 3] (bilinear with antialiasing)."""
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # [F, 3, H, W]
    x = torch.nn.functional.interpolate(
        x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False
    )
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()  # [F, h, w, 3]


def conform_video(frames: np.ndarray, fps: float, target_fps: float, size: tuple[int, int]) -> np.ndarray:
    """uint8 frames [F, H, W, 3] at `fps` -> the frames shown at `target_fps`, resized to `size`."""
    from mmgen.modalities.video_codec import resample_indices

    frames = np.asarray(frames)
    if abs(fps - target_fps) > 1e-9:
        idx = resample_indices(len(frames), float(fps), float(target_fps))
        if idx.size == 0:
            raise ValueError(
                f"video: {len(frames)} frames at {fps:g} fps give no frame at {target_fps:g} fps"
            )
        frames = frames[idx]
    return resize_frames(frames, size)


def read_audio(path: str | os.PathLike, modality: MediaModality) -> np.ndarray:
    """A wav / flac / ogg file as mono float32 [S] at the audio modality's sample rate."""
    from mmgen.io.audio import load_audio

    return load_audio(path, int(modality.raw_rate), mono=True)


def read_motion(path: str | os.PathLike, modality: MotionModality) -> np.ndarray:
    """A motion .npz (`joints` [T, J, 3] + `fps`) as joints at the motion VAE's fps."""
    from mmgen.io.export import load_motion_npz

    data = load_motion_npz(path)
    codec = modality.vae.codec
    joints = motion_for_codec(np.asarray(data["joints"], dtype=np.float32), codec.dims)
    if joints.ndim != 3 or joints.shape[1:] != (codec.num_joints, codec.dims):
        raise ValueError(
            f"{path}: joints have shape {joints.shape}; this pipeline's motion VAE takes "
            f"[T, {codec.num_joints}, {codec.dims}] ({codec.layout.skeleton.name})"
        )
    fps = check_rate(f"{path}: fps", scalar(f"{path}: fps", data["fps"]), MOTION_FPS)
    if joints.shape[0] / fps > MAX_SECONDS:
        raise LimitError(f"{path}: {joints.shape[0] / fps:.0f} s of motion; mmgen reads at most {MAX_SECONDS:.0f} s")
    return resample_motion(joints, fps, modality.raw_rate)


def read_video_file(path: str | os.PathLike, modality: VideoModality) -> np.ndarray:
    """A video file (any container / codec FFmpeg decodes, constant or variable frame rate, any
    size) as uint8 frames [F, H, W, 3] at the video VAE's fps and size (`mmgen.io.video_stream`:
    timestamps, scale and centre crop, chunked decoding)."""
    from mmgen.io.video_stream import read_video_frames

    return read_video_frames(Path(path), float(modality.raw_rate), modality.vae.frame_size)
