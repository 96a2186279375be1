"""Joint positions -> BVH (hierarchy + per-frame root translation and joint rotations).

BVH stores rotations, positions only imply them. The conversion:

* Offsets (the BVH rest pose) are the bone vectors of the FIRST frame, so frame 0 has all
  rotations zero and bone lengths are those of frame 0 (`bone_lengths="first"`), or frame 0's
  directions with each bone's mean length over the clip (`bone_lengths="mean"`: generated motion,
  whose lengths wobble from frame to frame, then errs by its length wobble, not by frame 0's).
  `solve_rotations(rest=...)` takes any other rest pose (SMPL's template: `mmgen.io.smpl_export`).
* Each joint's global rotation G_j is solved top-down from its parent's G_p:
    - one child c:  G_j = swing(G_p · o_c  ->  p_c - p_j) · G_p, the minimal rotation that turns
      the bone as the parent carries it onto the observed bone direction;
    - several children (pelvis, spine3): the best rigid fit (Kabsch / orthogonal Procrustes) of
      all child bone vectors, which is exact when those children move rigidly with the joint;
    - no child (head, hands, feet): G_j = G_p (their rotation does not move any joint).
  The local rotation written to the file is L_j = G_p^T · G_j as Z, X, Y Euler angles (degrees,
  channel order "Zrotation Xrotation Yrotation", i.e. L = Rz · Rx · Ry).
* Twist ambiguity: a single bone's rotation about its own axis is invisible in positions. The
  swing above takes zero twist relative to the parent, so the file reproduces every joint position
  exactly (for constant bone lengths and rigid multi-child joints) but a skinned mesh driven by it
  shows no forearm/shin twist. Varying bone lengths cannot be represented: the directions are
  kept, the lengths are frame 0's.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mmgen.core.fileio import atomic_path
from mmgen.core.skeleton import SMPL24, Skeleton

_EPS = 1e-9


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotations taking directions a [T, 3] onto b [T, 3] -> [T, 3, 3] (Rodrigues)."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), _EPS)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), _EPS)
    axis = np.cross(a, b)  # [T, 3]
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.clip((a * b).sum(-1), -1.0, 1.0)
    angle = np.arctan2(sin, cos)
    # (anti)parallel directions: any axis perpendicular to a works (angle 0 or pi)
    flat = sin < 1e-9
    if flat.any():
        helper = np.where(np.abs(a[flat, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        axis[flat] = np.cross(a[flat], helper)
    unit = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    rotvec = unit * angle[:, None]
    return Rotation.from_rotvec(rotvec).as_matrix()


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotations R [T, 3, 3] minimising sum_c |R src_c - dst_c|^2 for src, dst [T, C, 3]."""
    h = np.einsum("tci,tcj->tij", src, dst)  # [T, 3, 3] cross-covariance
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.einsum("tij,tjk->tik", vt.transpose(0, 2, 1), u.transpose(0, 2, 1))))
    d = np.where(d == 0, 1.0, d)
    fix = np.stack([np.ones_like(d), np.ones_like(d), d], axis=-1)  # [T, 3]
    return np.einsum("tji,tj,tkj->tik", vt, fix, u)  # V diag(1,1,d) U^T


