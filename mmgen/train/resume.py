"""Exact resume: a killed run continued from its checkpoint trains as if it had never stopped.

What a Lightning checkpoint already holds (weights, optimizer, LR schedule, EMA buffers, loop
counters) is not enough: the next batch and its noise come from state it leaves out. Two pieces
add it:

    ResumableLoader   a DataLoader Lightning sees as stateful (`state_dict` / `load_state_dict`):
                      the order of an epoch is a function of (seed, epoch) (`ResumableSampler`,
                      a DistributedSampler, so DDP keeps it), and the checkpoint records how many
                      batches of the epoch were consumed; a resumed run skips exactly those.
    RNGState          a Callback whose state is every random generator the training step draws
                      from: python `random`, numpy, torch CPU and CUDA (MoNL levels, diffusion
                      noise, dropout, random windows). Restored in `on_train_start`, before the
                      first batch of the resumed run is fetched.
    EpochBoundaryResume
                      a Callback that repairs Lightning's epoch counters when a run resumes from
                      a checkpoint written at the end of an epoch's last batch (see its docstring):
                      without it the next resume replays an earlier epoch's batch order.

Loaders get a private `generator`, so creating an iterator never draws from the global stream
(a resumed run creates one more than an uninterrupted one). Bit-for-bit on CPU with
`num_workers=0`; with workers the batch order is still exact, but draws made inside a worker
(random window offsets) come from the worker's own stream, which a restart re-seeds.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

log = logging.getLogger(__name__)


class ResumableSampler(DistributedSampler):
    """Shuffled indices of one rank, a function of (seed, epoch), that can start mid-epoch."""

    def __init__(self, dataset: Dataset, seed: int, drop_last: bool = False) -> None:
        world, rank = 1, 0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=drop_last)
        self.skip, self.skip_epoch = 0, -1  # samples of epoch `skip_epoch` consumed before a resume

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        if self.skip_epoch >= 0 and self.epoch != self.skip_epoch:
            log.warning("resume: the checkpoint's data position is in epoch %d, but the trainer starts epoch %d; "
                        "the batch order differs from an uninterrupted run", self.skip_epoch, self.epoch)
        skip = self.skip if self.epoch == self.skip_epoch else 0
        self.skip, self.skip_epoch = 0, -1  # only the epoch the checkpoint was in starts late
        return iter(indices[skip:])

    def __len__(self) -> int:
        return self.num_samples


class ResumableLoader(DataLoader):
    """A shuffling DataLoader whose position Lightning saves in checkpoints and restores."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int | None = None, drop_last: bool = False,
                 **kwargs: Any) -> None:
        if seed is None:  # seed_everything's seed; never a draw from the global stream
            seed = torch.initial_seed() % 2**63
        kwargs.pop("shuffle", None)
        kwargs.pop("sampler", None)
        kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         sampler=ResumableSampler(dataset, seed), **kwargs)
        self._last_iterator: Any = None
        self._skipped_batches = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        late = sampler.skip_epoch == sampler.epoch
        self._skipped_batches = sampler.skip // int(self.batch_size) if late else 0  # type: ignore[arg-type]
        self._last_iterator = super().__iter__()
        return self._last_iterator

    def state_dict(self) -> dict[str, int]:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        done = self._skipped_batches + (self._last_iterator._num_yielded if self._last_iterator else 0)
        return {"seed": int(sampler.seed), "epoch": int(sampler.epoch), "batches": int(done)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # saved on the epoch's last batch: the next epoch starts afresh
            epoch, batches = epoch + 1, 0
        sampler.seed, sampler.epoch = int(state["seed"]), epoch
        sampler.skip, sampler.skip_epoch = batches * int(self.batch_size), epoch  # type: ignore[arg-type]


def plain_loader(dataset: Dataset, seed: int | None = None, **kwargs: Any) -> DataLoader:
    """A non-shuffling DataLoader whose iterators never draw from the global random stream."""
    seed = torch.initial_seed() % 2**63 if seed is None else seed
    return DataLoader(dataset, shuffle=False, generator=torch.Generator().manual_seed(seed), **kwargs)


# ----------------------------------------------------------------------------- random streams
def rng_state() -> dict[str, Any]:
    """Every global random stream, as tensors / lists / ints (loads with torch.load(weights_only=True))."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:  # another GPU count: each process still resumes its own stream
            torch.cuda.set_rng_state(cuda[min(torch.cuda.current_device(), len(cuda) - 1)])


class RNGState(L.Callback):
    """Saves every random stream in the checkpoint and restores it where the resumed epoch starts.

    Only rank 0's streams are written; in DDP every rank restores them, which are its own when
    every rank was seeded alike (`seed_everything`, as the shipped configs do).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "mmgen.RNGState"

    def state_dict(self) -> dict[str, Any]:
        return rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Callbacks' on_train_start runs before the module's and before the first batch is
        fetched; a module's on_train_start must not draw on a resumed run (VAEModule's does not)."""
        if self._pending is not None:
            state, self._pending = self._pending, None
            set_rng_state(state)


class EpochBoundaryResume(L.Callback):
    """Counts the epoch after a checkpoint written at the end of an epoch's last batch as a new epoch.

    A checkpoint saved in `on_train_batch_end` of an epoch's last batch (`every_n_train_steps`
    landing on an epoch end) is resumed by Lightning (2.6) as "restarted mid-epoch": its
    `FitLoop.reset` counts that epoch as processed and completed, but `on_advance_start` still
    takes the mid-epoch path for the next epoch, so that epoch is never counted as ready and
    started and its `on_train_epoch_start` hooks do not run. The run trains on correctly, but
    every checkpoint it writes holds epoch counters one behind; resuming one written at an epoch
    end then sets `trainer.current_epoch` from `completed` but the samplers' epoch from
    `processed`, one lower: that run's epochs replay the previous epochs' batch orders (seen as
    other weights after kills at the ends of steps 4 and 7 with 3 batches an epoch).

    In `on_train_start` (after `FitLoop.reset`, before the first epoch starts) the mid-epoch
    restart of an epoch already counted as finished is turned into a plain epoch start, which
    is exactly what an uninterrupted run does after that batch. A checkpoint written at an epoch
    end by a run that resumed without this callback (counters ready = started = processed one
    below completed after the reset, a state Lightning never reaches on its own) gets its
    counters set to the finished epoch's. Every other restart is left alone.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fit_loop = trainer.fit_loop
        progress = fit_loop.epoch_progress
        epoch = progress.current
        if fit_loop.restarted_mid_epoch and epoch.processed == epoch.started:
            fit_loop.reset_restart_stage()  # the restored epoch is finished: the next one starts anew
        elif fit_loop.restarting and epoch.ready == epoch.started == epoch.processed == epoch.completed - 1:
            for counts in (progress.current, progress.total):  # the lag of a checkpoint written before
                counts.ready = counts.started = counts.processed = counts.completed
