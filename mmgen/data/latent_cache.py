"""Latent cache: every clip of a data set encoded once by trained VAEs, for DiT training.

    <cache>/
      manifest.json           format, per-modality spec + VAE fingerprint + LatentStats, items,
                              per-feature fingerprint / width / rate (format 2)
      shard-00000.safetensors tensors "<item id>/<modality>": normalized latents [T_m, ...] (posterior mode)
                                      "<item id>/feature.<name>.values" [L, F], ".mask" [L] (optional)
      shard-00001.safetensors ...

Latents are stored already normalized by each VAE's `LatentStats`, so the DiT reads unit-variance
tokens directly. The manifest records the sha256 fingerprint of the VAE that made each modality
(its config and every weight but the decoder's, `ModalityVAE.fingerprinted_state`);
`LatentCache.check_fingerprints` refuses a cache made by other VAEs, because a DiT trained on one
VAE's latents produces noise through another's decoder. A decoder fine-tuned alone changes no
latent, so the cache stays valid.

Frozen condition features (`mmgen.data.cached_features`) are stored the same way: each named
conditioner's `encode` output per clip, with its encoder's fingerprint, so the DiT trains on them
without running the encoder; time-aligned features are cut into the same windows as the latents.
Format 1 caches (latents only) still read. A cache written with `layout="tar"` (`mmgen cache
--format shards`) holds the same tensors in tar shards of one safetensors per clip
(`mmgen.data.latent_shards`); `LatentCache` reads both layouts alike.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from mmgen.core.errors import MmgenError
from mmgen.core.fileio import atomic_dir
from mmgen.core.timeline import ModalitySpec
from mmgen.data.cached_features import (
    FeatureSource,
    encode_item_features,
    feature_manifest,
    tensor_keys,
)
from mmgen.data.latent_shards import (
    LAYOUTS,
    iter_tar_shard,
    member_name,
    read_tar_member,
    shard_name,
    write_tar_shard,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 2
READABLE_FORMATS = (1, 2)


class LatentEncoder(Protocol):
    """What the cache needs from a modality: raw item value -> normalized latents of one clip."""

    spec: ModalitySpec

    def encode_item(self, raw: Any) -> torch.Tensor: ...  # [T_m, C] or [T_m, h, w, C]

    def fingerprint(self) -> str: ...


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return np.asarray(value).tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def encode_cache_item(
    item: Mapping[str, Any],
    index: int,
    encoders: Mapping[str, LatentEncoder],
    conditioners: Mapping[str, FeatureSource],
    meta_keys: Sequence[str],
) -> dict[str, Any]:
    """One item -> {"id", "tensors": {key: array}, "frames", "feature_frames", "meta"}, checked.

    Tensors come back as numpy arrays: from a worker process they travel through the pipe as
    bytes (torch tensors would each hold a shared-memory file descriptor open in the parent)."""
    item_id = str(item.get("id", index))
    if "/" in item_id:
        raise ValueError(f"latent cache: item id {item_id!r} contains '/'")
    tensors: dict[str, np.ndarray] = {}
    frames, feature_frames = {}, {}
    for name, encoder in encoders.items():
        if name not in item:
            raise ValueError(f"latent cache: item {item_id!r} has no {name!r} value")
        with torch.no_grad():
            z = encoder.encode_item(item[name]).detach().float().cpu().contiguous()
        expected_rank = encoder.spec.latent_rank - 1
        if z.ndim != expected_rank or z.shape[-1] != encoder.spec.channels:
            raise ValueError(
                f"latent cache: {name!r} encoder returned {tuple(z.shape)} for item {item_id!r}, "
                f"expected rank {expected_rank} with {encoder.spec.channels} channels"
            )
        if not torch.isfinite(z).all():
            raise ValueError(f"latent cache: {name!r} latents of item {item_id!r} are not finite")
        tensors[f"{item_id}/{name}"] = z.numpy()
        frames[name] = int(z.shape[0])
    for name, conditioner in conditioners.items():
        values, mask = encode_item_features(name, conditioner, item, item_id)
        key_values, key_mask = tensor_keys(name)
        tensors[f"{item_id}/{key_values}"], tensors[f"{item_id}/{key_mask}"] = values.numpy(), mask.numpy()
        feature_frames[name] = int(values.shape[0])
    meta = {k: _jsonable(item[k]) for k in meta_keys if k in item}
    return {"id": item_id, "tensors": tensors, "frames": frames, "feature_frames": feature_frames, "meta": meta}


def build_latent_cache(
    out_dir: str | os.PathLike,
    items: Iterable[Mapping[str, Any]],
    encoders: Mapping[str, LatentEncoder],
    *,
    meta_keys: Sequence[str] = ("caption", "style", "bpm", "beat_times", "seconds", "structure"),
    shard_size: int = 256,
    total: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
    conditioners: Mapping[str, FeatureSource] | None = None,
    workers: int = 1,
    layout: str = "safetensors",
) -> Path:
    """Encode `items` (dicts holding a raw value per modality and an "id") into a cache at `out_dir`.

    `conditioners` {name: Conditioner}: also store each one's frozen Features per item (the item,
    as a batch of one, must hold the keys its `encode` reads). Written atomically: a failure
    leaves no half-built cache behind. `out_dir` must be new or empty, or (with `overwrite`) a
    cache mmgen wrote, and apart from the `inputs` folders. `workers` > 1 reads and encodes items
    in that many processes (`items` must then be a Sequence, read by index in the workers); shards
    and manifest are the same bytes as with one worker. `layout` "tar" writes tar shards of one
    safetensors per clip (`mmgen.data.latent_shards`, streamable) instead of one safetensors per shard.
    """
    from mmgen.core.parallel import check_workers, ordered_map

    conditioners = dict(conditioners or {})
    widths: dict[str, int] = {}
    if not encoders:
        raise ValueError("build_latent_cache: give at least one modality encoder")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    check_workers("workers", workers)
    if workers > 1 and not isinstance(items, Sequence):
        raise ValueError("build_latent_cache: workers > 1 needs items as a Sequence (read by index)")
    shard_name(layout, 0)  # a bad layout fails before any work
    records: list[dict[str, Any]] = []
    with atomic_dir(out_dir, "latent cache", overwrite=overwrite, inputs=inputs) as tmp:
        shard: list[tuple[str, dict[str, torch.Tensor]]] = []  # (clip id, {"<id>/<key>": tensor})
        shard_index = 0

        def flush() -> None:
            nonlocal shard, shard_index
            if not shard:
                return
            path = tmp / shard_name(layout, shard_index)
            if layout == "tar":
                first = len(records) - len(shard)
                write_tar_shard(
                    path,
                    [
                        (member_name(first + j), item_id, {k.split("/", 1)[1]: v for k, v in tensors.items()})
                        for j, (item_id, tensors) in enumerate(shard)
                    ],
                )
            else:
                save_file({k: v for _, tensors in shard for k, v in tensors.items()}, str(path))
            shard, shard_index = [], shard_index + 1

        if isinstance(items, Sequence):
            sequence = items
            encoded = ordered_map(
                lambda k: encode_cache_item(sequence[k], k, encoders, conditioners, meta_keys),
                range(len(sequence)),
                workers,
            )
            total = len(sequence)
        else:
            encoded = (encode_cache_item(it, k, encoders, conditioners, meta_keys) for k, it in enumerate(items))
        seen: set[str] = set()
        for done in tqdm(encoded, total=total, desc="latent cache", unit="clip", disable=not progress):
            item_id = done["id"]
            if item_id in seen:
                raise ValueError(f"latent cache: item id {item_id!r} is duplicated")
            seen.add(item_id)
            for name in conditioners:
                width = int(done["tensors"][f"{item_id}/{tensor_keys(name)[0]}"].shape[1])
                if widths.setdefault(name, width) != width:
                    raise ValueError(
                        f"latent cache: feature {name!r} of item {item_id!r} has width {width}, "
                        f"earlier items {widths[name]}"
                    )
            shard.append((item_id, {key: torch.from_numpy(value) for key, value in done["tensors"].items()}))
            record = {"id": item_id, "shard": shard_index, "frames": done["frames"], "meta": done["meta"]}
            if conditioners:
                record["feature_frames"] = done["feature_frames"]
            records.append(record)
            if len(records) % shard_size == 0:
                flush()
        flush()
        if not records:
            raise ValueError("latent cache: the data set yielded no items")
        manifest = {
            "format": FORMAT,
            **({"layout": layout} if layout != "safetensors" else {}),
            "modalities": {
                name: {
                    "spec": {"channels": e.spec.channels, "rate_hz": e.spec.rate_hz, "spatial": e.spec.spatial},
                    "fingerprint": e.fingerprint(),
                }
                for name, e in encoders.items()
            },
            "features": feature_manifest(conditioners, widths),
            "items": records,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    log.info("latent cache: %d clips in %d shard(s) at %s", len(records), shard_index, out_dir)
    return Path(out_dir)


class LatentCache(torch.utils.data.Dataset):
    """Whole clips from a latent cache: {"id", "latents": {m: [T_m, ...]}, **meta}.

    Args:
        root: the cache directory.
        modalities: which modalities to read (default: all in the cache).
        in_memory: load every shard once (right for caches of a few hundred MB).
        features: which cached condition features to read (default: all in the cache); items
            then carry "features": {name: (values [L, F], mask [L])}.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        modalities: Sequence[str] | None = None,
        in_memory: bool = True,
        features: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: not a latent cache (run `mmgen cache` first)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise MmgenError(f"{manifest_path}: corrupt manifest ({err})") from err
        if manifest.get("format") not in READABLE_FORMATS:
            raise MmgenError(
                f"{manifest_path}: cache format {manifest.get('format')!r}, this mmgen reads {READABLE_FORMATS}"
            )
        self.info: dict[str, dict[str, Any]] = manifest["modalities"]
        names = list(modalities) if modalities is not None else list(self.info)
        unknown = sorted(set(names) - set(self.info))
        if unknown:
            raise MmgenError(f"{self.root}: cache has modalities {sorted(self.info)}, not {unknown}")
        self.modalities = names
        self.feature_info: dict[str, dict[str, Any]] = manifest.get("features", {})
        feature_names = list(features) if features is not None else list(self.feature_info)
        unknown = sorted(set(feature_names) - set(self.feature_info))
        if unknown:
            raise MmgenError(
                f"{self.root}: cache has condition features {sorted(self.feature_info)}, not {unknown} "
                "(store them with `mmgen cache --condition CONFIG`)"
            )
        self.features = feature_names
        wanted = set(names) | {k for n in feature_names for k in tensor_keys(n)}
        self.items: list[dict[str, Any]] = manifest["items"]
        self.specs = {
            m: ModalitySpec(
                channels=self.info[m]["spec"]["channels"],
                rate_hz=self.info[m]["spec"]["rate_hz"],
                spatial=tuple(self.info[m]["spec"]["spatial"]) if self.info[m]["spec"]["spatial"] else None,
            )
            for m in names
        }
        self.layout = manifest.get("layout", "safetensors")
        if self.layout not in LAYOUTS:
            raise MmgenError(f"{manifest_path}: cache layout {self.layout!r}, this mmgen reads {LAYOUTS}")
        self._tensors: dict[str, torch.Tensor] | None = None
        if in_memory:
            self._tensors = {}
            for shard in sorted({it["shard"] for it in self.items}):
                if self.layout == "tar":
                    for _, item_id, tensors in iter_tar_shard(self.shard_path(shard)):
                        self._tensors.update({f"{item_id}/{k}": v for k, v in tensors.items() if k in wanted})
                    continue
                with safe_open(str(self.shard_path(shard)), framework="pt") as f:
                    for key in f.keys():  # noqa: SIM118  (a safetensors handle, not a dict: it is not iterable)
                        if key.rsplit("/", 1)[1] in wanted:
                            self._tensors[key] = f.get_tensor(key)

    @property
    def fingerprints(self) -> dict[str, str]:
        return {m: self.info[m]["fingerprint"] for m in self.modalities}

    def check_fingerprints(self, expected: Mapping[str, str]) -> None:
        """Raise unless every named modality was encoded by the VAE with the expected fingerprint."""
        for m, fp in expected.items():
            if m not in self.info:
                raise MmgenError(f"{self.root}: the cache has no {m!r} latents")
            if self.info[m]["fingerprint"] != fp:
                raise MmgenError(
                    f"{self.root}: {m!r} latents were made by a different VAE (cache fingerprint "
                    f"{self.info[m]['fingerprint'][:12]}, this VAE {fp[:12]}); rebuild the cache with `mmgen cache`"
                )

    def check_feature_fingerprints(self, expected: Mapping[str, str]) -> None:
        """Raise unless every named feature was stored by an encoder with the expected fingerprint."""
        for name, fp in expected.items():
            if name not in self.feature_info:
                raise MmgenError(f"{self.root}: the cache has no {name!r} condition features")
            if self.feature_info[name]["fingerprint"] != fp:
                raise MmgenError(
                    f"{self.root}: {name!r} features were made by a different encoder (cache fingerprint "
                    f"{self.feature_info[name]['fingerprint'][:12]}, this one {fp[:12]}); rebuild the cache"
                )

    def shard_path(self, shard: int) -> Path:
        path = self.root / shard_name(self.layout, shard)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shard listed in the manifest is missing")
        return path

    def __len__(self) -> int:
        return len(self.items)

    def _item_tensors(self, index: int, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        """{key: tensor} of one clip, keys without the "<id>/" prefix."""
        item = self.items[index]
        if self._tensors is not None:
            return {k: self._tensors[f"{item['id']}/{k}"] for k in keys}
        if self.layout == "tar":
            _, tensors = read_tar_member(self.shard_path(item["shard"]), member_name(index))
            return {k: tensors[k] for k in keys}
        with safe_open(str(self.shard_path(item["shard"])), framework="pt") as f:
            return {k: f.get_tensor(f"{item['id']}/{k}") for k in keys}

    def split_tensors(
        self, tensors: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """One clip's {key: tensor} -> (latents {m: [T_m, ...]}, features {name: (values, mask)})."""
        latents = {m: tensors[m] for m in self.modalities}
        features = {n: (tensors[tensor_keys(n)[0]], tensors[tensor_keys(n)[1]]) for n in self.features}
        return latents, features

    def latents(self, index: int) -> dict[str, torch.Tensor]:
        return self._item_tensors(index, self.modalities)

    def item_features(self, index: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{name: (values [L, F], mask [L])} of the selected condition features of one clip."""
        tensors = self._item_tensors(index, [k for n in self.features for k in tensor_keys(n)])
        return {n: (tensors[tensor_keys(n)[0]], tensors[tensor_keys(n)[1]]) for n in self.features}

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        out = {"id": item["id"], "latents": self.latents(index), **item["meta"]}
        if self.features:
            out["features"] = self.item_features(index)
        return out


# the windows a DataModule cuts from a cache live in their own module; imported here for old callers
from mmgen.data.latent_windows import LatentWindows, collate_latents, common_step_seconds

__all__ = ["LatentCache", "LatentWindows", "build_latent_cache", "collate_latents", "common_step_seconds"]
