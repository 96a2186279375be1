"""`Cond`: the non-latent conditions handed to the DiT next to latents and noise levels.

    context       [B, L, context_dim]  cross-attention tokens (T5 / CLIP text, CLIP image features)
    context_mask  [B, L] bool          True where a context token is real (False = padding)
    prefix        [B, G, prefix_dim]   tokens prepended to the sequence (timing, quality)

The samplers batch conditional and unconditional branches with `Cond.cat`; the condition
encoders (`mmgen.conditioning`) produce it; `dit` consumes it. Nothing here imports mmgen.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass(frozen=True)
class Cond:
    context: torch.Tensor | None = None
    context_mask: torch.Tensor | None = None
    prefix: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.context is not None and self.context.ndim != 3:
            raise ValueError(f"Cond.context must be [B, L, D], got shape {tuple(self.context.shape)}")
        if self.context_mask is not None:
            if self.context is None:
                raise ValueError("Cond.context_mask given without Cond.context")
            if self.context_mask.shape != self.context.shape[:2]:
                raise ValueError(
                    f"Cond.context_mask must be [B, L] = {tuple(self.context.shape[:2])}, "
                    f"got {tuple(self.context_mask.shape)}"
                )
        if self.prefix is not None and self.prefix.ndim != 3:
            raise ValueError(f"Cond.prefix must be [B, G, D], got shape {tuple(self.prefix.shape)}")
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
        return replace(self, **{f.name: fn(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None})

    @staticmethod
    def cat(conds: list[Cond]) -> Cond:
        """Concatenate along the batch dim; every Cond must carry the same fields and context length."""
        present = [{f.name for f in fields(c) if getattr(c, f.name) is not None} for c in conds]
        if any(p != present[0] for p in present):
            raise ValueError(f"cannot batch Conds with different fields: {present}")
        return Cond(**{name: torch.cat([getattr(c, name) for c in conds]) for name in present[0]})
