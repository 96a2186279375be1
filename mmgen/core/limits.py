"""The bounds of every length, count, rate and seed mmgen accepts, checked before any work starts.

A request outside them is a typo or a mistake (`--seconds 1e9`, `--steps 1e8`, motion stored at
1e-3 fps), not a job: without a bound it runs until killed or exhausts memory. The bounds are
generous for real use and documented in docs/reliability.md:

    MAX_SECONDS         2 h      of output per example (generate, demo, toydance), and of any input file
    MAX_STEPS           1000     sampler steps
    MAX_BATCH           256      examples per generate call
    MAX_SEED            2**63-1  seeds are integers in [0, 2**63)
    MOTION_FPS          [1, 1000]        frame rate of a motion file
    VIDEO_FPS           [1, 1000]        frame rate of a video file or setting
    SAMPLE_RATE         [1000, 768000]   sample rate of an audio file or setting
    MAX_FRAME_SIDE      4096     pixels per side of a video frame setting
    MAX_CLIPS           100000   clips of a ToyDance set / the demo
    MEMORY_FRACTION     0.9      of the memory available: more than this estimated for a call is refused

Every check raises `LimitError` (an MmgenError and a ValueError) naming the argument, the value
and the bound; `mmgen` prints it as one line and exits 2.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

import numpy as np

from mmgen.core.errors import MmgenError

MAX_SECONDS = 2 * 3600.0
MAX_STEPS = 1000
MAX_BATCH = 256
MAX_SEED = 2**63 - 1
MOTION_FPS = (1.0, 1000.0)
VIDEO_FPS = (1.0, 1000.0)
SAMPLE_RATE = (1000, 768_000)
MAX_FRAME_SIDE = 4096
MAX_CLIPS = 100_000
MEMORY_FRACTION = 0.9


class LimitError(MmgenError, ValueError):
    """A value outside mmgen's documented bounds, or of a type that cannot be one."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """An integer (not a bool, not 2.5, not "3") in [low, high]."""
    if not _is_int(value):
        raise LimitError(f"{name} must be an integer in [{low}, {high}], got {value!r} ({type(value).__name__})")
    if not low <= int(value) <= high:
        raise LimitError(f"{name} must be an integer in [{low}, {high}], got {value}")
    return int(value)


def check_number(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    """A finite real number (not a bool) in [low, high] (or (low, high])."""
    if not _is_real(value) or not math.isfinite(float(value)):
        raise LimitError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if (v <= low if low_open else v < low) or v > high:
        span = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
        raise LimitError(f"{name} must be in {span}, got {v:g}")
    return v


def check_seconds(name: str, value: Any, minimum: float = 0.0) -> float:
    """A clip length in (minimum, MAX_SECONDS] (minimum: e.g. one latent frame)."""
    v = check_number(name, value, 0.0, MAX_SECONDS, low_open=True)
    if v < minimum:
        raise LimitError(f"{name} must be at least {minimum:.3g} s, got {v:g}")
    return v


def check_steps(name: str, value: Any) -> int:
    return check_int(name, value, 1, MAX_STEPS)


def check_seed(name: str, value: Any) -> int:
    """An integer in [0, 2**63) (torch.Generator.manual_seed takes 64 bits; 2**70 would overflow)."""
    if not _is_int(value) or not 0 <= int(value) <= MAX_SEED:
        raise LimitError(f"{name} must be an integer in [0, 2**63), got {value!r}")
    return int(value)


def scalar(name: str, value: Any) -> float:
    """A number stored in a file (a 0-d or one-element array, or a plain number) as a float."""
    arr = np.asarray(value)
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise LimitError(f"{name} must be one number, got {arr.dtype} array of shape {arr.shape}")
    return float(arr.reshape(()))


def check_batch(name: str, value: Any) -> int:
    return check_int(name, value, 1, MAX_BATCH)


def check_rate(name: str, value: Any, bounds: tuple[float, float]) -> float:
    """A frame or sample rate within `bounds` (MOTION_FPS, VIDEO_FPS, SAMPLE_RATE)."""
    return check_number(name, value, bounds[0], bounds[1])


def available_memory(device: Any = "cpu") -> int | None:
    """Bytes free for a new allocation on `device`: MemAvailable on Linux, the free CUDA memory on
    a GPU, None where it cannot be known (then no estimate is refused)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        try:
            free, _ = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError):
            return None
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(what: str, needed: int, device: Any = "cpu") -> None:
    """Refuse a call whose estimated memory (`needed` bytes) exceeds MEMORY_FRACTION of what is free."""
    free = available_memory(device)
    if free is not None and needed > MEMORY_FRACTION * free:
        raise LimitError(
            f"{what} needs about {needed / 2**30:.1f} GiB but {free / 2**30:.1f} GiB are free on {device}; "
            "ask for fewer seconds or a smaller batch"
        )
