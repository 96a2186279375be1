"""The conditioner contract: raw batch values -> (frozen, cacheable) features -> tokens for the DiT.

    batch {"caption": [...], "seconds_total": [...], ...}
        │  encode(batch)        frozen / deterministic, no parameters that train  -> Features
        ▼                       (values [B, L, F], mask [B, L]); save with save_features
    Features ──project──► tokens [B, L, dim], mask [B, L]      trainable (Linear, embedders)
        └── null(B) ────► the learned null embedding (classifier-free guidance)

A conditioner targets either the cross-attention `context` (variable L, masked) or the `prefix`
(a fixed number of tokens G prepended to the sequence). Its null embedding is, for context, one
learned token followed by padding (mask False), so it can take the place of any length L; for
prefix, G learned tokens.

Frozen encoders (T5, CLIP) are loaded lazily and kept out of `state_dict`: a checkpoint stores
only what trains (projections, null embeddings) plus the encoder's name in `config.yaml`, and
training from cached Features never loads the encoder at all.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mmgen.core.fileio import atomic_path
from mmgen.core.pretrained import PretrainedMixin

TARGETS = ("context", "prefix")


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
    """Base class. Subclasses set `target`, `keys`, and implement `encode` and `project`.

    Args:
        dim: width of the produced tokens (the DiT's context_dim or prefix_dim).
        num_null_tokens: null embedding length (context: 1; prefix: the number of prefix tokens).
    """

    target: ClassVar[str] = "context"

    def __init__(self, dim: int, num_null_tokens: int = 1) -> None:
        super().__init__()
        if dim <= 0 or num_null_tokens <= 0:
            raise ValueError(
                f"{type(self).__name__}: dim and num_null_tokens must be positive, got {dim}, {num_null_tokens}"
            )
        self.dim = dim
        self.null_embedding = nn.Parameter(torch.randn(num_null_tokens, dim) * 0.02)

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

    def forward(self, batch: Mapping[str, Any] | Features) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, L, dim], mask [B, L] from raw values or from cached Features."""
        features = batch if isinstance(batch, Features) else self.encode(batch)
        return self.project(features.to(self.device))

    def null(self, batch_size: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The null embedding for `batch_size` examples: [B, L, dim], mask [B, L].

        Context nulls are one learned token then padding up to `length` (default 1); prefix nulls
        are the learned tokens themselves (their length is fixed).
        """
        g = self.null_embedding.shape[0]
        if self.target == "prefix":
            if length not in (None, g):
                raise ValueError(f"{type(self).__name__}: prefix null has {g} tokens, asked for {length}")
            tokens = self.null_embedding.unsqueeze(0).expand(batch_size, -1, -1)  # [B, G, dim]
            return tokens, torch.ones(batch_size, g, dtype=torch.bool, device=self.device)
        length = length or g
        if length < g:
            raise ValueError(f"{type(self).__name__}: context null needs length >= {g}, got {length}")
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
