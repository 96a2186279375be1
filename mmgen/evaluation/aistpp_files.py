"""Generated dances as the AIST++ papers' code writes them -> SMPL-24 joints at 60 fps, y-up, metres.

Layouts (detected from the file, never from its name alone):

    layout     file                                    content                          fps  up
    mmgen      <name>.npz (`mmgen generate`)           joints [T, 24, 3] + fps          file y
    bailando   <name>.pkl.npy / .pkl (`write2pkl`:     {"pred_position": [T, 72]}       60   y
               `np.save` of a dict, so numpy appends
               .npy to the .pkl name)
    edge       <name>.pkl (`EDGE.render_sample`,       {"full_pose": [T, 24, 3],        30   z
               `--save_motions`)                        "smpl_poses", "smpl_trans"}
    smpl       <name>.pkl (AIST++ `motions/` layout,   smpl_poses [T, 72], smpl_trans,  60*  y
               `mmgen generate --export smpl`)         smpl_scaling (optional), fps*
    array      <name>.npy                              [T, 24, 3] or [T, 72] numbers    60   y

(* the file's `fps` entry if it has one.) `smpl` files go through SMPL forward kinematics with the
model the ground truth uses: joints = FK(smpl_poses, smpl_trans / smpl_scaling). `fps` / `up`
arguments override the table for every file (e.g. a folder of 30-fps .npy files).

z-up joints are turned back to y-up by the inverse of EDGE's +90 deg rotation about x:
(x, y, z) -> (x, z, -y). Other rates are resampled to 60 fps by linear interpolation
(`mmgen.data.aistpp.resample_frames`), as LODGE states it interpolated its outputs to 60 fps.

Pickles (.pkl, and the object payload of a Bailando .npy) are read with mmgen's restricted
unpickler (numpy arrays and plain containers only; `mmgen.data.annotation_pickle`).
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmgen.core.errors import MmgenError
from mmgen.data.aistpp import resample_frames

AIST_FPS = 60.0
SEQ_PATTERN = re.compile(r"g[A-Z]{2}_s[A-Z]{2}_c(?:All|\d+)_d\d+_m[A-Z]{2}\d_ch\d+")
MUSIC_PATTERN = re.compile(r"(?<![A-Za-z0-9])m[A-Z]{2}\d(?![0-9])")
LAYOUT_DEFAULTS = {  # layout -> (fps, up axis)
    "mmgen": (None, "y"),
    "bailando": (60.0, "y"),
    "edge": (30.0, "z"),
    "smpl": (60.0, "y"),
    "array": (60.0, "y"),
}
NPY_MAGIC = b"\x93NUMPY"

SMPLForward = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (poses [T, 72], transl [T, 3]) -> [T, 24, 3]


@dataclass(frozen=True)
class GeneratedDance:
    """One generated file, read and conformed: `joints` [T, 24, 3] float64 at 60 fps, y-up."""

    path: Path
    layout: str
    sequence: str | None  # the AIST++ sequence name in the file name, if any
    music: str  # the AIST music id (mBR0, ...) from the sequence name or the file name
    joints: np.ndarray
    source_fps: float
    source_up: str

    @property
    def name(self) -> str:
        return self.path.name


def is_generated_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".npz", ".pkl", ".npy")


def names_in(filename: str) -> tuple[str | None, str]:
    """(sequence name or None, music id) found in a file name; ValueError if neither is there."""
    seq = SEQ_PATTERN.search(filename)
    if seq is not None:
        return seq.group(0), seq.group(0).split("_")[4]
    music = MUSIC_PATTERN.search(filename)
    if music is None:
        raise ValueError(
            f"{filename}: no AIST++ sequence name (e.g. gBR_sBM_cAll_d04_mBR0_ch01) or music id (e.g. mBR0) "
            "in the file name, so its music is unknown"
        )
    return None, music.group(0)


def _restricted_load(data: bytes, path: Path) -> Any:
    """Unpickle the object payload of an .npy file with the annotation unpickler (numpy arrays only)."""
    from mmgen.data.annotation_pickle import _ArrayUnpickler

    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
    ) as err:
        raise ValueError(f"{path}: not a readable pickle of numpy arrays ({err})") from err


def _read_npy(path: Path) -> Any:
    """An .npy file: a numeric array as is; an object array (Bailando's saved dict) through the
    restricted unpickler."""
    raw = path.read_bytes()
    buf = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buf)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }
        if version not in read_header:
            raise ValueError(f"npy format version {version} is not supported")
        _, _, dtype = read_header[version](buf)
    except ValueError as err:
        raise ValueError(f"{path}: not an .npy file ({err})") from None
    if dtype.hasobject:
        obj = _restricted_load(raw[buf.tell() :], path)
        return obj.item() if isinstance(obj, np.ndarray) and obj.shape == () else obj
    return np.load(io.BytesIO(raw), allow_pickle=False)


def _read_pickle_or_npy(path: Path) -> Any:
    if path.read_bytes()[: len(NPY_MAGIC)] == NPY_MAGIC:
        return _read_npy(path)
    from mmgen.data.annotation_pickle import load_annotation_pickle

    return load_annotation_pickle(path)  # a dict of numpy arrays, or ValueError naming the file


def _numeric(value: Any, path: Path, key: str) -> np.ndarray:
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: {key} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _as_joints(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    if arr.ndim == 2 and arr.shape[1] == 72:
        arr = arr.reshape(arr.shape[0], 24, 3)  # [T, 72] -> [T, 24, 3]
    if arr.ndim != 3 or arr.shape[1:] != (24, 3) or arr.shape[0] < 3:
        raise ValueError(
            f"{path}: {key} has shape {arr.shape}, expected SMPL-24 joints [T >= 3, 24, 3] or [T, 72]"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: {key} holds NaN or infinite values")
    return arr


def read_joints(path: Path, smpl_forward: SMPLForward | None) -> tuple[np.ndarray, str, float | None]:
    """(joints [T, 24, 3], layout, fps stored in the file or None) of one generated file."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from mmgen.io.export import load_motion_npz

        data = load_motion_npz(path)
        return (
            _as_joints(_numeric(data["joints"], path, "joints"), path, "joints"),
            "mmgen",
            float(data["fps"]),
        )
    content = _read_pickle_or_npy(path)
    if isinstance(content, np.ndarray):
        return _as_joints(_numeric(content, path, "array"), path, "array"), "array", None
    if not isinstance(content, dict):
        raise MmgenError(f"{path}: expected a dict of arrays or an array, got {type(content).__name__}")
    stored_fps = float(content["fps"]) if "fps" in content else None
    if "full_pose" in content:
        return (
            _as_joints(_numeric(content["full_pose"], path, "full_pose"), path, "full_pose"),
            "edge",
            stored_fps,
        )
    if "pred_position" in content:
        joints = _as_joints(_numeric(content["pred_position"], path, "pred_position"), path, "pred_position")
        return joints, "bailando", stored_fps
    if "smpl_poses" in content and "smpl_trans" in content:
        if smpl_forward is None:
            raise ValueError(f"{path}: SMPL parameters need the SMPL model for forward kinematics (smpl_dir)")
        poses = _numeric(content["smpl_poses"], path, "smpl_poses").reshape(-1, 72)
        trans = _numeric(content["smpl_trans"], path, "smpl_trans").reshape(-1, 3)
        scaling = float(np.asarray(content.get("smpl_scaling", 1.0)).reshape(-1)[0])
        if poses.shape[0] != trans.shape[0] or not scaling > 0:
            raise ValueError(
                f"{path}: smpl_poses {poses.shape} / smpl_trans {trans.shape} / scaling {scaling} do not fit"
            )
        joints = _as_joints(
            np.asarray(smpl_forward(poses, trans / scaling), dtype=np.float64), path, "FK joints"
        )
        return joints, "smpl", stored_fps
    raise ValueError(
        f"{path}: no pred_position (Bailando), full_pose (EDGE) or smpl_poses + smpl_trans in the file "
        f"(keys: {sorted(map(str, content))})"
    )


def zup_to_yup(joints: np.ndarray) -> np.ndarray:
    """Inverse of EDGE's +90 deg rotation about x: (x, y, z) z-up -> (x, z, -y) y-up."""
    return np.stack([joints[..., 0], joints[..., 2], -joints[..., 1]], axis=-1)


def read_generated(
    path: str | Path, smpl_forward: SMPLForward | None = None, fps: float | None = None, up: str | None = None
) -> GeneratedDance:
    """Read one generated file (see the module docstring) as joints at 60 fps, y-up."""
    path = Path(path)
    if up not in (None, "y", "z"):
        raise ValueError(f"up axis must be 'y' or 'z', got {up!r}")
    sequence, music = names_in(path.name)
    joints, layout, stored_fps = read_joints(path, smpl_forward)
    default_fps, default_up = LAYOUT_DEFAULTS[layout]
    src_fps = fps or stored_fps or default_fps
    if src_fps is None or not src_fps > 0:
        raise ValueError(f"{path}: frame rate unknown or not positive ({src_fps}); pass fps")
    src_up = up or default_up
    if src_up == "z":
        joints = zup_to_yup(joints)
    if abs(src_fps - AIST_FPS) > 1e-9:
        joints = resample_frames(joints, src_fps, AIST_FPS)
    return GeneratedDance(path, layout, sequence, music, joints, float(src_fps), src_up)
