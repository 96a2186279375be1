"""Training guards: a NaN / inf loss stops the run (naming the step) before it reaches a checkpoint
or an export, and an export folder is checked before the first step instead of after the last.

The loss is watched on its own device: `observe` keeps the first step whose loss was not finite
in a device tensor (no host sync per step); `check` reads it (one sync) every `every` steps,
before every checkpoint is written and before the export.
"""

from __future__ import annotations

import torch

from mmgen.core.errors import MmgenError
from mmgen.core.fileio import check_output_dir


class NonFiniteLoss(MmgenError):
    """The training loss became NaN or infinite."""


class LossWatch:
    """Remembers the first training step with a non-finite loss, without syncing every step."""

    def __init__(self, every: int = 50) -> None:
        if every < 1:
            raise ValueError(f"nan_check_every must be >= 1, got {every}")
        self.every = every
        self._first_bad: torch.Tensor | None = None  # [] int64 on the loss's device, -1 = none

    def observe(self, loss: torch.Tensor, step: int) -> None:
        loss = loss.detach()
        if self._first_bad is None or self._first_bad.device != loss.device:
            self._first_bad = torch.full((), -1, dtype=torch.int64, device=loss.device)
        bad = ~torch.isfinite(loss).all() & (self._first_bad < 0)
        self._first_bad = torch.where(bad, self._first_bad.new_full((), step), self._first_bad)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def check(self, what: str = "the training loss") -> None:
        """Raise NonFiniteLoss naming the first bad step, if there was one (one host sync)."""
        if self._first_bad is None:
            return
        step = int(self._first_bad)
        if step >= 0:
            raise NonFiniteLoss(
                f"{what} became NaN or infinite at step {step}; the run stopped before writing a checkpoint "
                "or export with it (lower the learning rate, check the data, or resume from the last checkpoint)"
            )

    def reset(self) -> None:
        self._first_bad = None


def check_export(path: str | None, kind: str, overwrite: bool, arg: str) -> None:
    """Refuse an export folder before training starts (the rules of `mmgen.core.fileio`)."""
    if path:
        hint = "set --model.init_args.overwrite_export=true to replace it"
        check_output_dir(path, kind, overwrite=overwrite, arg=arg, hint=hint)
