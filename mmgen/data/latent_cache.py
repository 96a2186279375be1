"""Latent cache: every clip of a data set encoded once by trained VAEs, for DiT training.

    <cache>/
      manifest.json           format, per-modality spec + VAE fingerprint + LatentStats, items
      shard-00000.safetensors tensors "<item id>/<modality>": normalized latents [T_m, ...] (posterior mode)
      shard-00001.safetensors ...

Latents are stored already normalized by each VAE's `LatentStats`, so the DiT reads unit-variance
tokens directly. The manifest records the sha256 fingerprint of the VAE that made each modality
(its config and every weight but the decoder's, `ModalityVAE.fingerprinted_state`);
`LatentCache.check_fingerprints` refuses a cache made by other VAEs, because a DiT trained on one
VAE's latents produces noise through another's decoder. A decoder fine-tuned alone changes no
latent, so the cache stays valid.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
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

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1


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
) -> Path:
    """Encode `items` (dicts holding a raw value per modality and an "id") into a cache at `out_dir`.

    Written atomically: a failure leaves no half-built cache behind. `out_dir` must be new or
    empty, or (with `overwrite`) a cache mmgen wrote, and apart from the `inputs` folders.
    """
    if not encoders:
        raise ValueError("build_latent_cache: give at least one modality encoder")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    records: list[dict[str, Any]] = []
    with atomic_dir(out_dir, "latent cache", overwrite=overwrite, inputs=inputs) as tmp:
        shard: dict[str, torch.Tensor] = {}
        shard_index = 0

        def flush() -> None:
            nonlocal shard, shard_index
            if shard:
                save_file(shard, str(tmp / f"shard-{shard_index:05d}.safetensors"))
                shard, shard_index = {}, shard_index + 1

        seen: set[str] = set()
        for item in tqdm(items, total=total, desc="latent cache", unit="clip", disable=not progress):
            item_id = str(item.get("id", len(records)))
            if item_id in seen or "/" in item_id:
                raise ValueError(f"latent cache: item id {item_id!r} is duplicated or contains '/'")
            seen.add(item_id)
            frames = {}
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
                shard[f"{item_id}/{name}"] = z
                frames[name] = int(z.shape[0])
            meta = {k: _jsonable(item[k]) for k in meta_keys if k in item}
            records.append({"id": item_id, "shard": shard_index, "frames": frames, "meta": meta})
            if len(records) % shard_size == 0:
                flush()
        flush()
        if not records:
            raise ValueError("latent cache: the data set yielded no items")
        manifest = {
            "format": FORMAT,
            "modalities": {
                name: {
                    "spec": {"channels": e.spec.channels, "rate_hz": e.spec.rate_hz, "spatial": e.spec.spatial},
                    "fingerprint": e.fingerprint(),
                }
                for name, e in encoders.items()
            },
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
    """

    def __init__(self, root: str | os.PathLike, modalities: Sequence[str] | None = None, in_memory: bool = True) -> None:
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: not a latent cache (run `mmgen cache` first)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise MmgenError(f"{manifest_path}: corrupt manifest ({err})") from err
        if manifest.get("format") != FORMAT:
            raise MmgenError(f"{manifest_path}: cache format {manifest.get('format')!r}, this mmgen reads {FORMAT}")
        self.info: dict[str, dict[str, Any]] = manifest["modalities"]
        names = list(modalities) if modalities is not None else list(self.info)
        unknown = sorted(set(names) - set(self.info))
        if unknown:
            raise MmgenError(f"{self.root}: cache has modalities {sorted(self.info)}, not {unknown}")
        self.modalities = names
        self.items: list[dict[str, Any]] = manifest["items"]
        self.specs = {
            m: ModalitySpec(
                channels=self.info[m]["spec"]["channels"],
                rate_hz=self.info[m]["spec"]["rate_hz"],
                spatial=tuple(self.info[m]["spec"]["spatial"]) if self.info[m]["spec"]["spatial"] else None,
            )
            for m in names
        }
        self._tensors: dict[str, torch.Tensor] | None = None
        if in_memory:
            self._tensors = {}
            for shard in sorted({it["shard"] for it in self.items}):
                with safe_open(str(self._shard_path(shard)), framework="pt") as f:
                    for key in f.keys():  # noqa: SIM118  (a safetensors handle, not a dict: it is not iterable)
                        if key.rsplit("/", 1)[1] in names:
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

    def _shard_path(self, shard: int) -> Path:
        path = self.root / f"shard-{shard:05d}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shard listed in the manifest is missing")
        return path

    def __len__(self) -> int:
        return len(self.items)

    def latents(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        if self._tensors is not None:
            return {m: self._tensors[f"{item['id']}/{m}"] for m in self.modalities}
        with safe_open(str(self._shard_path(item["shard"])), framework="pt") as f:
            return {m: f.get_tensor(f"{item['id']}/{m}") for m in self.modalities}

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        return {"id": item["id"], "latents": self.latents(index), **item["meta"]}


def common_step_seconds(specs: Mapping[str, ModalitySpec]) -> Fraction:
    """Shortest time step on which every modality has a latent frame boundary (1 / gcd of rates)."""
    rates = [Fraction(s.rate_hz).limit_denominator(10_000) for s in specs.values()]
    num = math.gcd(*(r.numerator for r in rates))
    den = math.lcm(*(r.denominator for r in rates))
    return 1 / Fraction(num, den)


class LatentWindows(torch.utils.data.Dataset):
    """Fixed-length windows of cached clips, cut at the same moment in every modality.

        audio  7.5 Hz  |a a a a a a a a a a a a a a a|   window of 2 s starting at 0.8 s
        video 3.75 Hz  |v   v   v   v   v   v   v   v|   starts lie on multiples of 1/3.75 s

    Training (`random=True`) draws the start uniformly from the common frame grid of the
    modalities; otherwise the first window is taken. Clips shorter than the window are skipped
    (with a log line), never padded.
    """

    def __init__(self, cache: LatentCache, seconds: float, random: bool = True) -> None:
        self.cache, self.seconds, self.random = cache, float(seconds), random
        self.step = common_step_seconds(cache.specs)
        self.frames = {}
        for m, spec in cache.specs.items():
            n = seconds * spec.rate_hz
            if abs(n - round(n)) > 1e-6 or round(n) < 1:
                raise ValueError(f"window of {seconds} s is not a whole number of {m!r} latent frames at {spec.rate_hz} Hz")
            self.frames[m] = round(n)
        self.indices = [
            i for i, it in enumerate(cache.items)
            if all(it["frames"][m] >= self.frames[m] for m in cache.modalities)
        ]
        if len(self.indices) < len(cache.items):
            log.info("latent windows: %d of %d clips shorter than %.2f s skipped",
                     len(cache.items) - len(self.indices), len(cache.items), seconds)
        if not self.indices:
            raise MmgenError(f"{cache.root}: no clip is at least {seconds} s long")

    def __len__(self) -> int:
        return len(self.indices)

    def _num_starts(self, item: Mapping[str, Any]) -> int:
        starts = None
        for m, spec in self.cache.specs.items():
            frames_per_step = float(self.step * Fraction(spec.rate_hz).limit_denominator(10_000))
            n = (item["frames"][m] - self.frames[m]) // round(frames_per_step) + 1
            starts = n if starts is None else min(starts, n)
        return int(starts or 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self.indices[index]
        item = self.cache.items[i]
        # torch's global RNG: DataLoader seeds it per worker, Lightning's seed_everything seeds it
        k = int(torch.randint(self._num_starts(item), ())) if self.random else 0
        latents = self.cache.latents(i)
        out = {}
        for m, spec in self.cache.specs.items():
            first = round(k * float(self.step) * spec.rate_hz)
            out[m] = latents[m][first : first + self.frames[m]]
        meta = dict(item["meta"])
        meta["window_start"] = float(k * self.step)
        return {"id": item["id"], "latents": out, **meta}


def collate_latents(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack latents per modality; keep other fields as lists (captions, beat times of any length)."""
    out: dict[str, Any] = {"latents": {m: torch.stack([b["latents"][m] for b in batch]) for m in batch[0]["latents"]}}
    for key in batch[0]:
        if key != "latents":
            out[key] = [b.get(key) for b in batch]
    return out
