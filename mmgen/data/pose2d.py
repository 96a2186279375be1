"""2-D pose + music sets in the LORIS benchmark layout (AIST++ dance, floor exercise, figure skating).

    <root>/audio_s25/<name>.wav      the clip's music (LORIS trains at 22,050 Hz mono)
    <root>/pose2d_s25/<name>.npy     [T, 17, 3] float: x, y (pixels), confidence; COCO-17 order
    <root>/i3d_s25/<name>.npy        I3D video features (not read here)
    <lists>/<set>_{audio,pose2d}_s25_{train,test}_segment.txt   one path per line (LORIS ships
                                     them with a `yourpath/...` prefix: only the file stem is used)

`s25` / `s50` is the clip length in seconds. The release does not state the pose frame rate;
a clip's pose covers its audio, so fps = T / audio seconds (LORIS itself drops frames to a fixed
400 per 25 s). Pass `fps` to resample every clip to one rate (linear interpolation).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mmgen.core.errors import MmgenError
from mmgen.core.skeleton import COCO17
from mmgen.data.aistpp import resample_frames
from mmgen.data.av_folder import Skipped
from mmgen.io.audio import audio_seconds, load_audio

logger = logging.getLogger(__name__)

LORIS_SAMPLE_RATE = 22050


@dataclass(frozen=True)
class PoseAudioItem:
    name: str
    pose_path: Path
    audio_path: Path


def read_segment_list(path: str | os.PathLike) -> list[str]:
    """Stems named in a LORIS `*_segment.txt` list (prefixes like `yourpath/...` are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: segment list not found")
    return [Path(line.strip()).stem for line in path.read_text().splitlines() if line.strip()]


def load_pose2d(path: str | os.PathLike) -> np.ndarray:
    """Read one pose file as float32 [T, 17, 3] (x, y, confidence; confidence 1 if the file has none)."""
    path = Path(path)
    try:
        kp = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the pose array ({err})") from None
    if kp.ndim != 3 or kp.shape[1] != COCO17.num_joints or kp.shape[2] not in (2, 3) or kp.shape[0] < 2:
        raise ValueError(
            f"{path}: pose has shape {kp.shape}, expected (T >= 2, 17, 2 or 3) COCO-17 keypoints"
        )
    if not np.issubdtype(kp.dtype, np.number):
        raise ValueError(f"{path}: pose must be numeric, got dtype {kp.dtype}")
    kp = kp.astype(np.float32)
    if not np.isfinite(kp).all():
        frames = int((~np.isfinite(kp)).any(axis=(1, 2)).sum())
        raise ValueError(f"{path}: pose holds NaN or infinite values ({frames} bad frames)")
    if kp.shape[2] == 2:
        kp = np.concatenate([kp, np.ones_like(kp[..., :1])], axis=-1)
    return kp


def pair_files(root: str | os.PathLike, seconds: int = 25) -> tuple[list[PoseAudioItem], list[Skipped]]:
    """Match `pose2d_s{seconds}/<name>.npy` with `audio_s{seconds}/<name>.wav` by name."""
    root = Path(root)
    pose_dir, audio_dir = root / f"pose2d_s{seconds}", root / f"audio_s{seconds}"
    for d in (pose_dir, audio_dir):
        if not d.is_dir():
            raise FileNotFoundError(
                f"{d}: missing (expected the LORIS layout audio_s{seconds}/ + pose2d_s{seconds}/)"
            )
    poses = {p.stem: p for p in pose_dir.glob("*.npy")}
    audios = {p.stem: p for p in audio_dir.glob("*.wav")}
    items = [PoseAudioItem(n, poses[n], audios[n]) for n in sorted(poses.keys() & audios.keys())]
    skipped = [Skipped(str(poses[n]), "no matching audio") for n in sorted(poses.keys() - audios.keys())]
    skipped += [Skipped(str(audios[n]), "no matching pose") for n in sorted(audios.keys() - poses.keys())]
    return items, skipped


class Pose2DSet(Dataset):
    """COCO-17 2-D keypoints + audio clips (LORIS layout).

    Args:
        root: the set's folder (holds audio_s25/ and pose2d_s25/).
        seconds: clip length of the release (25 or 50).
        segment_list: optional LORIS `*_pose2d_*_segment.txt` (or audio list) restricting the clips.
        sample_rate: audio rate returned (LORIS: 22,050 Hz).
        fps: resample the pose to this rate; None keeps each file's own rate.

    Items: keypoints float32 [T, 17, 3] (x, y, confidence), audio float32 [S], fps, name.
    `skipped` lists files without a partner.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        seconds: int = 25,
        segment_list: str | os.PathLike | None = None,
        sample_rate: int = LORIS_SAMPLE_RATE,
        fps: float | None = None,
    ) -> None:
        self.items, self.skipped = pair_files(root, seconds)
        if segment_list is not None:
            wanted = read_segment_list(segment_list)
            by_name = {it.name: it for it in self.items}
            self.skipped += [Skipped(n, "listed but not on disk") for n in wanted if n not in by_name]
            self.items = [by_name[n] for n in wanted if n in by_name]
        for s in self.skipped:
            logger.warning("skipping %s", s)
        if not self.items:
            raise MmgenError(f"{root}: no pose/audio pairs found")
        self.sample_rate, self.fps = int(sample_rate), fps

    def __len__(self) -> int:
        return len(self.items)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(keypoints [T, 17, 3], audio [S], fps) of item i."""
        it = self.items[i]
        kp = load_pose2d(it.pose_path)
        seconds = audio_seconds(it.audio_path)
        if seconds <= 0:
            raise ValueError(f"{it.audio_path}: empty audio")
        src_fps = kp.shape[0] / seconds
        if self.fps is not None:
            kp = resample_frames(kp, src_fps, self.fps)
        audio = load_audio(it.audio_path, self.sample_rate)
        return kp, audio, float(self.fps or src_fps)

    def __getitem__(self, i: int) -> dict:
        kp, audio, fps = self.read(i)
        return {
            "keypoints": torch.from_numpy(kp),
            "audio": torch.from_numpy(audio),
            "fps": fps,
            "name": self.items[i].name,
        }
