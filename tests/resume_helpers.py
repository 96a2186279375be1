"""A callback the resume tests put into a real `mmgen fit` process: SIGKILL at a chosen step and hook."""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L

HOOKS = ("on_train_batch_start", "on_before_optimizer_step", "on_train_batch_end")


class KillAt(L.Callback):
    """`kill -9` of the own process when `hook` runs at global step `step` (no cleanup of any kind)."""

    def __init__(self, step: int, hook: str = "on_train_batch_end") -> None:
        if hook not in HOOKS:
            raise ValueError(f"hook must be one of {HOOKS}")
        self.step, self.hook = step, hook

    def _maybe(self, trainer: L.Trainer, hook: str) -> None:
        if hook == self.hook and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._maybe(trainer, "on_train_batch_start")

    def on_before_optimizer_step(self, trainer: L.Trainer, *args: Any) -> None:
        self._maybe(trainer, "on_before_optimizer_step")

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._maybe(trainer, "on_train_batch_end")
