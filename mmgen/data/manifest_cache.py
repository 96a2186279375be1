"""A manifest folder (ToyDance or `mmgen preprocess` output) -> a latent cache, through MediaModalities.

    ManifestDataset item (file rates)  --conform--> model rates  --fit--> whole latent frames
        --MediaModality.encode_item--> build_latent_cache (shards + manifest with VAE fingerprints)

Conforming is what `mmgen generate` does to its inputs (`mmgen.io.read`): audio resampled, motion
resampled by linear interpolation, video frames picked at the model fps and resized. Every
modality of a clip (or window) of `s` seconds is then fit to `spec.num_frames(s)` latent frames,
so the cached modalities line up in time. Meta per item: caption, the window's structured caption
("<kick @ all>, <bass @ start>", when the record has a structure), quality (when the record has
one), the source's length (source_seconds: Stable Audio's seconds_total), style, bpm, seconds, the
window's start and source id, and ToyDance's beat times (from the motion npz) shifted into the window.

Condition features (`conditioners`): each conditioner's `encode` sees the item as a batch of one:
the conformed modality values (what the VAEs encode, and what `mmgen generate` hands the
conditioners), their rates under RATE_KEYS ("video_fps", ...), and the meta. A modality a
conditioner reads but no VAE caches is passed as the file holds it, with the file's rate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmgen.core.limits import scalar
from mmgen.io.read import conform_video, motion_for_codec, resample_motion
from mmgen.modalities.media import MediaModality
from mmgen.modalities.raw_length import coverage_length, fit_length, pad_mode

logger = logging.getLogger(__name__)

META_KEYS = (
    "caption", "structure_caption", "quality", "style", "bpm", "beat_times", "seconds", "start", "source_id",
    "source_seconds",
)
RATE_KEYS = {"audio": "sample_rate", "motion": "motion_fps", "video": "video_fps"}


def _file_rates(root: Path, rec: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Sample rate / fps of a record's files for the modalities `names` (header reads where the
    record lacks them), and the motion npz's beat times if it has any. A missing or unreadable
    file is a ValueError naming it and the manifest record."""
    files, rates = rec["files"], {}
    where = f"record {rec.get('id')!r} of {root / 'manifest.jsonl'}"

    def read(name: str, reader: Any) -> Any:
        path = root / files[name]
        if not path.is_file():
            raise ValueError(f"{path}: missing ({where} names it)")
        try:
            return reader(path)
        except (RuntimeError, OSError, ValueError) as err:  # soundfile / decord / numpy, each its own way
            raise ValueError(f"{path}: cannot be read ({str(err).splitlines()[0][:160]}; {where})") from None

    if "audio" in names:
        import soundfile as sf

        rates["audio"] = int(rec.get("sample_rate") or read("audio", lambda p: sf.info(str(p)).samplerate))
    if "motion" in files:
        from mmgen.io.export import load_motion_npz

        data = read("motion", load_motion_npz)
        rates["motion"] = scalar(f"{root / files['motion']}: fps", data["fps"])
        rates["beat_times"] = (
            np.asarray(data["beat_times"], np.float64).reshape(-1) if "beat_times" in data else None
        )
    if "video" in names:
        from mmgen.io.video_backend import probe_video

        rates["video"] = float(rec.get("video_fps") or read("video", lambda p: probe_video(p).fps))
    return rates


def conform(modality: MediaModality, raw: Any, rate: float) -> torch.Tensor:
    """One raw clip at a file's `rate` -> a tensor at the modality's rate (and frame size)."""
    kind = modality.kind
    x = raw.numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
    if kind == "motion":
        x = motion_for_codec(x, modality.vae.codec.dims)
        return torch.from_numpy(resample_motion(x, rate, modality.raw_rate))
    if kind == "video":
        return torch.from_numpy(conform_video(x, rate, modality.raw_rate, modality.vae.frame_size))
    from mmgen.io.audio import resample_audio

    return torch.from_numpy(resample_audio(x.astype(np.float32), int(rate), int(modality.raw_rate)))


def window_structure_caption(structure: Sequence[Mapping[str, Any]], start: float, seconds: float) -> str:
    """The structured caption of the window [start, start + seconds) of a clip's structure
    ({"instrument", "start", "end"} in clip seconds): events cut to the window, shifted to it."""
    from mmgen.conditioning.captions import structure_caption

    shifted = [
        {"instrument": ev["instrument"], "start": max(float(ev["start"]) - start, 0.0), "end": float(ev["end"]) - start}
        for ev in structure
        if float(ev["end"]) > start and float(ev["start"]) < start + seconds
    ]
    return structure_caption(shifted, seconds)


