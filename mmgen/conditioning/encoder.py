"""ConditionEncoder: a batch's raw conditions -> one `Cond` for the DiT.

    batch {"caption": [...], "seconds_start": [...], "seconds_total": [...], "melody": wave}
      │ encode()  per conditioner, frozen                      -> {name: Features}  (cache these)
      │ forward() per conditioner: project, CFG drop -> null
      ▼
    Cond(context = cat_L[context conditioners]   [B, ΣL, context_dim], context_mask [B, ΣL],
         prefix  = cat_G[prefix conditioners]    [B, ΣG, prefix_dim])

Conditioners keep their insertion order. `drop` (training-time CFG dropout, or the unconditional
branch at sampling time) swaps an example's tokens for the learned null embedding, per
conditioner or all at once; the shapes do not change, so a conditional and an unconditional
Cond batch together with `Cond.cat`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mmgen.conditioning.base import Conditioner, Features
from mmgen.core.cond import Cond
from mmgen.core.pretrained import PretrainedMixin

Drop = torch.Tensor | Mapping[str, torch.Tensor] | None


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
    return Cond(context=context, context_mask=mask, prefix=cond.prefix)


class ConditionEncoder(PretrainedMixin, nn.Module):
    """Turns raw conditions into a `Cond`.

    Args:
        conditioners: {name: Conditioner}; context conditioners must share `context_dim`,
            prefix conditioners `prefix_dim`.
        context_dim, prefix_dim: the DiT's widths (checked against the conditioners).

    Save / load with `save_pretrained` / `from_pretrained`: config.yaml records each
    conditioner's own config (frozen encoders by name), model.safetensors what trains.
    """

    def __init__(
        self,
        conditioners: Mapping[str, Conditioner],
        context_dim: int | None = None,
        prefix_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not conditioners:
            raise ValueError("ConditionEncoder: give at least one conditioner")
        for name, c in conditioners.items():
            if not isinstance(c, Conditioner):
                raise TypeError(f"ConditionEncoder: {name!r} is a {type(c).__name__}, not a Conditioner")
            want = context_dim if c.target == "context" else prefix_dim
            if want is None:
                raise ValueError(
                    f"ConditionEncoder: {name!r} produces {c.target} tokens but {c.target}_dim is None"
                )
            if c.dim != want:
                raise ValueError(
                    f"ConditionEncoder: {name!r} has dim {c.dim}, the {c.target} width is {want}"
                )
        self.conditioners = nn.ModuleDict(dict(conditioners))
        self.context_dim, self.prefix_dim = context_dim, prefix_dim

    def _by_target(self, target: str) -> list[str]:
        return [n for n, c in self.conditioners.items() if c.target == target]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> dict[str, Features]:
        """Frozen features of every conditioner (save them with `save_features` to skip the encoders)."""
        return {name: c.encode(batch, device or self.device) for name, c in self.conditioners.items()}

    def forward(
        self,
        batch: Mapping[str, Any] | None = None,
        features: Mapping[str, Features] | None = None,
        drop: Drop = None,
    ) -> Cond:
        """Cond from raw `batch` values and/or cached `features` (features win per conditioner).

        Args:
            drop: bool [B] for every conditioner, or {name: bool [B]}: True -> null embedding.
        """
        features = dict(features or {})
        parts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, c in self.conditioners.items():
            if name not in features:
                if batch is None:
                    raise ValueError(f"ConditionEncoder: no features for {name!r} and no raw batch to encode")
                features[name] = c.encode(batch, self.device)
            tokens, mask = c.project(features[name].to(self.device))
            d = drop.get(name) if isinstance(drop, Mapping) else drop
            if d is not None:
                if d.shape != (tokens.shape[0],):
                    raise ValueError(
                        f"ConditionEncoder: drop for {name!r} must be [B] = [{tokens.shape[0]}], got {tuple(d.shape)}"
                    )
                tokens, mask = c.apply_drop(tokens, mask, d)
            parts[name] = (tokens, mask)
        return self._assemble(parts)

    def _assemble(self, parts: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> Cond:
        sizes = {name: t.shape[0] for name, (t, _) in parts.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"ConditionEncoder: conditions disagree on the batch size: {sizes}")
        ctx, pre = self._by_target("context"), self._by_target("prefix")
        context = torch.cat([parts[n][0] for n in ctx], dim=1) if ctx else None  # [B, ΣL, context_dim]
        mask = torch.cat([parts[n][1] for n in ctx], dim=1) if ctx else None  # [B, ΣL]
        prefix = torch.cat([parts[n][0] for n in pre], dim=1) if pre else None  # [B, ΣG, prefix_dim]
        return Cond(context=context, context_mask=mask, prefix=prefix)

    def null_cond(self, batch_size: int, context_length: int | None = None) -> Cond:
        """The unconditional Cond (every conditioner at its null embedding).

        `context_length` pads the context so it batches with a conditional Cond of that length
        (padding is masked, so it does not change the attention result).
        """
        parts = {name: c.null(batch_size) for name, c in self.conditioners.items()}
        cond = self._assemble(parts)
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
            },
        }
