"""Reading the pickles data sets ship (AIST++ annotations, SMPL model files) without running code.

The AIST++ annotation release is a set of plain pickles of dicts of numpy arrays, and the SMPL
model files are pickles too, so reading them means unpickling files the user downloaded. We
never hand such a file to `pickle` (or to smplx, which would): the unpickler here only resolves
the handful of names a dict of arrays needs. Anything else in the file (a `__reduce__` payload
naming os.system, eval, subprocess, ...) is refused before it is called.

    load_annotation_pickle   numpy arrays only
    load_model_pickle        numpy arrays, scipy.sparse matrices (SMPL's J_regressor), and
                             chumpy arrays (the official SMPL v1.0 files) converted to numpy from
                             their stored values, without importing chumpy
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

_NUMPY = {
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
    ("__builtin__", "complex"),
}
_SPARSE_FORMATS = ("csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array")
_READ_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
                IndexError, KeyError, UnicodeDecodeError, MemoryError, RecursionError)


class _Stored:
    """A stand-in for a chumpy or scipy.sparse object: it only keeps the state the file stored."""

    module = name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # NEWOBJ may pass the original's arguments
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stand_in(module: str, name: str) -> type[_Stored]:
    return type(name, (_Stored,), {"module": module, "name": name})


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """copyreg._reconstructor for protocol 0/1 pickles, for stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, _Stored)) or base not in (object, None):
        raise pickle.UnpicklingError(f"refusing to rebuild {cls!r}")
    return cls.__new__(cls)


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, models: bool = False, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self.models = models

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class("builtins" if module == "__builtin__" else module, name)
        if self.models:
            if module.split(".")[0] == "chumpy" or (module.startswith("scipy.sparse") and name in _SPARSE_FORMATS):
                return _stand_in(module, name)
            if (module, name) in (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")):
                return _reconstructor
            if module in ("__builtin__", "builtins") and name in ("object", "set", "frozenset", "slice"):
                return {"object": object, "set": set, "frozenset": frozenset, "slice": slice}[name]
        allowed = "numpy arrays, scipy.sparse matrices and chumpy arrays" if self.models else "numpy arrays"
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only {allowed} are allowed)")


def _unpickle(path: Path, what: str, models: bool) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return _ArrayUnpickler(io.BytesIO(path.read_bytes()), models).load()
    except _READ_ERRORS as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not a readable {what} ({reason})") from None


def load_annotation_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Read a pickled dict of numpy arrays; ValueError naming the file if it is anything else."""
    path = Path(path)
    data = _unpickle(path, "annotation pickle", models=False)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(data).__name__}")  # noqa: TRY004
    return data


def _convert(value: Any, path: Path, key: str) -> Any:
    """Stand-ins -> numpy arrays (chumpy: the stored value `x`) or scipy.sparse matrices."""
    if not isinstance(value, _Stored):
        return value
    state = getattr(value, "state", None)
    if value.module.startswith("scipy.sparse"):
        import scipy.sparse

        if not isinstance(state, dict) or not {"data", "indices", "indptr"} <= set(state):
            raise ValueError(f"{path}: {key} is a {value.name} without its arrays")
        shape = tuple(int(s) for s in state.get("_shape", state.get("shape", ())))
        arrays = (np.asarray(state["data"]), np.asarray(state["indices"]), np.asarray(state["indptr"]))
        cls = scipy.sparse.csr_matrix if value.name.startswith("csr") else scipy.sparse.csc_matrix
        if value.name.startswith("coo"):
            raise ValueError(f"{path}: {key} is a coo sparse matrix; SMPL files store csc")
        try:
            return cls(arrays, shape=shape)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {key} is not a valid {value.name} ({err})") from None
    if isinstance(state, dict) and isinstance(state.get("x"), np.ndarray):
        return np.asarray(state["x"])  # a chumpy terminal stores its value as x
    raise ValueError(
        f"{path}: {key} is a chumpy {value.name} expression, not a stored array; convert the file once "
        "with smplx's tools/clean_ch.py (pip install chumpy for that step only)"
    )


def load_model_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Read a model file pickle (SMPL): a dict of numpy arrays, sparse matrices, strings and
    numbers, chumpy arrays converted to numpy. ValueError naming the file for anything else."""
    path = Path(path)
    data = _unpickle(path, "SMPL model pickle", models=True)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(data).__name__}")  # noqa: TRY004
    return {str(k): _convert(v, path, str(k)) for k, v in data.items()}
