"""Joint positions -> SMPL pose parameters by inverse kinematics, in the AIST++ / EDGE file layout.

SMPL's forward kinematics (betas = 0, what `mmgen.data.smpl_fk` and smplx compute):

    p_0 = J_0 + transl                        the root joint is not moved by its own rotation
    p_j = p_parent + G_parent (J_j - J_parent)    G_j = G_parent R_j,  G_root = R_root

with J the model's rest joints (`J_regressor @ v_template`) and R_j = exp(poses[3j : 3j + 3]).
The inverse solves the global rotations top-down exactly as `mmgen.io.bvh.solve_rotations` does,
but from SMPL's rest pose instead of the clip's first frame: a joint with one child swings the rest
bone onto the observed direction (zero twist about the bone), a joint with several children (pelvis,
spine3) takes the best rigid fit of its child bones (Kabsch), a leaf (head, feet, hands) keeps its
parent's rotation. Then R_j = G_parent^T G_j as axis-angle, global orient = R_root and
transl = p_0 - J_0.

What comes back through SMPL FK: every bone's direction (exactly, for single-child joints; as the
rigid best fit at the pelvis and spine3), SMPL's bone lengths instead of the clip's. Joints that were
made by SMPL FK from the same rest joints therefore round-trip exactly; joints of another skeleton
(a generated dance, ToyDance) come back with SMPL's proportions. Twist about a bone is not in joint
positions, so a skinned SMPL mesh shows none (forearms, shins).

The rest joints: pass the SMPL model the parameters are meant for (`smpl_dir`, the same files
`mmgen preprocess aistpp` uses; licensed, never shipped), else mmgen's approximate SMPL template
`SMPL24_REST` is used and the file records that (`rest_joints` key).

File (`save_smpl`): a pickle of a dict of numpy arrays, as AIST++ `motions/<seq>.pkl` and EDGE's
`--save_motions` outputs are read:

    smpl_poses    [T, 72] float32  axis-angle, joint 0 = global orient (SMPL joint order)
    smpl_trans    [T, 3]  float32  root translation, metres
    smpl_scaling  [1]     float32  1.0: AIST++'s convention joints = FK(poses, trans / scaling) holds
    rest_joints   [24, 3] float32  the rest joints the inverse used
    fps           float

Axes: y-up as AIST++ (EDGE's own outputs are rotated to z-up; rotate before comparing with those).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mmgen.core.fileio import atomic_path
from mmgen.core.skeleton import SMPL24, SMPL24_REST
from mmgen.io.bvh import solve_rotations


@dataclass(frozen=True)
class SMPLParams:
    """SMPL pose parameters of one clip (AIST++ naming): poses [T, 72], trans [T, 3], scaling."""

    poses: np.ndarray
    trans: np.ndarray
    rest_joints: np.ndarray
    fps: float
    scaling: float = 1.0

    def as_dict(self) -> dict[str, np.ndarray]:
        return {
            "smpl_poses": self.poses.astype(np.float32),
            "smpl_trans": self.trans.astype(np.float32),
            "smpl_scaling": np.array([self.scaling], dtype=np.float32),
            "rest_joints": self.rest_joints.astype(np.float32),
            "fps": np.float32(self.fps),
        }


def smpl_rest_joints(smpl_dir: str | os.PathLike | None = None, gender: str = "male") -> np.ndarray:
    """Rest joints [24, 3] of the SMPL model in `smpl_dir` (betas 0), or mmgen's approximate template."""
    if smpl_dir is None:
        return (SMPL24_REST - SMPL24_REST[0]).astype(np.float64)  # the template, pelvis at the origin
    from mmgen.data.smpl_fk import SMPLForwardKinematics

    return SMPLForwardKinematics(smpl_dir, gender=gender).rest_joints.double().cpu().numpy()


def joints_to_smpl(
    joints: np.ndarray, fps: float, rest_joints: np.ndarray | None = None
) -> SMPLParams:
    """SMPL parameters whose FK (with `rest_joints`, default `smpl_rest_joints()`) gives `joints`'
    bone directions (see the module docstring). `joints`: [T, 24, 3] SMPL-24, metres, y-up."""
    joints = np.asarray(joints, dtype=np.float64)
    SMPL24.check_joints(joints, "joints_to_smpl: joints")
    if joints.ndim != 3 or joints.shape[0] == 0:
        raise ValueError(f"joints_to_smpl: joints must be [T, 24, 3] with T > 0, got {joints.shape}")
    if not fps > 0:
        raise ValueError(f"joints_to_smpl: fps must be positive, got {fps}")
    rest = smpl_rest_joints() if rest_joints is None else np.asarray(rest_joints, dtype=np.float64)
    _, local = solve_rotations(joints, SMPL24, rest)  # [T, 24, 3, 3]
    num_frames = joints.shape[0]
    poses = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(num_frames, 72)
    trans = joints[:, 0] - rest[0]  # [T, 3]
    return SMPLParams(poses=poses, trans=trans, rest_joints=rest, fps=float(fps))


def smpl_forward(params: SMPLParams) -> np.ndarray:
    """SMPL joint positions [T, 24, 3] of `params` with its own rest joints (numpy FK, betas 0)."""
    rot = Rotation.from_rotvec(params.poses.reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3)
    rest = params.rest_joints
    glob = np.zeros_like(rot)
    pos = np.zeros((rot.shape[0], 24, 3))
    for j, p in enumerate(SMPL24.parents):  # parents come before children in SMPL order
        if p < 0:
            glob[:, j] = rot[:, j]
            pos[:, j] = rest[j] + params.trans / params.scaling
        else:
            glob[:, j] = glob[:, p] @ rot[:, j]
            pos[:, j] = pos[:, p] + glob[:, p] @ (rest[j] - rest[p])
    return pos


def save_smpl(path: str | os.PathLike, params: SMPLParams) -> Path:
    """Write `params` as an AIST++ / EDGE style pickle (a dict of numpy arrays), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(params.as_dict(), protocol=4))
    return Path(path)
