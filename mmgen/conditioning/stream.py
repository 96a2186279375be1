"""Given feature streams: features someone already computed on the time axis, passed to the DiT.

    batch[key]           [B, S, F] (tensor / array) or a list of B arrays [S_i, F]   (any float values)
    batch[key + "_mask"] [B, S] bool, optional (True = present; a list input pads with False)
        │ encode: checks only, no weights                                          -> Features [B, S, F]
        ▼
    Linear(F, dim) ──► [B, S, dim] at rate_hz (frame s at s / rate_hz seconds)

With target="aligned" (the default) the stream is resampled to the DiT's aligned_rate_hz and
added to the tokens at the same seconds: a beat grid, an onset envelope, pose keypoints, or sync
features from your own encoder. "context" gives one cross-attention token per frame (no time
position), "global" their masked mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mmgen.conditioning.base import Conditioner, Features, get_values, pad_ragged


class FeatureStreamConditioner(Conditioner):
    """A stream of given feature frames at a known rate.

    Args:
        dim: output width (the DiT's aligned_dim, context_dim or pooled_dim, by target).
        feature_dim: F, the width of the given features.
        rate_hz: frames per second of the given features.
        key: batch key of the features.
        target: "aligned" (default), "context" or "global".
    """

    target = "aligned"
    ways = ("aligned", "context", "global")

    def __init__(
        self, dim: int, feature_dim: int, rate_hz: float, key: str = "stream", target: str | None = None
    ) -> None:
        super().__init__(dim, target=target)
        if feature_dim <= 0:
            raise ValueError(f"FeatureStreamConditioner: feature_dim must be positive, got {feature_dim}")
        if not (isinstance(rate_hz, (int, float)) and 0 < rate_hz < float("inf")):
            raise ValueError(f"FeatureStreamConditioner: rate_hz must be a positive number, got {rate_hz!r}")
        self.feature_dim, self._rate_hz, self.key = feature_dim, float(rate_hz), key
        self.proj = nn.Linear(feature_dim, dim)

    @property
    def rate_hz(self) -> float:  # type: ignore[override]
        return self._rate_hz

    @torch.no_grad()
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        device = device or self.device
        owner = f"FeatureStreamConditioner[{self.key!r}]"
        raw = get_values(batch, self.key, type(self).__name__)
        if isinstance(raw, Sequence) and not isinstance(raw, str) and len(raw) and np.ndim(raw[0]) == 2:
            items = [torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in raw]  # ragged list
            for i, v in enumerate(items):
                if v.ndim != 2 or v.shape[-1] != items[0].shape[-1]:
                    raise ValueError(f"{owner}: item {i} must be [S, F] like item 0, got {tuple(v.shape)}")
            values, mask = pad_ragged(items)
        else:
            values = torch.as_tensor(raw if isinstance(raw, torch.Tensor) else np.asarray(raw)).float()
            mask = torch.ones(values.shape[:2], dtype=torch.bool) if values.ndim == 3 else None
        if values.ndim != 3 or values.shape[-1] != self.feature_dim or values.shape[1] < 1:
            raise ValueError(
                f"{owner}: features must be [B, S >= 1, F = {self.feature_dim}], got {tuple(values.shape)}"
            )
        given = batch.get(self.key + "_mask")
        if given is not None:
            given = torch.as_tensor(given if isinstance(given, torch.Tensor) else np.asarray(given))
            if given.dtype != torch.bool or given.shape != values.shape[:2]:
                raise ValueError(
                    f"{owner}: batch[{self.key + '_mask'!r}] must be bool {tuple(values.shape[:2])}, "
                    f"got {given.dtype} {tuple(given.shape)}"
                )
            mask = mask & given.to(mask.device)  # type: ignore[operator]
        if not torch.isfinite(values).all():
            raise ValueError(f"{owner}: features hold NaN or infinite values")
        return Features(values.to(device), mask.to(device))  # type: ignore[union-attr]

    def project(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(features.values), features.mask  # [B, S, dim]
