"""Tar shards of a latent cache (`mmgen cache --format shards`) and a streaming reader for multi-node training.

    <cache>/
      manifest.json      the folder cache's manifest, "layout": "tar"
      shard-00000.tar    members "<k:09d>.safetensors", one per clip k of the manifest:
                         tensors "<modality>", "feature.<name>.values" / ".mask", metadata {"id": ...}
      shard-00001.tar    ...

Why plain tar of safetensors: no dependency (the folder cache already writes safetensors), the
bytes are deterministic (zeroed mtimes / owners: `--workers N` writes the same shards), and the
layout is WebDataset's (a sample = the members sharing a key before the first dot), so
`webdataset.WebDataset("shard-{00000..00041}.tar")` reads these shards from object storage as
they are. litdata would need its own chunk format and a `litdata.optimize` pass; WebDataset's
reader, mmgen does not need: `StreamingLatentWindows` reads a tar sequentially (`tarfile` mode
"r|") and cuts the same windows as `LatentWindows`.

Streaming: shard j of a seeded shuffle goes to reader j mod (ranks x DataLoader workers) (with
fewer shards than readers, every reader reads every shard and keeps every n-th clip); every epoch
a reader reads its shards in a new order, clips shuffled within a shard; each reader yields the same
number of windows (the fewest any reader has, computed from the manifest), so DDP ranks never
wait on each other at an epoch's end. Only one shard per reader is in memory at a time.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

LAYOUTS = ("safetensors", "tar")


def shard_name(layout: str, index: int) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"cache layout must be one of {LAYOUTS}, got {layout!r}")
    return f"shard-{index:05d}.{'tar' if layout == 'tar' else 'safetensors'}"


def member_name(position: int) -> str:
    """Clip `position` of the manifest -> its tar member (a WebDataset key without dots)."""
    return f"{position:09d}.safetensors"


def write_tar_shard(path: str | Path, members: Sequence[tuple[str, str, Mapping[str, torch.Tensor]]]) -> None:
    """members: (member name, clip id, {key: tensor}) -> one tar, byte-identical for the same input."""
    with tarfile.open(str(path), "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, item_id, tensors in members:
            data = save_safetensors(dict(tensors), metadata={"id": item_id})
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def _member_tensors(data: bytes, where: str) -> tuple[str, dict[str, torch.Tensor]]:
    tensors = load_safetensors(data)
    header_len = int.from_bytes(data[:8], "little")
    try:
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except ValueError as err:
        raise ValueError(f"{where}: not a safetensors member ({err})") from None
    if "id" not in meta:
        raise ValueError(f"{where}: the member has no clip id in its metadata")
    return meta["id"], tensors


def iter_tar_shard(path: str | Path) -> Iterator[tuple[str, str, dict[str, torch.Tensor]]]:
    """(member name, clip id, {key: tensor}) of every member, reading the tar front to back."""
    with tarfile.open(str(path), "r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            f = tar.extractfile(info)
            assert f is not None  # a regular file member
            item_id, tensors = _member_tensors(f.read(), f"{path}:{info.name}")
            yield info.name, item_id, tensors


def read_tar_member(path: str | Path, name: str) -> tuple[str, dict[str, torch.Tensor]]:
    """One member of a tar shard (random access: the tar's headers are scanned once per call)."""
    with tarfile.open(str(path), "r:") as tar:
        try:
            f = tar.extractfile(name)
        except KeyError:
            raise FileNotFoundError(f"{path}: no member {name} (the manifest lists it)") from None
        assert f is not None
        return _member_tensors(f.read(), f"{path}:{name}")


def _reader_slot() -> tuple[int, int]:
    """(this reader's index, number of readers) over DDP ranks x DataLoader workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = torch.utils.data.get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * workers + worker, world * workers


class StreamingLatentWindows(torch.utils.data.IterableDataset):
    """Windows of a tar-shard cache, streamed shard by shard (see the module docstring).

    Args:
        windows: a `LatentWindows` over the cache's `LatentCache(in_memory=False)`: the window
            length, rates and the clips long enough come from it; its `cut` makes each window.
        items: positions (in the manifest) of the clips to yield, e.g. the training split.
        shuffle: reshuffle shards and clips every epoch (training); else manifest order.
        seed: the shuffling seed (with the epoch).
    """

    def __init__(self, windows: Any, items: Sequence[int], shuffle: bool = True, seed: int = 0) -> None:
        cache = windows.cache
        if cache.layout != "tar":
            raise ValueError(f"{cache.root}: streaming needs a tar-shard cache (`mmgen cache --format shards`)")
        self.windows, self.shuffle, self.seed, self.epoch = windows, shuffle, int(seed), 0
        long_enough = set(windows.indices)
        self.wanted = sorted(set(items) & long_enough)
        by_shard: dict[int, list[int]] = {}
        for i in self.wanted:
            by_shard.setdefault(int(cache.items[i]["shard"]), []).append(i)
        self.by_shard = by_shard

    def _plan(self, epoch: int, readers: int) -> list[tuple[list[int], set[int]]]:
        """Per reader: (its shards in this epoch's reading order, the clips it keeps). Which shards
        a reader gets is fixed (a seeded shuffle), so every epoch has the same per-reader count;
        their order is reshuffled every epoch. With fewer shards than readers every reader reads
        every shard and keeps every `readers`-th clip instead."""
        shards = sorted(self.by_shard)
        if self.shuffle:
            random.Random(self.seed).shuffle(shards)
        if len(shards) < readers:
            return [(shards, set(self.wanted[r::readers])) for r in range(readers)]
        plan = []
        for r in range(readers):
            mine = shards[r::readers]
            if self.shuffle:
                random.Random((self.seed * 1_000_003 + epoch) * 8191 + r).shuffle(mine)
            plan.append((mine, {i for s in mine for i in self.by_shard[s]}))
        return plan

    def per_reader(self, readers: int) -> int:
        """Windows each reader yields per epoch (equal for all: the smallest share)."""
        return min(len(keep) for _, keep in self._plan(0, readers))

    def __len__(self) -> int:
        _, readers = _reader_slot()
        return self.per_reader(readers) * readers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, readers = _reader_slot()
        epoch, self.epoch = self.epoch, self.epoch + 1  # each worker copy counts its own epochs alike
        shards, keep = self._plan(epoch, readers)[slot]
        budget = self.per_reader(readers)
        cache = self.windows.cache
        position = {it["id"]: k for k, it in enumerate(cache.items)}
        rng = random.Random((self.seed * 1_000_003 + epoch) * 8191 + slot)
        for shard in shards:
            if budget == 0:
                return
            clips = []
            for _, item_id, tensors in iter_tar_shard(cache.shard_path(shard)):
                k = position.get(item_id)
                if k in keep:
                    clips.append((k, tensors))
            if self.shuffle:
                rng.shuffle(clips)
            for k, tensors in clips[:budget]:
                budget -= 1
                yield self.windows.cut(k, *cache.split_tensors(tensors))
