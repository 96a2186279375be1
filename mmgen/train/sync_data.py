"""Data for sync pre-training: any manifest folder with video and sound -> aligned crops.

Every clip is read once and reduced to the two fixed front ends, so a training step runs only the
learned nets: the video conformed by the sync encoder's input rule (`conform_sync_frames`: gray,
frame_size x frame_size, rate_hz) and pooled into frame differences (`pooled_differences`, before
the log, so a contrast change is an exact scale); the audio resampled to `sample_rate` and turned
into mel magnitudes (`MelFrontEnd`, 3 mel frames per video frame; a gain is an exact scale).
No labels are used (ToyDance's beats and motion are not read), so any folder made by
`mmgen preprocess` (AV folders, AIST++) or `mmgen toydance make` trains the same way.

    crop of T frames starting at frame f:
        diffs [f, f + T - 1)   (difference t sits between frames t and t + 1)
        mel   [3f, 3f + 3T)    (mel frame 3k is video frame k's instant, k h samples, h = sample_rate / rate_hz)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mmgen.conditioning.video_frames import conform_sync_frames
from mmgen.conditioning.video_sync import pooled_differences
from mmgen.data.manifest import read_manifest_records
from mmgen.train.data import make_loader, split_indices
from mmgen.train.sync_audio import MelFrontEnd

log = logging.getLogger(__name__)


class SyncClip:
    """One clip's front ends: pooled differences [T-1, C] and mel magnitudes [n_mels, >= 3T]."""

    def __init__(self, clip_id: str, diffs: torch.Tensor, mel: torch.Tensor) -> None:
        self.id, self.diffs, self.mel = clip_id, diffs, mel

    @property
    def frames(self) -> int:
        return int(min(self.diffs.shape[0] + 1, self.mel.shape[1] // 3))

    def crop(self, first: int, count: int) -> dict[str, Any]:
        return {
            "diffs": self.diffs[first : first + count - 1],  # [T-1, C]
            "mel": self.mel[:, 3 * first : 3 * (first + count)],  # [n_mels, 3T]
            "id": self.id,
            "first": first,
        }


def clip_front_ends(
    frames: Any, fps: float, audio: np.ndarray, rate_hz: float, frame_size: int, grid: int, mel: MelFrontEnd, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled differences [T-1, C], mel [n_mels, 3T + 1]) of one clip; audio at mel.sample_rate,
    cut or zero-padded to the video's T frames."""
    gray = conform_sync_frames(frames, fps, rate_hz, frame_size, what=what)  # [T, S, S]
    hop = mel.sample_rate / rate_hz
    n = gray.shape[0] * round(hop)
    audio = np.asarray(audio, np.float32)[:n]
    wave = torch.from_numpy(np.pad(audio, (0, n - len(audio))))[None]  # [1, T h]
    with torch.no_grad():
        return pooled_differences(gray[None], grid)[0], mel(wave)[0]


def load_sync_clips(
    root: str, rate_hz: float, frame_size: int, grid: int, mel: MelFrontEnd, progress: bool = True
) -> list[SyncClip]:
    """Every record of `root` that has both video and audio, reduced to its front ends."""
    from mmgen.io.audio import load_audio
    from mmgen.modalities.video_codec import read_video

    records = read_manifest_records(root, ("audio", "video"))
    clips = []
    for rec in tqdm(records, desc="sync clips", unit="clip", disable=not progress):
        frames, fps = read_video(Path(root) / rec["files"]["video"])
        audio = load_audio(Path(root) / rec["files"]["audio"], mel.sample_rate)
        diffs, spec = clip_front_ends(
            frames, float(rec.get("video_fps") or fps), audio, rate_hz, frame_size, grid, mel, rec["files"]["video"]
        )
        clips.append(SyncClip(str(rec["id"]), diffs, spec))
    return clips


class SyncCrops(Dataset):
    """Crops of `crop_frames` frames: one random crop per clip per epoch (train) or every
    non-overlapping crop from the start (validation). Clips shorter than a crop are skipped."""

    def __init__(self, clips: list[SyncClip], crop_frames: int, random: bool) -> None:
        self.clips = [c for c in clips if c.frames >= crop_frames]
        if len(self.clips) < len(clips):
            log.info("sync data: %d clips shorter than %d frames skipped", len(clips) - len(self.clips), crop_frames)
        self.crop_frames, self.random = crop_frames, random
        self.index = (
            [(i, 0) for i in range(len(self.clips))]
            if random
            else [(i, f) for i, c in enumerate(self.clips) for f in range(0, c.frames - crop_frames + 1, crop_frames)]
        )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, n: int) -> dict[str, Any]:
        i, first = self.index[n]
        clip = self.clips[i]
        if self.random:
            first = int(torch.randint(clip.frames - self.crop_frames + 1, ()))
        return clip.crop(first, self.crop_frames)


def collate_crops(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "diffs": torch.stack([b["diffs"] for b in batch]),  # [B, T-1, C]
        "mel": torch.stack([b["mel"] for b in batch]),  # [B, n_mels, 3T]
        "id": [b["id"] for b in batch],
        "first": [b["first"] for b in batch],
    }


class SyncDataModule(L.LightningDataModule):
    """Aligned video/audio crops of a manifest folder for `SyncModule`.

    Args:
        root: a folder with manifest.jsonl whose records have video and audio files.
        crop_seconds: crop length (>= the module's window + 2 (max shift + receptive radius)).
        rate_hz, frame_size, grid: the VideoSyncEncoder's; sample_rate, n_fft, n_mels: the
            AudioSyncEncoder's (the module checks the widths it receives).
        batch_size, num_workers, val_fraction: as in the other data modules (split by clip id hash).
    """

    def __init__(
        self,
        root: str,
        crop_seconds: float = 6.0,
        rate_hz: float = 15.0,
        frame_size: int = 64,
        grid: int = 4,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        n_mels: int = 48,
        batch_size: int = 32,
        num_workers: int = 0,
        val_fraction: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.crop_frames = round(crop_seconds * rate_hz)
        if self.crop_frames < 2:
            raise ValueError(f"SyncDataModule: crop_seconds {crop_seconds} gives fewer than 2 frames")
        self._clips: list[SyncClip] | None = None

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if self._clips is None:
            mel = MelFrontEnd(hp.sample_rate, hp.rate_hz, hp.n_fft, hp.n_mels)
            self._clips = load_sync_clips(hp.root, hp.rate_hz, hp.frame_size, hp.grid, mel)
        train, val = split_indices([c.id for c in self._clips], hp.val_fraction)
        self.train_set = SyncCrops([self._clips[i] for i in train], self.crop_frames, random=True)
        self.val_set = SyncCrops([self._clips[i] for i in val], self.crop_frames, random=False)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return make_loader(self.train_set, hp.batch_size, True, hp.num_workers, collate_crops)  # type: ignore[arg-type]

    def val_dataloader(self) -> DataLoader | list:
        hp = self.hparams
        return make_loader(self.val_set, hp.batch_size, False, hp.num_workers, collate_crops) if len(self.val_set) else []  # type: ignore[arg-type]
