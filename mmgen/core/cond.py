"""`Cond`: the non-latent conditions handed to the DiT next to latents and noise levels.

    context       [B, L, context_dim]  cross-attention tokens (T5 / CLIP text, CLIP image features)
    context_mask  [B, L] bool          True where a context token is real (False = padding)
    prefix        [B, G, prefix_dim]   tokens prepended to the sequence (timing, quality)
    pooled        [B, pooled_dim]      one global vector per example, added to the noise-level
                                       embedding that drives AdaLN (DiT's class-label path)
    aligned       [B, S, aligned_dim]  a time-aligned stream at the DiT's aligned_rate_hz (frame s
                                       at s / rate seconds), added to the tokens at the same time
    aligned_mask  [B, S] bool          True where a stream frame is present
    maps          [B, S, C*H*W]        a time-aligned stream of pictures (pose maps) at the same rate
                                       as `aligned`, read per video patch (mmgen.dit.map_stream)
    maps_mask     [B, S] bool          True where a map frame is present

The samplers batch conditional and unconditional branches with `Cond.cat`; the condition
encoders (`mmgen.conditioning`) produce it; `dit` consumes it. `GroupedCond` holds the Cond of
every combination of dropped condition groups, for guidance per group. Nothing here imports mmgen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace

import torch

_RANKS = {
    "context": 3, "context_mask": 2, "prefix": 3, "pooled": 2, "aligned": 3, "aligned_mask": 2, "maps": 3, "maps_mask": 2
}
_LAYOUTS = {
    "context": "[B, L, D]", "prefix": "[B, G, D]", "pooled": "[B, D]", "aligned": "[B, S, D]", "maps": "[B, S, C*H*W]"
}
_STREAMS = (("aligned", "aligned_mask"), ("maps", "maps_mask"))  # the fields on the time axis


@dataclass(frozen=True)
class Cond:
    context: torch.Tensor | None = None
    context_mask: torch.Tensor | None = None
    prefix: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    aligned: torch.Tensor | None = None
    aligned_mask: torch.Tensor | None = None
    maps: torch.Tensor | None = None
    maps_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name, layout in _LAYOUTS.items():
            value = getattr(self, name)
            if value is not None and value.ndim != _RANKS[name]:
                raise ValueError(f"Cond.{name} must be {layout}, got shape {tuple(value.shape)}")
        for of, mask_name in (("context", "context_mask"), *_STREAMS):
            mask, value = getattr(self, mask_name), getattr(self, of)
            if mask is None:
                continue
            if value is None:
                raise ValueError(f"Cond.{mask_name} given without Cond.{of}")
            if mask.shape != value.shape[:2]:
                raise ValueError(
                    f"Cond.{mask_name} must be [B, {'L' if of == 'context' else 'S'}] = "
                    f"{tuple(value.shape[:2])}, got {tuple(mask.shape)}"
                )
        for _, mask_name in _STREAMS:
            mask = getattr(self, mask_name)
            if mask is not None and mask.dtype != torch.bool:
                raise ValueError(f"Cond.{mask_name} must be bool (True = present), got {mask.dtype}")
        sizes = {t.shape[0] for t in self._tensors()}
        if len(sizes) > 1:
            raise ValueError(f"Cond tensors disagree on the batch size: {sorted(sizes)}")

    def _tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None]

    @property
    def batch_size(self) -> int | None:
        tensors = self._tensors()
        return tensors[0].shape[0] if tensors else None

    def map(self, fn) -> Cond:  # type: ignore[no-untyped-def]
        """Apply `fn` to every tensor (e.g. `.to(device)`, indexing, `repeat_interleave`)."""
        return replace(
            self,
            **{f.name: fn(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None},
        )

    def crop_time(self, start_seconds: float, end_seconds: float, rate_hz: float) -> Cond:
        """The time-aligned streams (`aligned` and `maps`, at `rate_hz`, the DiT's aligned_rate_hz)
        cut to the window [start_seconds, end_seconds), so their frame 0 sits at the window's start
        (long-form windows); frames past a stream's end come back absent (mask False)."""
        if self.aligned is None and self.maps is None:
            return self
        if not (0 <= start_seconds < end_seconds) or not rate_hz > 0:
            raise ValueError(
                f"Cond.crop_time: need 0 <= start < end and rate > 0, got {start_seconds}, {end_seconds}, {rate_hz}"
            )
        a = round(start_seconds * rate_hz)
        e = max(a + 1, math.ceil(end_seconds * rate_hz - 1e-9))
        if abs(a - start_seconds * rate_hz) > 1e-6:
            raise ValueError(
                f"Cond.crop_time: window start {start_seconds} s is not on the stream's {rate_hz} Hz grid"
            )
        cut: dict[str, torch.Tensor | None] = {}
        for name, mask_name in _STREAMS:
            values, mask = getattr(self, name), getattr(self, mask_name)
            if values is not None:
                cut[name], cut[mask_name] = _crop_stream(values, mask, a, e)
        return replace(self, **cut)

    @staticmethod
    def cat(conds: list[Cond]) -> Cond:
        """Concatenate along the batch dim; every Cond must carry the same fields and lengths."""
        present = [{f.name for f in fields(c) if getattr(c, f.name) is not None} for c in conds]
        if any(p != present[0] for p in present):
            raise ValueError(f"cannot batch Conds with different fields: {present}")
        for name in sorted(present[0]):
            shapes = {tuple(getattr(c, name).shape[1:]) for c in conds}
            if len(shapes) > 1:
                raise ValueError(f"cannot batch Conds whose {name} shapes differ: {sorted(shapes)}")
        return Cond(**{name: torch.cat([getattr(c, name) for c in conds]) for name in present[0]})


def _crop_stream(
    values: torch.Tensor, mask: torch.Tensor | None, a: int, e: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Frames [a, e) of a stream [B, S, F] and its mask; frames past S are padded as absent."""
    values, mask = values[:, a:e], (mask[:, a:e] if mask is not None else None)
    if values.shape[1] < e - a:
        pad, b = e - a - values.shape[1], values.shape[0]
        if mask is None:
            mask = torch.ones(b, values.shape[1], dtype=torch.bool, device=values.device)
        values = torch.cat([values, values.new_zeros(b, pad, values.shape[2])], dim=1)
        mask = torch.cat([mask, mask.new_zeros(b, pad)], dim=1)
    return values, mask


class GroupedCond:
    """The Cond for every set of dropped condition groups (guidance per group).

    `make(dropped)` returns the Cond with the conditions of the groups in `dropped` at their null
    embeddings; `groups` names the groups it knows. Results are cached per set, so a sampler can
    ask for them at every step. `ConditionEncoder.grouped` builds one from its conditioners;
    `GroupedCond.pair(cond, uncond)` is the classic one-group form (group "text").

    Args:
        make: frozenset of dropped group names (a subset of `groups`) -> Cond.
        groups: the condition group names.
    """

    def __init__(self, make: Callable[[frozenset[str]], Cond], groups: Iterable[str]) -> None:
        self._make = make
        self.groups = frozenset(groups)
        self._cache: dict[frozenset[str], Cond] = {}

    @classmethod
    def pair(cls, cond: Cond, uncond: Cond, group: str = "text") -> GroupedCond:
        return cls(lambda dropped: uncond if group in dropped else cond, (group,))

    def crop_time(self, start_seconds: float, end_seconds: float, rate_hz: float) -> GroupedCond:
        """Every Cond's aligned stream cut to [start, end) seconds (`Cond.crop_time`; long form)."""
        return GroupedCond(lambda dropped: self(dropped).crop_time(start_seconds, end_seconds, rate_hz), self.groups)

    def __call__(self, dropped: Iterable[str] = ()) -> Cond:
        key = frozenset(dropped)
        unknown = sorted(key - self.groups)
        if unknown:
            raise ValueError(f"GroupedCond: unknown condition groups {unknown}; it has {sorted(self.groups)}")
        if key not in self._cache:
            self._cache[key] = self._make(key)
        return self._cache[key]

    @property
    def batch_size(self) -> int | None:
        return self().batch_size

    def map(self, fn) -> GroupedCond:  # type: ignore[no-untyped-def]
        """The same groups with `fn` applied to every tensor of every Cond."""
        return GroupedCond(lambda dropped: self(dropped).map(fn), self.groups)
