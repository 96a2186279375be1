"""A numba cache that mmgen's processes share without corrupting it (numba#10128).

librosa compiles its onset and beat kernels with numba's `cache=True`. Numba writes a
guvectorize kernel as two files by two separate renames, so two processes compiling the same
kernel at once can leave a pair made by different processes; every later process that loads it
segfaults in `librosa.beat.beat_track` (librosa#1998). With numba's default cache inside
site-packages that lasts until someone deletes the files: two `mmgen eval` jobs started together
on a fresh install were enough to make every later mmgen command that tracks beats crash.

So mmgen
  1. points numba at a cache of its own, one per user and per numba / librosa version, when
     NUMBA_CACHE_DIR is not set (`configure`, run by `import mmgen` before numba is imported);
  2. compiles the kernels it uses once, under an inter-process file lock, the first time a
     process tracks beats (`warm_librosa`): the first process compiles (~25 s on a CPU core) while
     the others wait, then every process only reads the finished files (~4 s).
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_warm = False


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME (or ~/.cache) / mmgen / numba-<numba version>-librosa-<librosa version>."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mmgen" / f"numba-{_version('numba')}-librosa-{_version('librosa')}"


def configure() -> None:
    """Use mmgen's own numba cache unless the environment already names one."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(default_cache_dir()))


def warm_librosa() -> None:
    """Compile (or load) librosa's onset and beat kernels for float32 and float64 audio, holding
    the cache's lock, once per process."""
    global _warm
    if _warm:
        return
    from filelock import FileLock

    cache = Path(os.environ.get("NUMBA_CACHE_DIR") or default_cache_dir())
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".mmgen-compile.lock")):
        import librosa
        import numpy as np

        sr = 22050
        clicks = np.zeros(2 * sr)
        clicks[:: sr // 2] = 1.0  # 120 bpm
        for y in (clicks.astype(np.float32), clicks):
            librosa.beat.beat_track(y=y, sr=sr, units="time")
            librosa.onset.onset_detect(y=y, sr=sr, units="time")
    _warm = True
