"""Frozen condition features in the latent cache: each named conditioner's `encode` output per clip.

    item {"id", "video": frames, "video_fps": 15.0, "caption": "...", ...}
        └─ batch of one {"video": frames[None], "video_fps": [15.0], "caption": ["..."]}
              └─ conditioner.encode ─► Features values [1, L, F], mask [1, L]
                    └─ shard tensors "<id>/feature.<name>.values" [L, F], "<id>/feature.<name>.mask" [L]

The cache manifest records per feature name the encoder's fingerprint, its width F, and, for
time-aligned features (target "aligned" or "map"), the frame rate: aligned features are cut into the same
windows as the latents; other features (text, a global embedding) go whole with every window.
A conditioner vouches for its frozen part with `feature_fingerprint()` when it has one (the video
sync encoder hashes its weights); otherwise its config without `dim` is hashed (the projection
width does not change what `encode` computes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import yaml

from mmgen.conditioning.base import TIME_AXIS_TARGETS, Features

PREFIX = "feature."


class FeatureSource(Protocol):
    """What the cache needs from a conditioner (`mmgen.conditioning.Conditioner` fits)."""

    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features: ...


def feature_fingerprint(conditioner: Any) -> str:
    own = getattr(conditioner, "feature_fingerprint", None)
    if callable(own):
        return str(own())
    spec = conditioner.config_yaml()
    args = {k: v for k, v in (spec.get("init_args") or {}).items() if k != "dim"}
    text = yaml.safe_dump({"class_path": spec["class_path"], "init_args": args}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def feature_rate(conditioner: Any) -> float | None:
    """Frames per second of a time-aligned conditioner's features (an "aligned" stream or "map"
    pictures); None for features with no time axis."""
    return float(conditioner.rate_hz) if getattr(conditioner, "target", None) in TIME_AXIS_TARGETS else None


def tensor_keys(name: str) -> tuple[str, str]:
    return f"{PREFIX}{name}.values", f"{PREFIX}{name}.mask"


def batch_of_one(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's values as a batch of one: arrays / tensors gain a leading axis, others a list."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        out[key] = value[None] if isinstance(value, torch.Tensor) else [value]
    return out


def encode_item_features(name: str, conditioner: FeatureSource, item: Mapping[str, Any], item_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(values [L, F] float32, mask [L] bool) of one item, checked."""
    with torch.no_grad():
        f = conditioner.encode(batch_of_one(item))  # on the conditioner's own device
    if f.batch_size != 1:
        raise ValueError(f"latent cache: feature {name!r} gave {f.batch_size} rows for item {item_id!r}, expected 1")
    values = f.values[0].detach().float().cpu().contiguous()
    if not torch.isfinite(values).all():
        raise ValueError(f"latent cache: feature {name!r} of item {item_id!r} is not finite")
    return values, f.mask[0].cpu().contiguous()


def feature_manifest(conditioners: Mapping[str, Any], widths: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "fingerprint": feature_fingerprint(c),
            "rate_hz": feature_rate(c),
            "dim": int(widths[name]),
            "target": getattr(c, "target", None),
            "group": getattr(c, "group", None),
        }
        for name, c in conditioners.items()
    }


def collate_features(items: Sequence[Mapping[str, tuple[torch.Tensor, torch.Tensor]]]) -> dict[str, dict[str, torch.Tensor]]:
    """[{name: (values [L_i, F], mask [L_i])}] -> {name: {"values": [B, L, F], "mask": [B, L]}},
    right-padded with mask False where lengths differ (plain dicts, so Lightning moves them)."""
    out = {}
    for name in items[0]:
        length = max(it[name][0].shape[0] for it in items)
        values = torch.zeros(len(items), length, items[0][name][0].shape[1])
        mask = torch.zeros(len(items), length, dtype=torch.bool)
        for i, it in enumerate(items):
            v, m = it[name]
            values[i, : v.shape[0]], mask[i, : m.shape[0]] = v, m
        out[name] = {"values": values, "mask": mask}
    return out


def as_features(batch_features: Mapping[str, Mapping[str, torch.Tensor]] | None) -> dict[str, Features]:
    """A collated batch's "features" entry -> {name: Features} for `ConditionEncoder(features=...)`."""
    return {n: Features(f["values"], f["mask"]) for n, f in (batch_features or {}).items()}
