"""DataModules: latent windows for the DiT, raw ToyDance / manifest clips for the VAEs."""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

from mmgen.core.errors import MmgenError
from mmgen.core.pretrained import import_class
from mmgen.data.latent_cache import LatentCache, LatentWindows, collate_latents
from mmgen.data.latent_shards import StreamingLatentWindows
from mmgen.train.resume import ResumableLoader, plain_loader


def split_indices(ids: Sequence[str], val_fraction: float) -> tuple[list[int], list[int]]:
    """Deterministic train/val split by a hash of each item id (stable when items are added)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    buckets = [zlib.crc32(str(i).encode()) % 10_000 / 10_000 for i in ids]
    val = [k for k, b in enumerate(buckets) if b < val_fraction]
    train = [k for k, b in enumerate(buckets) if b >= val_fraction]
    if not train:
        raise MmgenError("the validation split took every item; lower val_fraction")
    return train, val


def make_loader(dataset: Subset, batch_size: int, shuffle: bool, num_workers: int, collate_fn: Any) -> DataLoader:
    """Training loaders shuffle and drop the ragged last batch (unless that leaves none); they
    resume mid-epoch exactly (`mmgen.train.resume`). No loader draws from the global random stream."""
    kwargs = {"num_workers": num_workers, "collate_fn": collate_fn, "persistent_workers": num_workers > 0}
    if shuffle:
        return ResumableLoader(dataset, batch_size, drop_last=len(dataset) >= batch_size, **kwargs)
    return plain_loader(dataset, batch_size=batch_size, **kwargs)


def vae_fingerprints(vaes: dict[str, str]) -> dict[str, str]:
    """Fingerprints of pretrained VAE directories {modality: dir} (class read from each config.yaml)."""
    import yaml

    out = {}
    for m, directory in vaes.items():
        config = os.path.join(directory, "config.yaml")
        if not os.path.isfile(config):
            raise FileNotFoundError(f"{config}: missing (expected a pretrained VAE directory for {m!r})")
        with open(config) as f:
            cls = import_class(yaml.safe_load(f)["class_path"])
        out[m] = cls.from_pretrained(directory).fingerprint()
    return out


class LatentCacheDataModule(L.LightningDataModule):
    """Windows of `window_seconds` from a latent cache (`mmgen cache`), for DiT training.

    Args:
        root: the cache directory.
        window_seconds: training window length; must be whole latent frames of every modality.
        batch_size, num_workers: DataLoader settings.
        val_fraction: share of clips (by id hash) held out for validation.
        modalities: subset of the cache's modalities to train on (default all).
        vaes: {modality: pretrained VAE dir}; when given, the cache must have been made by them.
        features: cached condition features to yield (default: every one in the cache); batches
            carry them as "features": {name: {"values", "mask"}}, cut into the same windows as
            the latents when time-aligned. DiTModule feeds them to its condition encoder instead
            of encoding raw inputs, after checking their encoders' fingerprints.
        streaming: stream a tar-shard cache (`mmgen cache --format shards`) shard by shard
            (`StreamingLatentWindows`: every DDP rank and loader worker reads its own shards, one
            at a time; for caches larger than one machine's memory, on a shared or network
            filesystem). Off: the cache (either layout) is read whole, with exact mid-epoch
            resume. A resumed streaming run restarts the stream; it does not continue mid-epoch.
    """

    def __init__(
        self,
        root: str,
        window_seconds: float = 4.0,
        batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.05,
        modalities: list[str] | None = None,
        vaes: dict[str, str] | None = None,
        features: list[str] | None = None,
        streaming: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._cache: LatentCache | None = None

    @property
    def cache(self) -> LatentCache:
        if self._cache is None:
            self._cache = LatentCache(
                self.hparams.root,
                self.hparams.modalities,
                in_memory=not self.hparams.streaming,
                features=self.hparams.features,
            )
            if self.hparams.vaes:
                self._cache.check_fingerprints(vae_fingerprints(self.hparams.vaes))
        return self._cache

    @property
    def specs(self) -> dict[str, Any]:
        return self.cache.specs

    def setup(self, stage: str | None = None) -> None:
        train_idx, val_idx = split_indices([it["id"] for it in self.cache.items], self.hparams.val_fraction)
        seconds = self.hparams.window_seconds
        if self.hparams.streaming:
            seed = torch.initial_seed() % 2**63  # seed_everything's seed: every rank shuffles alike
            self.train_set = StreamingLatentWindows(LatentWindows(self.cache, seconds, random=True), train_idx, True, seed)
            self.val_set = StreamingLatentWindows(LatentWindows(self.cache, seconds, random=False), val_idx, False)
            return
        self.train_set = Subset(LatentWindows(self.cache, seconds, random=True), self._window_positions(train_idx))
        self.val_set = Subset(LatentWindows(self.cache, seconds, random=False), self._window_positions(val_idx))

    def _window_positions(self, item_indices: list[int]) -> list[int]:
        windows = LatentWindows(self.cache, self.hparams.window_seconds, random=False)
        keep = set(item_indices)
        return [k for k, i in enumerate(windows.indices) if i in keep]

    def _loader(self, dataset: Subset | StreamingLatentWindows, shuffle: bool) -> DataLoader:
        hp = self.hparams
        if isinstance(dataset, StreamingLatentWindows):
            kwargs = {"num_workers": hp.num_workers, "persistent_workers": hp.num_workers > 0}
            return DataLoader(dataset, hp.batch_size, collate_fn=collate_latents, drop_last=shuffle, **kwargs)
        return make_loader(dataset, hp.batch_size, shuffle, hp.num_workers, collate_latents)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if len(self.val_set) else []
