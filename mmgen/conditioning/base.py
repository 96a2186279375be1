"""The conditioner contract: raw batch values -> (frozen, cacheable) features -> tokens for the DiT.

    batch {"caption": [...], "seconds_total": [...], ...}
        │  encode(batch)        frozen / deterministic, no parameters that train  -> Features
        ▼                       (values [B, L, F], mask [B, L]); save with save_features
    Features ──project──► tokens [B, L, dim], mask [B, L]      trainable (Linear, embedders)
        └── null(B) ────► the learned null embedding (classifier-free guidance)

A conditioner feeds the DiT in one of four ways, its `target`, chosen in its config:

    "context"  cross-attention tokens [B, L, dim] (variable L, masked)
    "prefix"   a fixed number G of tokens [B, G, dim] prepended to the sequence
    "global"   one vector per example [B, 1, dim]: the masked mean of its tokens, summed with the
               other global conditioners into Cond.pooled (AdaLN, beside the noise level)
    "aligned"  a stream [B, S_k, dim] at the conditioner's own `rate_hz` (frame s at s / rate_hz
               seconds), resampled to the DiT's aligned_rate_hz and summed into Cond.aligned
    "map"      a stream of pictures [B, S_k, C*H*W] (pose maps) at `rate_hz`, resampled the same
               way into Cond.maps; the DiT reads it per video patch (mmgen.dit.map_stream). A map
               has no null embedding of its own: absent or dropped frames have mask False and
               the DiT puts its learned per-patch null there

A class lists the ways it supports in `ways` (default: its default `target`, plus "global" for
token conditioners, plus "aligned" when the class defines `rate_hz`, e.g. as a property). Its null embedding is, for context,
one learned token followed by padding (mask False), so it can take the place of any length L;
for prefix, G learned tokens; for global, one vector; for aligned, one vector at every frame.
Absent frames of an aligned stream (mask False) and an all-masked global input also take the
null embedding, so "missing" and "dropped for CFG" are one learned state.

Each conditioner belongs to a guidance `group` (class default "text"; `ConditionEncoder(groups=)`
overrides it): dropping a group in classifier-free guidance sets all its conditioners to null.

Frozen encoders (T5, CLIP) are loaded lazily and kept out of `state_dict`: a checkpoint stores
only what trains (projections, null embeddings) plus the encoder's name in `config.yaml`, and
training from cached Features never loads the encoder at all.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mmgen.core.fileio import atomic_path
from mmgen.core.pretrained import PretrainedMixin

TARGETS = ("context", "prefix", "global", "aligned", "map")
TIME_AXIS_TARGETS = ("aligned", "map")  # ways whose features are frames on the time axis (cut per window)


@dataclass(frozen=True)
class Features:
    """Output of a conditioner's frozen part: values [B, L, F], mask [B, L] bool (True = real)."""

    values: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.mask.shape != self.values.shape[:2] or self.mask.dtype != torch.bool:
            raise ValueError(
                f"Features: values must be [B, L, F] and mask [B, L] bool, got {tuple(self.values.shape)} "
                f"and {tuple(self.mask.shape)} {self.mask.dtype}"
            )

    @property
    def batch_size(self) -> int:
        return int(self.values.shape[0])

    def to(self, device: torch.device | str) -> Features:
        return Features(self.values.to(device), self.mask.to(device))

    def index(self, idx: torch.Tensor | slice) -> Features:
        return Features(self.values[idx], self.mask[idx])


def save_features(path: str | os.PathLike, features: Mapping[str, Features]) -> Path:
    """Write {name: Features} to one safetensors file (atomically)."""
    tensors = {}
    for name, f in features.items():
        tensors[f"{name}.values"] = f.values.detach().contiguous().cpu()
        tensors[f"{name}.mask"] = f.mask.contiguous().cpu()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    return Path(path)


def load_features(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Features]:
    tensors = load_file(str(path), device=str(device))
    names = sorted({k.rsplit(".", 1)[0] for k in tensors})
    try:
        return {n: Features(tensors[f"{n}.values"], tensors[f"{n}.mask"]) for n in names}
    except KeyError as err:
        raise ValueError(f"{path}: not a features file (missing {err})") from None


def get_values(batch: Mapping[str, Any], key: str, owner: str) -> Any:
    if key not in batch:
        raise ValueError(f"{owner}: the batch has no {key!r} (has {sorted(batch)})")
    return batch[key]


