"""Loading dataset annotation pickles (AIST++ `motions/*.pkl`, `keypoints3d/*.pkl`).

The AIST++ annotation release is distributed as plain pickles of dicts of numpy arrays, so
reading it means unpickling files the user downloaded. We never unpickle anything else (weights
are safetensors), and even here the unpickler only resolves the handful of numpy/builtin names a
dict of arrays needs: a pickle that references any other callable is refused, not executed.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("builtins", "complex"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")


def load_annotation_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Read a pickled dict of numpy arrays; ValueError naming the file if it is anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        data = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
    ) as err:
        raise ValueError(f"{path}: not a readable annotation pickle ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    return data