def _topological_order(parents: tuple[int, ...]) -> list[int]:
    roots = [j for j, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        raise ValueError(f"save_bvh: the skeleton needs exactly one root, found {len(roots)}")
    order, frontier = [], roots
    while frontier:
        order.extend(frontier)
        frontier = [j for j, p in enumerate(parents) if p in frontier]
    if len(order) != len(parents):
        raise ValueError("save_bvh: the skeleton's parents do not form a tree")
    return order


BONE_LENGTHS = ("first", "mean")


def rest_pose(joints: np.ndarray, skeleton: Skeleton = SMPL24, bone_lengths: str = "first") -> np.ndarray:
    """Rest joint positions [J, 3]: frame 0, or frame 0's bone directions with mean bone lengths."""
    joints = np.asarray(joints, dtype=np.float64)
    if bone_lengths not in BONE_LENGTHS:
        raise ValueError(f"bone_lengths must be one of {BONE_LENGTHS}, got {bone_lengths!r}")
    if bone_lengths == "first":
        return joints[0].copy()
    rest = joints[0].copy()
    for j in _topological_order(skeleton.parents):
        p = skeleton.parents[j]
        if p < 0:
            continue
        bone0 = joints[0, j] - joints[0, p]
        length = np.linalg.norm(joints[:, j] - joints[:, p], axis=-1).mean()
        rest[j] = rest[p] + bone0 / max(np.linalg.norm(bone0), _EPS) * length
    return rest


def solve_rotations(
    joints: np.ndarray, skeleton: Skeleton = SMPL24, rest: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets [J, 3] (bone vectors of the rest pose) and local rotations [T, J, 3, 3] that carry the
    rest pose onto `joints` (exactly, for the rest pose's bone lengths; see the module docstring).

    `rest` [J, 3]: rest joint positions (default: frame 0 of `joints`)."""
    joints = np.asarray(joints, dtype=np.float64)
    parents = skeleton.parents
    order = _topological_order(parents)
    children = {j: [c for c, p in enumerate(parents) if p == j] for j in range(len(parents))}
    rest = joints[0] if rest is None else np.asarray(rest, dtype=np.float64)
    if rest.shape != (len(parents), 3) or not np.isfinite(rest).all():
        raise ValueError(f"solve_rotations: rest must be finite [{len(parents)}, 3], got {rest.shape}")
    offsets = np.zeros((len(parents), 3))
    for j, p in enumerate(parents):
        if p >= 0:
            offsets[j] = rest[j] - rest[p]
    num_frames = joints.shape[0]
    eye = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    glob = np.zeros((num_frames, len(parents), 3, 3))
    local = np.zeros_like(glob)
    for j in order:
        g_par = glob[:, parents[j]] if parents[j] >= 0 else eye
        kids = [c for c in children[j] if np.linalg.norm(offsets[c]) > 1e-8]
        if not kids:
            g = g_par
        elif len(kids) == 1:
            carried = np.einsum("tij,j->ti", g_par, offsets[kids[0]])  # [T, 3]
            g = np.einsum("tij,tjk->tik", _swing(carried, joints[:, kids[0]] - joints[:, j]), g_par)
        else:
            carried = np.einsum("tij,cj->tci", g_par, offsets[kids])  # [T, C, 3]
            observed = joints[:, kids] - joints[:, j : j + 1]  # [T, C, 3]
            g = np.einsum("tij,tjk->tik", _kabsch(carried, observed), g_par)
        glob[:, j] = g
        local[:, j] = np.einsum("tji,tjk->tik", g_par, g)  # G_p^T G_j
    return offsets, local


def save_bvh(
    path: str | os.PathLike,
    joints: np.ndarray,
    fps: float,
    skeleton: Skeleton = SMPL24,
    scale: float = 100.0,
    bone_lengths: str = "first",
) -> Path:
    """Write joint positions [T, J, 3] (metres) as a BVH file (see the module docstring).

    `scale` converts metres to the file's units; BVH files are conventionally in centimetres (100;
    Blender's importer then needs its scale set to 0.01 for metres). Leaf joints are written as
    joints (keeping their names) followed by an End Site that continues their bone by half its length.
    `bone_lengths`: "first" (frame 0's) or "mean" (each bone's mean over the clip).
    """
    joints = np.asarray(joints, dtype=np.float64)
    skeleton.check_joints(joints, f"save_bvh({path}) joints")
    if joints.ndim != 3 or joints.shape[0] == 0:
        raise ValueError(f"save_bvh({path}): joints must be [T, J, 3] with T > 0, got {joints.shape}")
    if not fps > 0 or not scale > 0:
        raise ValueError(f"save_bvh({path}): fps and scale must be positive, got fps={fps}, scale={scale}")
    offsets, local = solve_rotations(joints, skeleton, rest_pose(joints, skeleton, bone_lengths))
    parents = skeleton.parents
    children = {j: [c for c, p in enumerate(parents) if p == j] for j in range(len(parents))}
    root = parents.index(-1)

    lines = ["HIERARCHY"]
    channel_order: list[int] = []

    def write_joint(j: int, depth: int) -> None:
        pad = "  " * depth
        kind = "ROOT" if j == root else "JOINT"
        off = np.zeros(3) if j == root else offsets[j] * scale
        lines.extend(
            [
                f"{pad}{kind} {skeleton.joint_names[j]}",
                f"{pad}{{",
                f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}",
            ]
        )
        if j == root:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
        channel_order.append(j)
        if children[j]:
            for c in children[j]:
                write_joint(c, depth + 1)
        else:
            end = offsets[j] * scale * 0.5
            lines.extend(
                [
                    f"{pad}  End Site",
                    f"{pad}  {{",
                    f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}",
                    f"{pad}  }}",
                ]
            )
        lines.append(f"{pad}}}")

    write_joint(root, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: the angles still compose to L
        euler = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_euler("ZXY", degrees=True)
    euler = euler.reshape(joints.shape[0], len(parents), 3)[:, channel_order]  # [T, J, 3] in file order
    motion = np.concatenate([joints[:, root] * scale, euler.reshape(joints.shape[0], -1)], axis=1)
    lines.extend(["MOTION", f"Frames: {joints.shape[0]}", f"Frame Time: {1.0 / fps:.8f}"])
    lines.extend(" ".join(f"{v:.6f}" for v in row) for row in motion)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)
