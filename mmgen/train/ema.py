"""Exponential moving average of a model's weights, kept as a sub-module of the training system.

Keeping the EMA copy inside the LightningModule (instead of in a callback) means it is saved in
every checkpoint, restored on resume, moved with `.to(device)`, and sharded by FSDP like the
model itself.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Shadow copy `ema` of `model`: ema ← decay·ema + (1 − decay)·model after each optimizer step.

    With `warmup=True` the effective decay is min(decay, (1 + n) / (10 + n)) after n updates, so
    the average is not dominated by the random init early in training (as in the timm/DiT recipes).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> torch.Tensor:
        n = self.num_updates.to(torch.float32)
        if not self.warmup:
            return torch.full_like(n, self.decay)
        return torch.clamp((1.0 + n) / (10.0 + n), max=self.decay)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step from `model`'s current weights (floating tensors; integer buffers are copied)."""
        weight = 1.0 - self.current_decay()  # a tensor: no host sync
        ema_p = [p for p in self.ema.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        if len(ema_p) != len(src_p):
            raise ValueError("EMA.update: the model's parameters do not match the EMA copy")
        torch._foreach_lerp_(ema_p, src_p, weight.to(ema_p[0].device) if ema_p else weight)
        for b_ema, b in zip(self.ema.buffers(), model.buffers()):
            if b.dtype.is_floating_point:
                b_ema.lerp_(b, weight.to(b_ema.device))
            else:
                b_ema.copy_(b)
        self.num_updates += 1

    def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.ema(*args, **kwargs)
