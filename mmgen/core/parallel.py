"""Ordered parallel map for the data commands (`mmgen preprocess`, `mmgen cache`), on torch DataLoader workers.

    items ──► DataLoader(num_workers=N, batch_size=None) ──► fn(item) in worker k ──► results in item order

Results come back in the order of `items` whatever worker finished first, so everything the
parent writes from them (manifests, shards) is byte-identical to a one-worker run. `workers=1`
runs in this process, with no DataLoader at all.

Workers are forked (the DataLoader's default on Linux): `fn` may be a closure, nothing is
pickled on the way in. Each worker runs torch on one thread (the DataLoader sets it), so N workers
use N cores.

numba (librosa's beat tracking, onset detection) caches compiled functions on disk, and several
processes filling one cache at once segfault (numba#10128). mmgen's own cache is filled under a
file lock (`mmgen.core.numba_cache`), so workers share it safely: the first to need a kernel
compiles it while the others wait, then all read it. If the parent has already imported librosa,
the kernels are compiled (or loaded) there first and forked workers inherit them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

from mmgen.core.numba_cache import warm_librosa

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
MAX_WORKERS = 256


def check_workers(name: str, workers: int) -> int:
    """`workers` as an int in [1, MAX_WORKERS], else a ValueError naming the option."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"{name} must be an integer in [1, {MAX_WORKERS}], got {workers!r}")
    return workers


class _Mapped(torch.utils.data.Dataset):
    def __init__(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
        self.fn, self.items = fn, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.fn(self.items[index])


def _as_is(value: Any) -> Any:
    """The DataLoader's collate_fn: no conversion (its default turns numpy arrays into tensors)."""
    return value


def warm_numba() -> None:
    """Compile (or load) librosa's beat and onset kernels here if librosa is already imported, so
    forked workers inherit them. Does nothing (and imports nothing) otherwise."""
    if "librosa" in sys.modules:
        warm_librosa()


def ordered_map(
    fn: Callable[[T], R], items: Sequence[T], workers: int = 1, prefetch: int = 2
) -> Iterator[R]:
    """Yield fn(item) for every item, in order, computed by `workers` processes (1 = this one).

    An exception in `fn` stops the map and is raised here (the DataLoader re-raises it with the
    worker's traceback); callers that skip bad items catch inside `fn` and return the error.
    """
    check_workers("workers", workers)
    if workers == 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    warm_numba()
    loader = torch.utils.data.DataLoader(
        _Mapped(fn, items),
        batch_size=None,
        num_workers=min(workers, len(items)),
        collate_fn=_as_is,
        prefetch_factor=prefetch,
        multiprocessing_context="fork",
    )
    log.info("parallel map: %d items on %d workers", len(items), loader.num_workers)
    yield from loader
