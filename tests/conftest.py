"""Test-wide settings: never touch the network, keep thread use predictable on 2 cores."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def _numba_cache_dir() -> str:
    """One numba cache per pytest-xdist worker and virtual environment.

    librosa compiles its kernels with `cache=True`; workers filling one cold cache at the same
    time can pair a kernel file from one process with a wrapper file from another and crash
    (numba/numba#10128; it killed a CI worker in `loris_bcs_bhs`). Separate directories keep
    the compiled kernels between runs without anything to collide over.
    """
    import hashlib
    import sys
    import tempfile

    venv = hashlib.sha1(sys.prefix.encode()).hexdigest()[:8]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return os.path.join(tempfile.gettempdir(), f"mmgen-numba-{getattr(os, 'getuid', lambda: 0)()}-{venv}", worker)


os.environ.setdefault("NUMBA_CACHE_DIR", _numba_cache_dir())

import pytest
import torch

# One torch thread per test process: tests run tiny ops where thread hand-off costs more than it
# saves (measured 15 s vs 0.06 s on a busy 2-core machine); `pytest -n 2` uses both cores instead.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
