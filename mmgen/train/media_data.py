"""DataModule of raw media windows (ToyDance folders, `mmgen preprocess` output) for the autoencoders.

2-D pose (`skeleton: coco17` records, e.g. `mmgen preprocess loris`) is stored as [T, 17, 3]: pixel x,
y and the detector's confidence. The batches carry the positions as "motion" [B, T, 17, 2], the
input of a 2-D motion VAE (`MotionVAE(skeleton="coco17", dims=2)`), and the confidence beside them
as "motion_confidence" [B, T, 17].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from mmgen.data.manifest import ManifestDataset
from mmgen.train.data import make_loader, split_indices


def collate_media(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors of equal shape (audio, motion, video windows); keep everything else as lists."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out


POSE2D_SKELETONS = ("coco17",)


class PoseSplitDataset(Dataset):
    """A ManifestDataset whose 2-D pose items come as positions [T, J, 2] + confidence [T, J]."""

    def __init__(self, data: ManifestDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.data[i]
        motion = item.get("motion")
        record = self.data.records[self.data.windows[i][0]]
        if motion is not None and record.get("skeleton") in POSE2D_SKELETONS:
            if motion.ndim != 3 or motion.shape[-1] != 3:
                raise ValueError(
                    f"{self.data.root / record['files']['motion']}: 2-D pose must be [T, J, 3] "
                    f"(x, y, confidence), got {tuple(motion.shape)}"
                )
            item["motion"] = motion[..., :2].contiguous()  # [T, J, 2] pixel x, y
            item["motion_confidence"] = motion[..., 2].contiguous()  # [T, J]
        return item


class MediaDataModule(L.LightningDataModule):
    """Fixed-length windows of the raw media in a manifest folder.

    Args:
        root: a folder with manifest.jsonl (`mmgen toydance make`, `mmgen preprocess`).
        modalities: files to read per item ("audio", "motion", "video").
        window_seconds, stride_seconds: window length and hop (hop defaults to the length).
        batch_size, num_workers: DataLoader settings.
        val_fraction: share of items (by id hash, so all windows of one clip stay together) held out.
    """

    def __init__(
        self,
        root: str,
        modalities: Sequence[str] = ("audio",),
        window_seconds: float = 2.0,
        stride_seconds: float | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        val_fraction: float = 0.05,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        data = ManifestDataset(hp.root, tuple(hp.modalities), hp.window_seconds, hp.stride_seconds)
        train_items, val_items = split_indices([r["id"] for r in data.records], hp.val_fraction)
        train_items, val_items = set(train_items), set(val_items)
        split = PoseSplitDataset(data)
        self.train_set = Subset(split, [k for k, (i, _) in enumerate(data.windows) if i in train_items])
        self.val_set = Subset(split, [k for k, (i, _) in enumerate(data.windows) if i in val_items])

    def _loader(self, dataset: Subset, shuffle: bool) -> DataLoader:
        hp = self.hparams
        return make_loader(dataset, hp.batch_size, shuffle, hp.num_workers, collate_media)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if len(self.val_set) else []
