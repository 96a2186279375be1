"""DataModule of raw media windows (ToyDance folders, `mmgen preprocess` output) for the autoencoders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

from mmgen.data.manifest import ManifestDataset
from mmgen.train.data import make_loader, split_indices


def collate_media(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors of equal shape (audio, motion, video windows); keep everything else as lists."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out


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
        modalities: list[str] = ["audio"],
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
        self.train_set = Subset(data, [k for k, (i, _) in enumerate(data.windows) if i in train_items])
        self.val_set = Subset(data, [k for k, (i, _) in enumerate(data.windows) if i in val_items])

    def _loader(self, dataset: Subset, shuffle: bool) -> DataLoader:
        hp = self.hparams
        return make_loader(dataset, hp.batch_size, shuffle, hp.num_workers, collate_media)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if len(self.val_set) else []
