"""Skeleton definitions: joint names, kinematic trees and drawing edges.

SMPL-24 is mmgen's canonical 3-D skeleton (AIST++ and every dance-generation paper use it):
y-up, metres. COCO-17 is the keypoint layout of AIST++'s `keypoints3d` and of 2-D pose sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree: `parents[j]` is the parent of joint j (-1 for the root)."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.joint_names) != len(self.parents):
            raise ValueError(f"{self.name}: {len(self.joint_names)} names but {len(self.parents)} parents")

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def bones(self) -> list[tuple[int, int]]:
        """(parent, child) pairs: the lines of a stick figure."""
        return [(p, j) for j, p in enumerate(self.parents) if p >= 0]

    def index(self, name: str) -> int:
        return self.joint_names.index(name)

    def check_joints(self, joints: np.ndarray, what: str = "joints", dims: int = 3) -> None:
        """Raise ValueError unless `joints` is [..., J, dims] with this skeleton's J and finite values."""
        if joints.ndim < 2 or joints.shape[-2:] != (self.num_joints, dims):
            raise ValueError(
                f"{what}: expected shape [..., {self.num_joints}, {dims}] for the {self.name} skeleton, "
                f"got {tuple(joints.shape)}"
            )
        if not np.isfinite(np.asarray(joints)).all():
            raise ValueError(f"{what}: contains NaN or infinite values")


SMPL24 = Skeleton(
    name="smpl24",
    joint_names=(
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
        "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
        "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
    ),
    parents=(-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21),
)

# SMPL joints used by EDGE's foot-contact logic: (left ankle, left toes, right ankle, right toes)
SMPL24_FEET = (7, 10, 8, 11)

# Approximate joint positions of the SMPL neutral template in T-pose (metres, y-up, +x = the body's
# left). Used as the rest pose of synthetic skeletons; real SMPL data goes through smplx instead.
SMPL24_REST = np.array(
    [
        [0.000, 0.000, 0.000], [0.070, -0.090, -0.005], [-0.070, -0.090, -0.005], [-0.003, 0.110, -0.027],
        [0.105, -0.460, 0.002], [-0.102, -0.460, -0.004], [0.004, 0.245, -0.001], [0.090, -0.860, -0.043],
        [-0.090, -0.860, -0.046], [0.004, 0.300, 0.000], [0.120, -0.915, 0.081], [-0.118, -0.917, 0.085],
        [-0.012, 0.520, -0.023], [0.073, 0.425, -0.008], [-0.081, 0.424, -0.012], [0.010, 0.590, 0.025],
        [0.165, 0.466, -0.020], [-0.152, 0.463, -0.027], [0.420, 0.444, -0.051], [-0.422, 0.442, -0.054],
        [0.678, 0.445, -0.058], [-0.678, 0.444, -0.060], [0.760, 0.439, -0.074], [-0.762, 0.440, -0.077],
    ],
    dtype=np.float32,
)
SMPL24_REST[:, 1] += 0.95  # pelvis height above the floor when standing

COCO17 = Skeleton(
    name="coco17",
    joint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    # not a true kinematic tree (COCO has no root); parents chosen so that `bones` draws the usual figure
    parents=(-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
)

SKELETONS = {s.name: s for s in (SMPL24, COCO17)}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton {name!r}; known: {sorted(SKELETONS)}") from None
