"""Input conversion and validation shared by the metrics (numpy or torch in, numpy out)."""

from __future__ import annotations

from typing import Any

import numpy as np

SMPL_NUM_JOINTS = 24


def to_numpy(x: Any, what: str, dtype: Any = None) -> np.ndarray:
    """Convert a numpy array, torch tensor or nested sequence to a numpy array.

    Floating inputs keep their precision unless `dtype` is given (the published scripts ran on the
    dtype they loaded, usually float32; `dtype=np.float64` is used where the math needs it).
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor (torch is not imported here)
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: cannot convert to a numeric array ({err})") from None
    if arr.dtype == object:
        raise ValueError(f"{what}: ragged or non-numeric input")
    if dtype is None and not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def check_finite(arr: np.ndarray, what: str) -> None:
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: contains NaN or infinite values")


def joints_array(
    joints: Any,
    what: str = "joints",
    num_joints: int | None = None,
    dims: tuple[int, ...] = (3,),
    min_frames: int = 2,
    dtype: Any = None,
) -> np.ndarray:
    """Validate one joint sequence `[T, J, D]` and return it as a finite numpy array."""
    arr = to_numpy(joints, what, dtype)
    if arr.ndim != 3 or arr.shape[-1] not in dims or (num_joints is not None and arr.shape[1] != num_joints):
        j = num_joints if num_joints is not None else "J"
        d = "|".join(str(v) for v in dims)
        raise ValueError(
            f"{what}: expected shape [T, {j}, {d}] (frames, joints, coords), got {tuple(arr.shape)}"
        )
    if arr.shape[0] < min_frames:
        raise ValueError(f"{what}: needs at least {min_frames} frames, got {arr.shape[0]}")
    check_finite(arr, what)
    return arr


def sequence_list(seqs: Any, what: str) -> list[Any]:
    """A list of per-sequence items: a list/tuple as is, an array with a leading batch axis split."""
    if isinstance(seqs, (list, tuple)):
        items = list(seqs)
    elif hasattr(seqs, "shape") and len(seqs.shape) >= 1:
        items = [seqs[i] for i in range(seqs.shape[0])]
    else:
        raise ValueError(
            f"{what}: expected a list of sequences or a batched array, got {type(seqs).__name__}"
        )
    if not items:
        raise ValueError(f"{what}: empty list of sequences")
    return items


def audio_array(audio: Any, what: str = "audio") -> np.ndarray:
    """Validate a mono waveform `[S]` (float), non-empty and finite."""
    y = to_numpy(audio, what)
    if y.ndim != 1:
        raise ValueError(f"{what}: expected a mono waveform of shape [samples], got {tuple(y.shape)}")
    if y.size == 0:
        raise ValueError(f"{what}: empty audio")
    check_finite(y, what)
    return np.ascontiguousarray(y, dtype=np.float32)


def check_positive(value: float, what: str) -> float:
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{what}: must be a positive number, got {value!r}")
    return float(value)


def check_variant(variant: str, allowed: tuple[str, ...], what: str) -> str:
    if variant not in allowed:
        raise ValueError(f"{what}: unknown variant {variant!r}; expected one of {allowed}")
    return variant
