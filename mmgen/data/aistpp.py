"""AIST++ reader: the annotation release as published, SMPL forward kinematics through smplx.

On disk (the `aist_plusplus_final` annotation release; music comes from the AIST Dance DB):

    <root>/motions/<seq>.pkl       smpl_poses (N, 72) f32 axis-angle, smpl_trans (N, 3) ~cm,
                                   smpl_scaling (1,), smpl_loss (float)          60 fps
    <root>/keypoints3d/<seq>.pkl   keypoints3d / keypoints3d_optim (N, 17, 3) COCO-17, world cm
    <root>/splits/crossmodal_{train,val,test}.txt   one sequence name per line
    <root>/ignore_list.txt         sequences with bad reconstructions (dropped by default)
    <music_dir>/<music id>.wav     e.g. gBR_sBM_cAll_d04_mBR0_ch01 -> mBR0.wav
    <smpl_dir>/SMPL_MALE.pkl       (or <smpl_dir>/smpl/SMPL_MALE.pkl)

Joints follow the convention of every generation code base (mint, Bailando, EDGE):
`FK(smpl_poses, transl = smpl_trans / smpl_scaling)`, the first 24 smplx joints, metres at SMPL
scale, y-up (AIST++'s own axis; nothing is rotated). 60 fps is reduced by taking every k-th
frame when 60 / fps is an integer (EDGE's 60 -> 30), otherwise joints are linearly interpolated.

The annotation pickles are data the user downloaded; they are read with an unpickler that only
accepts numpy arrays (`mmgen.data.annotation_pickle`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmgen.data.annotation_pickle import load_annotation_pickle
from mmgen.io.audio import load_audio

AIST_FPS = 60.0
SPLITS = ("train", "val", "test")
GENRES = {
    "gBR": "break",
    "gPO": "pop",
    "gLO": "lock",
    "gMH": "middle hip-hop",
    "gLH": "LA hip-hop",
    "gHO": "house",
    "gWA": "waack",
    "gKR": "krump",
    "gJS": "street jazz",
    "gJB": "ballet jazz",
}
_SEQ_RE = re.compile(r"^(g[A-Z]{2})_(s[A-Z]{2})_(c(?:All|\d+))_(d\d+)_(m[A-Z]{2}\d)_(ch\d+)$")


# ----------------------------------------------------------------------------- names, tempo
@dataclass(frozen=True)
class SeqName:
    """`g{GG}_s{SS}_c{CC}_d{DD}_m{GG}{i}_ch{KK}` split into its fields."""

    genre: str
    situation: str
    camera: str
    dancer: str
    music: str
    choreo: str

    @classmethod
    def parse(cls, name: str) -> SeqName:
        m = _SEQ_RE.match(name)
        if m is None:
            raise ValueError(
                f"{name!r} is not an AIST++ sequence name (expected e.g. gBR_sBM_cAll_d04_mBR0_ch01)"
            )
        return cls(*m.groups())

    @property
    def genre_name(self) -> str:
        return GENRES.get(self.genre, self.genre)


def music_id(seq: str) -> str:
    """The 5th underscore field: `gBR_sBM_cAll_d04_mBR0_ch01` -> `mBR0`."""
    return SeqName.parse(seq).music


def music_bpm(music: str) -> float:
    """Tempo encoded in an AIST music id: 80 + 10·i, House (mHO) 110 + 5·i."""
    m = re.fullmatch(r"m([A-Z]{2})(\d)", music)
    if m is None:
        raise ValueError(f"{music!r} is not an AIST music id (expected e.g. mBR0)")
    i = int(m.group(2))
    return 110.0 + 5.0 * i if m.group(1) == "HO" else 80.0 + 10.0 * i


# ----------------------------------------------------------------------------- files
@dataclass(frozen=True)
class SMPLMotion:
    """One `motions/<seq>.pkl`: poses [N, 72], trans [N, 3] (world units, ~cm), scaling, fit loss."""

    poses: np.ndarray
    trans: np.ndarray
    scaling: float
    loss: float | None = None

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def transl(self) -> np.ndarray:
        """Root translation at SMPL scale (metres): smpl_trans / smpl_scaling."""
        return (self.trans / self.scaling).astype(np.float32)


def _array(data: dict, key: str, path: Path) -> np.ndarray:
    if key not in data:
        raise ValueError(f"{path}: missing key {key!r} (has {sorted(map(str, data))})")
    arr = np.asarray(data[key])
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: {key} must be numeric, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).reshape(arr.shape[0], -1).any(axis=1).sum()) if arr.ndim else 1
        raise ValueError(f"{path}: {key} holds NaN or infinite values ({bad} bad frames)")
    return arr.astype(np.float32)


def load_motion(path: str | os.PathLike) -> SMPLMotion:
    """Read and validate one AIST++ `motions/<seq>.pkl`."""
    path = Path(path)
    data = load_annotation_pickle(path)
    poses = _array(data, "smpl_poses", path)
    if poses.ndim == 3 and poses.shape[1:] == (24, 3):
        poses = poses.reshape(poses.shape[0], 72)
    if poses.ndim != 2 or poses.shape[1] != 72 or poses.shape[0] == 0:
        raise ValueError(f"{path}: smpl_poses has shape {poses.shape}, expected (N, 72) with N > 0")
    trans = _array(data, "smpl_trans", path)
    if trans.shape != (poses.shape[0], 3):
        raise ValueError(
            f"{path}: smpl_trans has shape {trans.shape}, expected ({poses.shape[0]}, 3) like smpl_poses"
        )
    scaling = _array(data, "smpl_scaling", path).reshape(-1)
    if scaling.shape != (1,) or not scaling[0] > 0:
        raise ValueError(f"{path}: smpl_scaling must be one positive number, got {scaling.tolist()}")
    loss = data.get("smpl_loss")
    return SMPLMotion(
        poses=poses, trans=trans, scaling=float(scaling[0]), loss=None if loss is None else float(loss)
    )


def load_keypoints3d(path: str | os.PathLike, key: str = "keypoints3d_optim") -> np.ndarray:
    """Read `keypoints3d/<seq>.pkl`: [N, 17, 3] COCO-17 in world units (cm), 60 fps."""
    path = Path(path)
    if key not in ("keypoints3d", "keypoints3d_optim"):
        raise ValueError(f"key must be 'keypoints3d' or 'keypoints3d_optim', got {key!r}")
    kp = _array(load_annotation_pickle(path), key, path)
    if kp.ndim != 3 or kp.shape[1:] != (17, 3) or kp.shape[0] == 0:
        raise ValueError(f"{path}: {key} has shape {kp.shape}, expected (N, 17, 3)")
    return kp


def _read_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(re.sub(r"\.(pkl|json|npy|npz)$", "", line))
    return names


def read_split(root: str | os.PathLike, split: str, kind: str = "crossmodal") -> list[str]:
    """Sequence names of `<root>/splits/{kind}_{split}.txt`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(root) / "splits" / f"{kind}_{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found")
    return _read_names(path)


