"""ConditionEncoder: a batch's raw conditions -> one `Cond` for the DiT.

    batch {"caption": [...], "seconds_start": [...], "seconds_total": [...], "melody": wave}
      │ encode()  per conditioner, frozen                      -> {name: Features}  (cache these)
      │ forward() per conditioner: project, CFG drop -> null
      ▼
    Cond(context = cat_L[context conditioners]   [B, ΣL, context_dim], context_mask [B, ΣL],
         prefix  = cat_G[prefix conditioners]    [B, ΣG, prefix_dim],
         pooled  = Σ[global conditioners]        [B, pooled_dim],
         aligned = Σ[aligned conditioners, each resampled from its rate_hz to aligned_rate_hz]
                                                 [B, S, aligned_dim],
         maps    = the map conditioner (at most one), resampled the same way
                                                 [B, S, map_dim], maps_mask [B, S])

Conditioners keep their insertion order. `drop` (training-time CFG dropout, or the unconditional
branch at sampling time) swaps an example's tokens for the learned null embedding, per
conditioner, per guidance group or all at once; the shapes do not change, so a conditional and
an unconditional Cond batch together with `Cond.cat`. Aligned streams are resampled with
`mmgen.dit.streams.resample_stream`, the DiT's own rule; frames a stream does not cover take that
conditioner's null embedding, so `aligned_mask` is never needed here. `grouped` gives the Cond of
every combination of dropped groups for guidance per condition group.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmgen.conditioning.base import TIME_AXIS_TARGETS, Conditioner, Features
from mmgen.core.cond import Cond, GroupedCond
from mmgen.core.pretrained import PretrainedMixin
from mmgen.dit.streams import resample_stream, stream_frames

Drop = torch.Tensor | Mapping[str, torch.Tensor] | None
Parts = dict[str, tuple[torch.Tensor, torch.Tensor]]
_WIDTH_OF = {
    "context": "context_dim",
    "prefix": "prefix_dim",
    "global": "pooled_dim",
    "aligned": "aligned_dim",
    "map": "map_dim",
}


def pad_context(cond: Cond, length: int) -> Cond:
    """Right-pad Cond.context (mask False) to `length` tokens so Conds of different L can be batched."""
    if cond.context is None:
        raise ValueError("pad_context: the Cond has no context")
    b, n, d = cond.context.shape
    if n > length:
        raise ValueError(f"pad_context: context has {n} tokens, more than {length}")
    mask = (
        cond.context_mask
        if cond.context_mask is not None
        else torch.ones(b, n, dtype=torch.bool, device=cond.context.device)
    )
    context = torch.cat([cond.context, cond.context.new_zeros(b, length - n, d)], dim=1)  # [B, length, D]
    mask = torch.cat([mask, mask.new_zeros(b, length - n)], dim=1)
    return Cond(
        context=context,
        context_mask=mask,
        prefix=cond.prefix,
        pooled=cond.pooled,
        aligned=cond.aligned,
        aligned_mask=cond.aligned_mask,
    )


class ConditionEncoder(PretrainedMixin, nn.Module):
    """Turns raw conditions into a `Cond`.

    Args:
        conditioners: {name: Conditioner}; each one's `dim` must equal the DiT width of its target.
        context_dim, prefix_dim, pooled_dim, aligned_dim: the DiT's widths of Cond.context,
            .prefix, .pooled and .aligned (checked against the conditioners).
        aligned_rate_hz: the DiT's aligned_rate_hz (needed with aligned and map conditioners).
        groups: {conditioner name: guidance group}, overriding the conditioners' class default
            (e.g. {"sync": "video"}: dropping "video" in guidance also nulls the sync stream).
        map_dim: the width of Cond.maps (the DiT's map_channels x map_size^2) for a map conditioner.

    Save / load with `save_pretrained` / `from_pretrained`: config.yaml records each
    conditioner's own config (frozen encoders by name), model.safetensors what trains.
    """

    def __init__(
        self,
        conditioners: Mapping[str, Conditioner],
        context_dim: int | None = None,
        prefix_dim: int | None = None,
        pooled_dim: int | None = None,
        aligned_dim: int | None = None,
        aligned_rate_hz: float | None = None,
        groups: Mapping[str, str] | None = None,
        map_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not conditioners:
            raise ValueError("ConditionEncoder: give at least one conditioner")
        widths = {
            "context": context_dim, "prefix": prefix_dim, "global": pooled_dim, "aligned": aligned_dim, "map": map_dim
        }
        maps = [n for n, c in conditioners.items() if isinstance(c, Conditioner) and c.target == "map"]
        if len(maps) > 1:
            raise ValueError(f"ConditionEncoder: at most one map conditioner, got {maps}")
        for name, c in conditioners.items():
            if not isinstance(c, Conditioner):
                raise TypeError(f"ConditionEncoder: {name!r} is a {type(c).__name__}, not a Conditioner")
            want = widths[c.target]
            if want is None:
                raise ValueError(
                    f"ConditionEncoder: {name!r} produces {c.target} tokens but {_WIDTH_OF[c.target]} is None"
                )
            if c.dim != want:
                raise ValueError(
                    f"ConditionEncoder: {name!r} has dim {c.dim}, the {c.target} width is {want} ({_WIDTH_OF[c.target]})"
                )
            if c.target in TIME_AXIS_TARGETS:
                if not (isinstance(c.rate_hz, (int, float)) and c.rate_hz > 0):
                    raise ValueError(
                        f"ConditionEncoder: {c.target} conditioner {name!r} has no positive rate_hz"
                    )
                if not (isinstance(aligned_rate_hz, (int, float)) and aligned_rate_hz > 0):
                    raise ValueError(
                        f"ConditionEncoder: {name!r} is {c.target}; give aligned_rate_hz (the DiT's), got {aligned_rate_hz!r}"
                    )
        unknown = sorted(set(groups or {}) - set(conditioners))
        if unknown:
            raise ValueError(f"ConditionEncoder: groups names unknown conditioners {unknown}")
        self.conditioners = nn.ModuleDict(dict(conditioners))
        self.context_dim, self.prefix_dim = context_dim, prefix_dim
        self.pooled_dim, self.aligned_dim, self.aligned_rate_hz = pooled_dim, aligned_dim, aligned_rate_hz
        self.map_dim = map_dim
        self.group_of = {n: str((groups or {}).get(n, c.group)) for n, c in conditioners.items()}

    def _by_target(self, target: str) -> list[str]:
        return [n for n, c in self.conditioners.items() if c.target == target]

    @property
    def device(self) -> torch.device:
        return next(iter(self.conditioners.values())).device  # a map conditioner holds no parameters

    @property
    def groups(self) -> frozenset[str]:
        """The guidance groups of the conditioners."""
        return frozenset(self.group_of.values())

    @torch.no_grad()
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> dict[str, Features]:
        """Frozen features of every conditioner (save them with `save_features` to skip the encoders)."""
        return {name: c.encode(batch, device or self.device) for name, c in self.conditioners.items()}

    def forward(
        self,
        batch: Mapping[str, Any] | None = None,
        features: Mapping[str, Features] | None = None,
        drop: Drop = None,
        aligned_frames: int | None = None,
    ) -> Cond:
        """Cond from raw `batch` values and/or cached `features` (features win per conditioner).

        Args:
            drop: bool [B] for every conditioner, or {conditioner or group name: bool [B]}:
                True -> null embedding.
            aligned_frames: length S of Cond.aligned (default: enough to cover the longest stream).
        """
        parts = self._project(batch, features)
        drops = self._drops(drop)
        for name, d in drops.items():
            tokens, mask = parts[name]
            if d.shape != (tokens.shape[0],):
                raise ValueError(
                    f"ConditionEncoder: drop for {name!r} must be [B] = [{tokens.shape[0]}], got {tuple(d.shape)}"
                )
            parts[name] = self.conditioners[name].apply_drop(tokens, mask, d)
        return self._assemble(parts, aligned_frames)

    def grouped(
        self,
        batch: Mapping[str, Any] | None = None,
        features: Mapping[str, Features] | None = None,
        aligned_frames: int | None = None,
        absent: Collection[str] = (),
        batch_size: int | None = None,
    ) -> GroupedCond:
        """The Cond of every set of dropped guidance groups (projections run once; for samplers).

        Conditioners named in `absent` (no input given, e.g. no melody reference) sit at their
        null embedding in every Cond; they need no batch values (`batch_size` sets B when every
        conditioner is absent)."""
        unknown = sorted(set(absent) - set(self.conditioners))
        if unknown:
            raise ValueError(f"ConditionEncoder: absent names unknown conditioners {unknown}")
        present = {n: c for n, c in self.conditioners.items() if n not in absent}
        parts = self._project(batch, features, present)
        size = next(iter(parts.values()))[0].shape[0] if parts else batch_size
        if size is None:
            raise ValueError("ConditionEncoder.grouped: every conditioner is absent; give batch_size")
        for name in absent:
            c = self.conditioners[name]
            parts[name] = c.null(size, 1 if c.target == "aligned" else None)
        parts = {n: parts[n] for n in self.conditioners}  # insertion order: the Cond's token order

        def make(dropped: frozenset[str]) -> Cond:
            out = dict(parts)
            for name, group in self.group_of.items():
                if group in dropped and name not in absent:
                    tokens, mask = out[name]
                    out[name] = self.conditioners[name].apply_drop(
                        tokens, mask, torch.ones(size, dtype=torch.bool, device=tokens.device)
                    )
            return self._assemble(out, aligned_frames)

        return GroupedCond(make, self.groups)

    def _project(
        self,
        batch: Mapping[str, Any] | None,
        features: Mapping[str, Features] | None,
        conditioners: Mapping[str, Conditioner] | None = None,
    ) -> Parts:
        features = dict(features or {})
        parts: Parts = {}
        for name, c in (self.conditioners if conditioners is None else conditioners).items():
            if name not in features:
                if batch is None:
                    raise ValueError(f"ConditionEncoder: no features for {name!r} and no raw batch to encode")
                features[name] = c.encode(batch, self.device)
            parts[name] = c.to_tokens(features[name].to(self.device))
        return parts

    def _drops(self, drop: Drop) -> dict[str, torch.Tensor]:
        """{conditioner: drop [B]} from one tensor or a mapping of conditioner / group names."""
        if drop is None:
            return {}
        if not isinstance(drop, Mapping):
            return {name: drop for name in self.conditioners}
        out: dict[str, torch.Tensor] = {}
        for key, d in drop.items():
            if key in self.conditioners:
                names = [key]
            elif key in self.groups:
                names = [n for n, g in self.group_of.items() if g == key]
            else:
                raise ValueError(
                    f"ConditionEncoder: drop names {key!r}, neither a conditioner {sorted(self.conditioners)} "
                    f"nor a group {sorted(self.groups)}"
                )
            for n in names:
                out[n] = d if n not in out else (out[n].bool() | d.to(out[n].device).bool())
        return out

    def _assemble(self, parts: Parts, aligned_frames: int | None = None) -> Cond:
        sizes = {name: t.shape[0] for name, (t, _) in parts.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"ConditionEncoder: conditions disagree on the batch size: {sizes}")
        ctx, pre = self._by_target("context"), self._by_target("prefix")
        context = torch.cat([parts[n][0] for n in ctx], dim=1) if ctx else None  # [B, ΣL, context_dim]
        mask = torch.cat([parts[n][1] for n in ctx], dim=1) if ctx else None  # [B, ΣL]
        prefix = torch.cat([parts[n][0] for n in pre], dim=1) if pre else None  # [B, ΣG, prefix_dim]
        pooled = None
        for n in self._by_target("global"):
            tokens, present = parts[n]  # [B, 1, dim], [B, 1]
            v = self.conditioners[n].fill_missing(tokens, present)[:, 0]  # [B, dim]
            pooled = v if pooled is None else pooled + v
        maps = maps_mask = None
        for n in self._by_target("map"):  # at most one
            c = self.conditioners[n]
            frames = self._stream_length(parts, aligned_frames)
            maps, maps_mask = resample_stream(*parts[n], c.rate_hz, float(self.aligned_rate_hz), frames)  # type: ignore[arg-type]
        return Cond(
            context=context,
            context_mask=mask,
            prefix=prefix,
            pooled=pooled,
            aligned=self._aligned(parts, aligned_frames),
            maps=maps,
            maps_mask=maps_mask,
        )

    def _stream_length(self, parts: Parts, frames: int | None) -> int:
        """S of Cond.aligned / Cond.maps: `frames`, or enough to cover the longest stream."""
        if frames is None:
            rate = float(self.aligned_rate_hz)  # type: ignore[arg-type]
            frames = max(
                stream_frames(parts[n][0].shape[1] / self.conditioners[n].rate_hz, rate)  # type: ignore[operator]
                for n in (*self._by_target("aligned"), *self._by_target("map"))
            )
        if frames < 1:
            raise ValueError(f"ConditionEncoder: aligned_frames must be >= 1, got {frames}")
        return frames

    def _aligned(self, parts: Parts, frames: int | None) -> torch.Tensor | None:
        """Σ over aligned conditioners of their streams at aligned_rate_hz: [B, S, aligned_dim]."""
        names = self._by_target("aligned")
        if not names:
            return None
        rate = float(self.aligned_rate_hz)  # type: ignore[arg-type]
        frames = self._stream_length(parts, frames)
        total = None
        for n in names:
            c = self.conditioners[n]
            tokens, mask = parts[n]  # [B, S_k, dim] at c.rate_hz
            values, present = resample_stream(tokens, mask, c.rate_hz, rate, frames)  # type: ignore[arg-type]
            values = c.fill_missing(values, present)  # [B, S, dim]
            total = values if total is None else total + values
        return total

    def null_cond(
        self, batch_size: int, context_length: int | None = None, aligned_frames: int | None = None
    ) -> Cond:
        """The unconditional Cond (every conditioner at its null embedding).

        `context_length` pads the context so it batches with a conditional Cond of that length
        (padding is masked, so it does not change the attention result); `aligned_frames` is the
        length S of the null stream (needed when there are aligned conditioners).
        """
        if (self._by_target("aligned") or self._by_target("map")) and aligned_frames is None:
            raise ValueError(
                "ConditionEncoder.null_cond: give aligned_frames (the stream length S) for the null stream"
            )
        parts = {
            name: c.null(batch_size, 1 if c.target == "aligned" else None)
            for name, c in self.conditioners.items()
        }
        cond = self._assemble(parts, aligned_frames)
        if context_length is not None and cond.context is not None:
            cond = pad_context(cond, context_length)
        return cond

    # -------------------------------------------------------------- save / load
    def config_yaml(self) -> dict[str, Any]:
        return {
            "class_path": f"{type(self).__module__}.{type(self).__qualname__}",
            "init_args": {
                "conditioners": {n: c.config_yaml() for n, c in self.conditioners.items()},
                "context_dim": self.context_dim,
                "prefix_dim": self.prefix_dim,
                "pooled_dim": self.pooled_dim,
                "aligned_dim": self.aligned_dim,
                "aligned_rate_hz": self.aligned_rate_hz,
                **({"map_dim": self.map_dim} if self.map_dim is not None else {}),
                "groups": dict(self.config.get("groups") or {}) or None,
            },
        }


def save_frozen_parts(condition: ConditionEncoder, root: Path, condition_dir: Path) -> None:
    """Save every conditioner's frozen parts (`Conditioner.frozen_parts`) at the path its config
    names, read against `condition_dir`; the paths must stay inside `root` (the pipeline folder
    being written), so the saved folder is complete on its own."""
    for name, conditioner in condition.conditioners.items():
        for named, part in conditioner.frozen_parts().items():
            target = Path(os.path.normpath(condition_dir.absolute() / named))
            if not target.is_relative_to(Path(os.path.normpath(root.absolute()))):
                raise ValueError(
                    f"conditioner {name!r} names {named!r}, outside the folder being saved ({root}); "
                    "name it relative to the condition folder, e.g. '../sync'"
                )
            part.save_pretrained(target)  # full precision: cached features' fingerprints stay valid
