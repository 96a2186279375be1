"""EDGE's Physical Foot Contact score (PFC), `Stanford-TML/EDGE eval/eval_pfc.py`. Lower is better.

For one sequence of SMPL-24 joints `[S, 24, 3]`, **z-up**, metres, 30 fps (DT = 1/30):

    r'_t = (p_{t+1,root} - p_{t,root}) / DT                       t = 0..S-2
    a_t  = (r'_{t+1} - r'_t) / DT,  a_t,z <- max(a_t,z, 0)         t = 0..S-3
    â_t  = ||a_t|| / max_t ||a_t||
    u_t,f = ||feet_{t+2,f} - feet_{t+1,f}||  (x, y only, no /DT)  feet = (lankle, ltoes, rankle, rtoes)
    score = mean_t  min(u_lankle, u_ltoes) * min(u_rankle, u_rtoes) * â_t

Reported PFC = 10^4 x mean over sequences (`pfc`). The root acceleration is normalised by its
maximum, so DT (i.e. `fps`) cancels: the score depends on the frames, not on the declared rate;
EDGE's numbers are for 30-fps, 5-s clips. A sequence whose clamped root acceleration is 0
everywhere gives 0/0 (NaN) in the published code; here it raises ValueError. The published
script samples 1000 files at random when given more (and crashes: `random` is not imported).

AIST++ / mmgen joints are y-up: convert with `yup_to_zup` first, as EDGE does before FK.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmgen.core.skeleton import SMPL24_FEET
from mmgen.metrics._checks import SMPL_NUM_JOINTS, check_positive, joints_array, sequence_list, to_numpy

PFC_SCALE = 1e4


def yup_to_zup(joints: Any) -> np.ndarray:
    """Rotate y-up positions `[..., 3]` by +90 deg about x: (x, y, z) -> (x, -z, y), as EDGE does.

    EDGE rotates the root orientation and root translation before forward kinematics
    (quaternion [0.7071, 0.7071, 0, 0], pytorch3d `RotateAxisAngle(90, "X")`); rotating the joint
    positions instead differs by a constant offset, which PFC (differences only) ignores.
    """
    p = to_numpy(joints, "joints")
    if p.shape[-1] != 3:
        raise ValueError(f"yup_to_zup: last axis must be xyz (3), got shape {tuple(p.shape)}")
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def pfc_sequence(joints_zup: Any, fps: float = 30.0) -> float:
    """Unscaled PFC of one z-up SMPL-24 sequence `[S, 24, 3]` (S >= 3)."""
    dt = 1.0 / check_positive(fps, "fps")
    p = joints_array(joints_zup, "joints_zup", num_joints=SMPL_NUM_JOINTS, min_frames=3, dtype=np.float64)
    root_v = (p[1:, 0] - p[:-1, 0]) / dt  # [S-1, 3]
    root_a = (root_v[1:] - root_v[:-1]) / dt  # [S-2, 3]
    root_a[:, 2] = np.maximum(root_a[:, 2], 0.0)  # clamp the up (z) component
    root_a = np.linalg.norm(root_a, axis=-1)  # [S-2]
    scale = root_a.max()
    if scale == 0:
        raise ValueError(
            "pfc: the clamped root acceleration is zero on every frame (published code gives NaN)"
        )
    root_a = root_a / scale
    feet = p[:, list(SMPL24_FEET), :2]  # [S, 4, 2] horizontal positions
    foot_v = np.linalg.norm(feet[2:] - feet[1:-1], axis=-1)  # [S-2, 4]
    left = np.minimum(foot_v[:, 0], foot_v[:, 1])
    right = np.minimum(foot_v[:, 2], foot_v[:, 3])
    return float(np.mean(left * right * root_a))


def pfc(joints_zup: Any, fps: float = 30.0) -> float:
    """PFC as EDGE reports it: 10^4 x the mean of `pfc_sequence` over sequences.

    `joints_zup`: one sequence `[S, 24, 3]`, a batch `[N, S, 24, 3]` or a list of sequences.
    """
    if hasattr(joints_zup, "shape") and len(joints_zup.shape) == 3:
        seqs = [joints_zup]
    else:
        seqs = sequence_list(joints_zup, "joints_zup")
    scores = []
    for i, s in enumerate(seqs):
        try:
            scores.append(pfc_sequence(s, fps))
        except ValueError as err:
            raise ValueError(f"sequence {i}: {err}") from None
    return float(PFC_SCALE * np.mean(scores))