def read_ignore_list(root: str | os.PathLike) -> set[str]:
    """Names in `<root>/ignore_list.txt` (empty set if the file is absent)."""
    path = Path(root) / "ignore_list.txt"
    return set(_read_names(path)) if path.is_file() else set()


# ----------------------------------------------------------------------------- time
def resample_frames(x: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Resample along axis 0: every k-th frame if src/dst is an integer k, else linear interpolation.

    Output length floor((N - 1) * dst / src) + 1 in both cases (frame 0 is kept).
    """
    if not (src_fps > 0 and dst_fps > 0):
        raise ValueError(f"fps must be positive, got {src_fps} -> {dst_fps}")
    if x.shape[0] == 0:
        raise ValueError("cannot resample an empty sequence")
    ratio = src_fps / dst_fps
    if ratio >= 1 and abs(ratio - round(ratio)) < 1e-9:
        return x[:: round(ratio)]
    n_out = math.floor((x.shape[0] - 1) / ratio + 1e-9) + 1
    t = np.arange(n_out) * ratio  # positions in source frames
    i0 = np.minimum(np.floor(t).astype(np.int64), x.shape[0] - 1)
    i1 = np.minimum(i0 + 1, x.shape[0] - 1)
    w = (t - i0).reshape(-1, *([1] * (x.ndim - 1))).astype(x.dtype)
    return x[i0] * (1 - w) + x[i1] * w


def clip_starts(seconds: float, clip_seconds: float, stride_seconds: float) -> list[float]:
    """Start times of windows [s, s + clip) with s = k·stride that fit in `seconds` (EDGE slicing)."""
    if clip_seconds <= 0 or stride_seconds <= 0:
        raise ValueError(f"clip and stride must be positive, got {clip_seconds}, {stride_seconds}")
    if seconds < clip_seconds - 1e-9:
        return []
    count = math.floor((seconds - clip_seconds) / stride_seconds + 1e-9) + 1
    return [round(k * stride_seconds, 9) for k in range(count)]


# ----------------------------------------------------------------------------- reader
class AISTPP:
    """Read AIST++ sequences: joints via smplx FK, COCO keypoints, split lists, music and tempo.

    Args:
        root: the annotation folder (holds `motions/`).
        music_dir: folder of AIST music wavs (`mBR0.wav`, ...); needed only for `audio`.
        smpl_dir: SMPL model location (see `mmgen.data.smpl_fk`); needed only for `joints`.
        gender: SMPL model; "male" as in every published AIST++ script.
        fps: output frame rate of joints / keypoints (30 = EDGE, 60 = native).
        device: where FK runs; batched over all frames of a sequence.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        music_dir: str | os.PathLike | None = None,
        smpl_dir: str | os.PathLike | None = None,
        gender: str = "male",
        fps: float = 30.0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.root = Path(root)
        if not (self.root / "motions").is_dir():
            raise FileNotFoundError(
                f"{self.root}: no motions/ folder (expected the AIST++ annotation release)"
            )
        if not 0 < fps <= AIST_FPS:
            raise ValueError(f"fps must be in (0, {AIST_FPS:g}], got {fps}")
        self.music_dir = None if music_dir is None else Path(music_dir)
        self.smpl_dir = None if smpl_dir is None else Path(smpl_dir)
        self.gender = gender
        self.fps = float(fps)
        self.device = torch.device(device)
        self._fk: torch.nn.Module | None = None

    # names
    def all_sequences(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "motions").glob("*.pkl"))

    def sequences(self, split: str | None = None, drop_ignored: bool = True) -> list[str]:
        """Names in a crossmodal split (or every motion file if split is None), ignore list applied."""
        names = self.all_sequences() if split is None else read_split(self.root, split)
        if drop_ignored:
            ignored = read_ignore_list(self.root)
            names = [n for n in names if n not in ignored]
        return names

    # motion
    def motion_path(self, seq: str) -> Path:
        return self.root / "motions" / f"{seq}.pkl"

    def load_motion(self, seq: str) -> SMPLMotion:
        return load_motion(self.motion_path(seq))

    def kinematics(self) -> torch.nn.Module:
        """The SMPL forward kinematics (the model file is read on the first call, safely: `smpl_fk`)."""
        if self._fk is None:
            if self.smpl_dir is None:
                raise ValueError("AISTPP(smpl_dir=...) is required to compute joints (SMPL model files)")
            from mmgen.data.smpl_fk import SMPLForwardKinematics

            self._fk = SMPLForwardKinematics(self.smpl_dir, gender=self.gender).to(self.device)
        return self._fk

    @torch.no_grad()
    def joints_from_motion(self, motion: SMPLMotion) -> np.ndarray:
        """[T, 24, 3] float32 joints at `self.fps` (metres, y-up) from a loaded motion."""
        ratio = AIST_FPS / self.fps
        integer = abs(ratio - round(ratio)) < 1e-9
        poses, transl = motion.poses, motion.transl
        if integer:  # FK on the kept frames only
            poses, transl = poses[:: round(ratio)], transl[:: round(ratio)]
        joints = self.kinematics()(torch.from_numpy(poses), torch.from_numpy(transl))  # [T, 24, 3]
        joints = joints.float().cpu().numpy()
        return joints if integer else resample_frames(joints, AIST_FPS, self.fps)

    def joints(self, seq: str) -> np.ndarray:
        return self.joints_from_motion(self.load_motion(seq))

    def keypoints3d(self, seq: str, key: str = "keypoints3d_optim", smpl_scale: bool = True) -> np.ndarray:
        """[T, 17, 3] COCO keypoints at `self.fps`; with smpl_scale divided by smpl_scaling so they
        share the joints' metre frame (world = scaling · J + trans)."""
        kp = load_keypoints3d(self.root / "keypoints3d" / f"{seq}.pkl", key)
        if smpl_scale:
            kp = kp / self.load_motion(seq).scaling
        return resample_frames(kp, AIST_FPS, self.fps).astype(np.float32)

    # music
    def music_path(self, seq: str) -> Path:
        if self.music_dir is None:
            raise ValueError(
                "AISTPP(music_dir=...) is required to read music (it is not in the annotation release)"
            )
        return self.music_dir / f"{music_id(seq)}.wav"

    def bpm(self, seq: str) -> float:
        return music_bpm(music_id(seq))

    def audio(self, seq: str, sample_rate: int) -> np.ndarray:
        """The sequence's music, mono float32 at `sample_rate`."""
        return load_audio(self.music_path(seq), sample_rate)

    def caption(self, seq: str) -> str:
        name = SeqName.parse(seq)
        kind = "basic" if name.situation == "sBM" else "advanced"
        return f"a {kind} {name.genre_name} dance at {self.bpm(seq):g} bpm"
