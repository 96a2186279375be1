"""Test-wide settings: never touch the network, keep thread use predictable on 2 cores."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def _numba_cache_dir() -> str:
    """A numba cache of this test process's own, removed when the process ends.

    librosa compiles its kernels with `@guvectorize(cache=True)`, which writes each kernel as two
    files by two separate renames; processes filling one cold cache at the same time can pair a
    kernel file from one with a wrapper file from another and segfault in `beat_track`
    (numba/numba#10128, librosa/librosa#1998; it crashed every CI worker that tracked beats).
    A directory per process has nothing to collide over. It is made per process id, not per
    pytest-xdist worker name: `PYTEST_XDIST_WORKER` is not yet set when this file is imported, so
    a name-based directory was one shared "main" directory. Subprocesses the tests start (the
    `mmgen` CLI) inherit it and run while the test waits, never beside it.
    """
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="mmgen-test-numba-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


os.environ["NUMBA_CACHE_DIR"] = _numba_cache_dir()

import pytest
import torch

# One torch thread per test process: tests run tiny ops where thread hand-off costs more than it
# saves (measured 15 s vs 0.06 s on a busy 2-core machine); `pytest -n 2` uses both cores instead.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