def pad_ragged(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames of B clips, [S_i, F] each -> values [B, max S_i, F] (zero-padded), mask [B, max S_i]
    (True on each clip's own frames)."""
    length = max(v.shape[0] for v in items)
    values = torch.zeros(len(items), length, items[0].shape[-1])
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for i, v in enumerate(items):
        values[i, : v.shape[0]], mask[i, : v.shape[0]] = v, True
    return values, mask


def clips_and_rates(
    batch: Mapping[str, Any], key: str, fps_key: str, fps: float, owner: str, layout: str
) -> tuple[list[Any], list[float]]:
    """The clips of batch[key] (an array [B, ...] or a list of B clips) and each one's frame rate
    (batch[fps_key]: one number or one per clip; `fps` when the batch has none). `layout` names
    the batched shape, e.g. "[B, T, H, W, 3]"; its rank is checked."""
    values = get_values(batch, key, owner)
    if isinstance(values, (np.ndarray, torch.Tensor)):
        if values.ndim != layout.count(",") + 1:
            raise ValueError(f"{owner}: batch[{key!r}] must be {layout}, got shape {tuple(values.shape)}")
        clips = list(values)
    elif isinstance(values, Sequence) and not isinstance(values, str):
        clips = list(values)
    else:
        raise TypeError(f"{owner}: batch[{key!r}] must be {layout} or a list of clips")
    rates = torch.as_tensor(batch.get(fps_key, fps), dtype=torch.float64).reshape(-1).tolist()
    if len(rates) == 1:
        rates = rates * len(clips)
    if len(rates) != len(clips):
        raise ValueError(f"{owner}: batch[{fps_key!r}] has {len(rates)} rates for {len(clips)} clips")
    return clips, rates


def as_float_tensor(values: Any, what: str, device: torch.device) -> torch.Tensor:
    """Numbers (list / array / tensor) -> float32 tensor [B] on device; ValueError on NaN."""
    t = torch.as_tensor(values, dtype=torch.float32, device=device).reshape(-1)
    if not torch.isfinite(t).all():
        raise ValueError(f"{what}: holds NaN or infinite values")
    return t


class FrozenSlot:
    """Holds a frozen encoder outside the module tree (not in state_dict, shared by deepcopy/EMA)."""

    def __init__(self) -> None:
        self.value: Any = None

    def __deepcopy__(self, memo: dict) -> FrozenSlot:
        return self


class Conditioner(PretrainedMixin, nn.Module, metaclass=abc.ABCMeta):
    """Base class. Subclasses set `target` (their default way), `keys`, and implement `encode` and
    `project`; a time-series conditioner also sets `rate_hz` (Features frames per second).

    Args:
        dim: width of the produced tokens (the DiT's context_dim, prefix_dim, pooled_dim or aligned_dim).
        num_null_tokens: prefix null length (the number of prefix tokens); every other way has 1.
        target: "context", "prefix", "global" or "aligned" (None: the class's default `target`).
    """

    target: str = "context"  # class attribute: the default way; the instance attribute: the chosen one
    ways: ClassVar[tuple[str, ...] | None] = None  # the ways this class supports (None: see module doc)
    group: str = "text"  # guidance group (class default)
    rate_hz: float | None = None  # frames per second of the Features (time-series conditioners)

    def __init__(self, dim: int, num_null_tokens: int = 1, target: str | None = None) -> None:
        super().__init__()
        target = type(self).target if target is None else target
        if target not in self.supported_ways():
            raise ValueError(
                f"{type(self).__name__}: target must be one of {self.supported_ways()}, got {target!r}"
            )
        if dim <= 0 or num_null_tokens <= 0:
            raise ValueError(
                f"{type(self).__name__}: dim and num_null_tokens must be positive, got {dim}, {num_null_tokens}"
            )
        self.target = target
        self.dim = dim
        if target == "map":  # the DiT owns a map's null (per patch); a buffer keeps `device` working
            self.register_buffer("null_embedding", torch.zeros(1, dim), persistent=False)
        else:
            self.null_embedding = nn.Parameter(
                torch.randn(num_null_tokens if target == "prefix" else 1, dim) * 0.02
            )

    def absent(self, batch_size: int, frames: int) -> Features:
        """Features that say "no input here" (mask False everywhere, so `project` gives the
        learned null): a time-aligned stream whose source is not given for this example. Needs
        `feature_width`, the width `encode` produces."""
        width = getattr(self, "feature_width", None)
        if width is None:
            raise ValueError(f"{type(self).__name__}: cannot be absent (no feature_width known)")
        values = torch.zeros(batch_size, frames, int(width), device=self.device)
        return Features(values, torch.zeros(batch_size, frames, dtype=torch.bool, device=self.device))

    def frozen_parts(self) -> dict[str, PretrainedMixin]:
        """Saved models this conditioner reads by path and keeps out of its state_dict, keyed by
        the path its config names (e.g. a frozen encoder). A pipeline saves them at that path,
        read against its `condition/` folder, so the folder carries everything it needs."""
        return {}

    @classmethod
    def supported_ways(cls) -> tuple[str, ...]:
        if cls.ways is not None:
            return tuple(cls.ways)
        ways = [cls.target]
        if cls.target in ("context", "prefix"):
            ways.append("global")
        if cls.rate_hz is not None:  # a class-level rate or a `rate_hz` property
            ways.append("aligned")
        return tuple(dict.fromkeys(ways))

    def record_config(self, **values: Any) -> None:
        """Store values resolved during __init__ (e.g. a width read from a hub config) in the
        recorded config, so `from_pretrained` does not need to resolve them again."""
        config = self.__dict__.get("_init_config")
        if config is not None:
            config.update({k: v for k, v in values.items() if k in config})

    key: str  # the batch key of a one-input conditioner

    @property
    def keys(self) -> tuple[str, ...]:
        """Batch keys this conditioner reads (a one-input conditioner: its `key`)."""
        return (self.key,)

    @property
    def device(self) -> torch.device:
        return self.null_embedding.device

    @abc.abstractmethod
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        """The frozen part: raw batch values -> Features (no trainable parameters involved)."""

    @abc.abstractmethod
    def project(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """The trainable part: Features -> tokens [B, L, dim], mask [B, L]."""

    def to_tokens(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """`project`, then the way's shape: global -> the masked mean [B, 1, dim] (mask: any token real)."""
        tokens, mask = self.project(features)
        if self.target != "global":
            return tokens, mask
        weight = mask.to(tokens.dtype)[..., None]  # [B, L, 1]
        count = weight.sum(dim=1)  # [B, 1]
        pooled = (tokens * weight).sum(dim=1) / count.clamp_min(1.0)  # [B, dim]
        return pooled[:, None], (count > 0)  # [B, 1, dim], [B, 1]

    def forward(self, batch: Mapping[str, Any] | Features) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, L, dim], mask [B, L] (global: [B, 1, dim]) from raw values or cached Features."""
        features = batch if isinstance(batch, Features) else self.encode(batch)
        return self.to_tokens(features.to(self.device))

    def null(self, batch_size: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The null embedding for `batch_size` examples: [B, L, dim], mask [B, L].

        Context nulls are one learned token then padding up to `length` (default 1); prefix nulls
        are the learned tokens themselves (their length is fixed); global nulls one vector; aligned
        nulls the learned vector at each of `length` frames (default 1).
        """
        g = self.null_embedding.shape[0]
        if self.target in ("prefix", "global"):
            if length not in (None, g):
                raise ValueError(
                    f"{type(self).__name__}: {self.target} null has {g} tokens, asked for {length}"
                )
            tokens = self.null_embedding.unsqueeze(0).expand(batch_size, -1, -1)  # [B, G, dim]
            return tokens, torch.ones(batch_size, g, dtype=torch.bool, device=self.device)
        length = length or g
        if length < g:
            raise ValueError(f"{type(self).__name__}: null needs length >= {g}, got {length}")
        if self.target == "aligned":
            tokens = self.null_embedding.expand(length, -1)  # [L, dim]
            mask = torch.ones(length, dtype=torch.bool, device=self.device)
        elif self.target == "map":  # zeros, absent: the DiT's own null takes these frames
            tokens = self.null_embedding.expand(length, -1)  # [L, dim]
            mask = torch.zeros(length, dtype=torch.bool, device=self.device)
        else:
            tokens = torch.cat(
                [self.null_embedding, self.null_embedding.new_zeros(length - g, self.dim)]
            )  # [L, dim]
            mask = torch.arange(length, device=self.device) < g  # [L]
        return tokens.unsqueeze(0).expand(batch_size, -1, -1), mask.unsqueeze(0).expand(batch_size, -1)

    def apply_drop(
        self, tokens: torch.Tensor, mask: torch.Tensor, drop: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace examples where drop [B] is True by the null embedding (same shapes)."""
        null_tokens, null_mask = self.null(tokens.shape[0], tokens.shape[1])
        drop = drop.to(device=tokens.device, dtype=torch.bool)
        tokens = torch.where(drop[:, None, None], null_tokens.to(tokens.dtype), tokens)
        mask = torch.where(drop[:, None], null_mask, mask)
        return tokens, mask

    def fill_missing(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Global / aligned: tokens [B, L, dim] with the null embedding where mask [B, L] is False."""
        null = self.null_embedding[0].to(tokens.dtype)  # [dim]
        return torch.where(mask[..., None], tokens, null)