class ManifestItems(Sequence):
    """Items for `build_latent_cache` from a ManifestDataset, by index: raw values at the model's
    rates, fit to whole latent frames, plus meta and each value's rate (RATE_KEYS). Modalities in
    `raw` (read for condition features only) come as the file holds them. Window items get ids
    "<id>@<start>". Indexable, so `mmgen cache --workers N` reads items in the workers."""

    def __init__(self, dataset: Any, modalities: Mapping[str, MediaModality], raw: Sequence[str] = ()) -> None:
        self.dataset, self.modalities, self.raw = dataset, modalities, list(raw)
        self._rates: tuple[int, dict[str, Any]] | None = None  # windows of one record come in a row

    def __len__(self) -> int:
        return len(self.dataset)

    def _record_rates(self, index: int) -> dict[str, Any]:
        if self._rates is None or self._rates[0] != index:
            rec = self.dataset.records[index]
            self._rates = (index, _file_rates(self.dataset.root, rec, [*self.modalities, *self.raw]))
        return self._rates[1]

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        dataset = self.dataset
        index, start = dataset.windows[i]
        rec = dataset.records[index]
        rates = self._record_rates(index)
        item = dataset[i]
        seconds = float(dataset.seconds if dataset.seconds is not None else rec["seconds"])
        out: dict[str, Any] = {
            "id": f"{rec['id']}@{start:g}" if dataset.seconds is not None else str(rec["id"]),
            "source_id": str(rec["id"]),
            "start": float(start),
            "seconds": seconds,
            "source_seconds": float(rec["seconds"]),
            **{k: item[k] for k in ("caption", "style", "bpm") if item.get(k) is not None},
        }
        if rec.get("quality") is not None:
            out["quality"] = scalar(f"record {rec['id']!r}: quality", rec["quality"])
        if rec.get("structure"):
            out["structure_caption"] = window_structure_caption(rec["structure"], float(start), seconds)
        for name, mod in self.modalities.items():
            x = conform(mod, item[name], rates[name])
            n = mod.spec.num_frames(seconds)
            out[name] = fit_length(x[None], coverage_length(mod, n), pad_mode(mod))[0]
            out[RATE_KEYS[name]] = float(mod.raw_rate)
        for name in self.raw:
            out[name] = item[name]
            out[RATE_KEYS[name]] = float(rates[name])
        beats = rates.get("beat_times")
        if beats is not None:
            out["beat_times"] = beats[(beats >= start) & (beats < start + seconds)] - start
        return out


def cache_manifest(
    data: str | os.PathLike,
    modalities: Mapping[str, MediaModality],
    out: str | os.PathLike,
    seconds: float | None = None,
    stride: float | None = None,
    shard_size: int = 256,
    progress: bool = True,
    overwrite: bool = False,
    conditioners: Mapping[str, Any] | None = None,
    workers: int = 1,
    layout: str = "safetensors",
) -> Path:
    """Encode every item (or window of `seconds`, hopping by `stride`) of a manifest folder into a
    latent cache at `out`; modality names must be among audio / motion / video. `out` must be new
    or empty, or (with `overwrite`) a cache mmgen wrote; it may not be or hold `data`.
    `conditioners` {name: Conditioner} also stores each one's frozen features per item.
    `workers` > 1 reads and encodes items in that many processes (same bytes out); `layout` "tar"
    writes streamable tar shards (`mmgen.data.latent_shards`)."""
    from mmgen.core.fileio import check_output_dir
    from mmgen.data.latent_cache import build_latent_cache
    from mmgen.data.manifest import MODALITIES, ManifestDataset

    names: Sequence[str] = list(modalities)
    bad = [m for m in names if m not in MODALITIES]
    if bad:
        raise ValueError(
            f"cache: modalities {bad} cannot be read from a manifest folder (it holds {MODALITIES})"
        )
    if seconds is not None and not seconds > 0:
        raise ValueError(f"cache: --seconds must be positive, got {seconds}")
    check_output_dir(out, "latent cache", overwrite=overwrite, inputs=[data])
    conditioners = dict(conditioners or {})
    wanted = {k for c in conditioners.values() for k in c.keys}
    raw = [m for m in MODALITIES if m in wanted and m not in names]
    dataset = ManifestDataset(data, modalities=[*names, *raw], seconds=seconds, stride=stride)
    logger.info("cache: %d items from %s", len(dataset), data)
    with torch.no_grad():
        return build_latent_cache(
            out,
            ManifestItems(dataset, modalities, raw),
            dict(modalities),
            meta_keys=META_KEYS,
            shard_size=shard_size,
            total=len(dataset),
            progress=progress,
            overwrite=overwrite,
            inputs=[data],
            conditioners=conditioners,
            workers=workers,
            layout=layout,
        )
