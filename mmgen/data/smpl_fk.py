"""SMPL forward kinematics through `smplx`: axis-angle poses + root translation -> 24 joints.

    poses   [N, 72]   axis-angle, joint 0 = global orientation, joints 1..23 = body (SMPL order)
    transl  [N, 3]    root translation in SMPL units (metres); for AIST++ `smpl_trans / smpl_scaling`
    joints  [N, 24, 3] the first 24 smplx joints (`output.joints[:, :24]`), same frame as the input

Betas are zero (AIST++ stores none: body shape is absorbed by `smpl_scaling`). Joints do not
depend on the posed vertices, so by default only smplx's kinematic chain runs
(`batch_rodrigues` + `batch_rigid_transform` on the model's rest joints `J_regressor @ v_template`):
the same numbers as the full `SMPL.forward(...).joints[:, :24]` (`full_forward=True`, tested), at
a fraction of the cost (no 6890-vertex pose blend shapes and skinning per frame). The SMPL model
files are licensed and never shipped: the user downloads them from the SMPL website and points
`model_path` at either the file itself, a folder holding `SMPL_<GENDER>.pkl`, or a folder with a
`smpl/` sub-folder (smplx's own layout). The published AIST++ scripts all use the MALE model.

The files are never unpickled by `pickle` (nor by smplx): `read_smpl_model` reads a `.pkl` with
a restricted unpickler that only builds numpy arrays and scipy.sparse matrices, and converts the
`chumpy` arrays of the official v1.0 pickles to numpy without chumpy; a `.npz` is read with
`allow_pickle=False`. A pickle that names anything else (a code-running payload) is refused
before anything in it runs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmgen.core.errors import MmgenError
from mmgen.data.annotation_pickle import load_model_pickle

logger = logging.getLogger(__name__)

SMPL_GENDERS = ("neutral", "male", "female")
NUM_SMPL_JOINTS = 24


def find_smpl_model(model_path: str | os.PathLike, gender: str = "male") -> Path:
    """Resolve a user-given SMPL location to the model file (see the module docstring)."""
    if gender not in SMPL_GENDERS:
        raise ValueError(f"SMPL gender must be one of {SMPL_GENDERS}, got {gender!r}")
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"{path}: SMPL model path does not exist")
    name = f"SMPL_{gender.upper()}"
    candidates = [path / f"{name}.{ext}" for ext in ("pkl", "npz")]
    candidates += [path / "smpl" / f"{name}.{ext}" for ext in ("pkl", "npz")]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"{path}: no {name}.pkl here or in {path / 'smpl'} (download the SMPL model from "
        "https://smpl.is.tue.mpg.de and point --smpl-dir at its folder)"
    )


SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


def read_smpl_model(path: str | os.PathLike) -> dict[str, Any]:
    """The arrays of an SMPL model file, read without running code from it.

    A `.pkl` goes through the restricted unpickler of `mmgen.data.annotation_pickle` (numpy,
    scipy.sparse; chumpy arrays converted to numpy, chumpy itself never imported); a `.npz`
    through `np.load(allow_pickle=False)`. Errors name the file.
    """
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                data: dict[str, Any] = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise MmgenError(f"{path}: not a readable SMPL .npz ({str(err).splitlines()[0][:200]})") from None
    else:
        try:
            data = load_model_pickle(path)
        except ValueError as err:
            raise MmgenError(str(err)) from None
    missing = [k for k in SMPL_KEYS if k not in data]
    if missing:
        raise MmgenError(f"{path}: not an SMPL model file (missing {', '.join(missing)})")
    for key in SMPL_KEYS:
        value = data[key]
        if key != "J_regressor" and not (isinstance(value, np.ndarray) and value.dtype.kind in "fiu"):
            raise MmgenError(f"{path}: SMPL {key} must be a numeric array, got {type(value).__name__}")
    return data


def load_smpl_model(model_path: str | os.PathLike, gender: str = "male") -> nn.Module:
    """Load an `smplx.SMPL` body model (buffers only: no per-instance pose parameters).

    The file is read by `read_smpl_model` and handed to smplx as a data struct, so smplx never
    unpickles it. Raises MmgenError with the file name for a file that is not an SMPL model.
    """
    import smplx  # imported here: only SMPL users pay for it
    from smplx.utils import Struct

    file = find_smpl_model(model_path, gender)
    data = read_smpl_model(file)
    kwargs = {
        "gender": gender,
        "create_betas": False,
        "create_global_orient": False,
        "create_body_pose": False,
        "create_transl": False,
        "batch_size": 1,
    }
    # smplx prints a warning about 10 shape components; the library must not print
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            model = smplx.SMPL(str(file), data_struct=Struct(**data), **kwargs)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
        raise MmgenError(f"{file}: not a valid SMPL model file ({type(err).__name__}: {err})") from err
    if captured.getvalue().strip():
        logger.info("smplx: %s", captured.getvalue().strip())
    if model.J_regressor.shape[0] < NUM_SMPL_JOINTS:
        raise MmgenError(
            f"{file}: J_regressor has {model.J_regressor.shape[0]} joints, SMPL needs {NUM_SMPL_JOINTS}"
        )
    return model


class SMPLForwardKinematics(nn.Module):
    """Batched SMPL FK on any device: `forward(poses [N, 72], transl [N, 3]) -> [N, 24, 3]`.

    Frames are processed in chunks of `chunk_size` so a long sequence does not allocate
    N x 6890 x 3 vertices at once. Gradients flow (no `no_grad` inside).
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        gender: str = "male",
        chunk_size: int = 1024,
        full_forward: bool = False,
    ) -> None:
        super().__init__()
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.body = load_smpl_model(model_path, gender)
        self.chunk_size, self.full_forward = chunk_size, full_forward
        with torch.no_grad():  # rest-pose joints at betas = 0: [24, 3]
            rest = self.body.J_regressor[:NUM_SMPL_JOINTS] @ self.body.v_template
        self.register_buffer("rest_joints", rest, persistent=False)

    @property
    def num_betas(self) -> int:
        return int(self.body.shapedirs.shape[-1])

    def forward(self, poses: torch.Tensor, transl: torch.Tensor | None = None) -> torch.Tensor:
        ref = self.body.v_template
        if poses.ndim != 2 or poses.shape[1] != 3 * NUM_SMPL_JOINTS:
            raise ValueError(f"poses must be [N, 72] axis-angle, got {tuple(poses.shape)}")
        if transl is not None and (transl.ndim != 2 or transl.shape != (poses.shape[0], 3)):
            raise ValueError(f"transl must be [N, 3] = [{poses.shape[0]}, 3], got {tuple(transl.shape)}")
        poses = poses.to(device=ref.device, dtype=ref.dtype)
        transl = None if transl is None else transl.to(device=ref.device, dtype=ref.dtype)
        from smplx.lbs import batch_rigid_transform, batch_rodrigues

        parents = self.body.parents[:NUM_SMPL_JOINTS]
        out = []
        for start in range(0, poses.shape[0], self.chunk_size):
            p = poses[start : start + self.chunk_size]  # [n, 72]
            n = p.shape[0]
            tr = None if transl is None else transl[start : start + n]
            if self.full_forward:
                result = self.body(
                    betas=p.new_zeros(n, self.num_betas),
                    global_orient=p[:, :3],
                    body_pose=p[:, 3:],
                    transl=tr,
                )
                out.append(result.joints[:, :NUM_SMPL_JOINTS])  # [n, 24, 3]
                continue
            rot = batch_rodrigues(p.reshape(-1, 3)).reshape(n, NUM_SMPL_JOINTS, 3, 3)  # [n, 24, 3, 3]
            joints, _ = batch_rigid_transform(rot, self.rest_joints.expand(n, -1, -1), parents, dtype=p.dtype)
            out.append(joints if tr is None else joints + tr[:, None])  # [n, 24, 3]
        if not out:
            return poses.new_zeros(0, NUM_SMPL_JOINTS, 3)
        return torch.cat(out)  # [N, 24, 3]
