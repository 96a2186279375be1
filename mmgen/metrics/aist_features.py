"""AIST++ API motion features: kinetic (72-d) and geometric / "manual" (32-d), from 24 SMPL joints.

Re-implemented (vectorised) from google/aistplusplus_api `aist_plusplus/features/{kinetic,manual,utils}.py`,
the code FACT/mint `calculate_fid_scores.py` and Bailando `utils/metrics_new.py` (`features/kinetic.py`,
`features/manual_new.py`) run. Input: positions `[T, 24, 3]` in SMPL joint order, metres, **y-up**,
60 fps in the published evaluations.

Kinetic (per joint, in joint order: [horizontal KE, vertical KE, energy expenditure] -> 72 values):
    v_i = (1 / (n_i * ft)) * sum_{k in W_i} (p_k - p_{k-1}),  W_i = [max(1, i-2), min(T-1, i+2)]
    KE_h = mean_{i=1..T-1} ||v_i[x, z]||^2,  KE_v = mean_i |v_i[y]|^2
    a_m = ((p_{m+1} - p_m) / ft - v1_m) / ft,  m in [max(1, i-2), min(T-2, i+2)]
    EE = mean_{i=1..T-1} || mean_m a_m ||
with ft = 1 / fps (the published 1/60). Published quirk, reproduced by default
(`acceleration_quirk=True`): operator precedence makes v1_m = p_m - p_{m-1} / ft instead of
(p_m - p_{m-1}) / ft, so EE depends on absolute positions - one reason Bailando "zero-starts" the
motion. The fix is an unmerged PR in both repos (aistplusplus_api#33, Bailando#28).

Geometric: 32 boolean Müller-style predicates per frame t = 1..T-1 (previous frame t-1 for
velocities), averaged over frames. Thresholds scale with the humerus length, shoulder width and hip
width of a fixed template skeleton; velocities are displacement / time_per_frame with the published
time_per_frame = 1/120 at 60 fps (here 1 / (2 fps), the same at 60 fps). This is the fixed
aistplusplus_api version (24 joint names, corrected template), not the fairmotion-era one FACT's paper
used (wrong template values and a 22-name joint list). Published quirks kept: `f_move` ignores its
4th joint (the moving point is the 3rd), and a predicate with a zero-length direction is False
(NaN comparison).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmgen.metrics._checks import SMPL_NUM_JOINTS, check_positive, joints_array

AIST_JOINTS = (
    "root", "lhip", "rhip", "belly", "lknee", "rknee", "spine", "lankle", "rankle", "chest", "ltoes", "rtoes",
    "neck", "linshoulder", "rinshoulder", "head", "lshoulder", "rshoulder", "lelbow", "relbow", "lwrist",
    "rwrist", "lhand", "rhand",
)  # fmt: skip
_J = {name: i for i, name in enumerate(AIST_JOINTS)}

# Template-skeleton lengths of the fixed manual.py (metres).
_TEMPLATE_LSHOULDER = np.array([1.99113488e-01, 2.36807942e-01, -1.80702247e-02])
_TEMPLATE_LELBOW = np.array([4.54445392e-01, 2.21158922e-01, -4.10167128e-02])
_TEMPLATE_RSHOULDER = np.array([-1.91692337e-01, 2.36928746e-01, -1.23055102e-02])
_TEMPLATE_LHIP = np.array([5.64076714e-02, -3.23069185e-01, 1.09197125e-02])
_TEMPLATE_RHIP = np.array([-6.24834076e-02, -3.31302464e-01, 1.50412619e-02])
HUMERUS = float(np.linalg.norm(_TEMPLATE_LSHOULDER - _TEMPLATE_LELBOW))
SHOULDER_WIDTH = float(np.linalg.norm(_TEMPLATE_LSHOULDER - _TEMPLATE_RSHOULDER))
HIP_WIDTH = float(np.linalg.norm(_TEMPLATE_LHIP - _TEMPLATE_RHIP))

KINETIC_DIM = 72
GEOMETRIC_DIM = 32


def _window_sums(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """sum_{k=lo_i}^{hi_i} x[k] for every i, via a cumulative sum. x: [N, ...], lo/hi: [I] with lo >= 1."""
    c = np.cumsum(x, axis=0)  # [N, ...]
    return c[hi] - c[lo - 1]


def kinetic_features(
    joints: Any, fps: float = 60.0, window: int = 2, acceleration_quirk: bool = True
) -> np.ndarray:
    """72-d kinetic features (float32) of one y-up SMPL-24 sequence `[T, 24, 3]`, T >= 3."""
    ft = 1.0 / check_positive(fps, "fps")
    p = joints_array(joints, num_joints=SMPL_NUM_JOINTS, min_frames=3, dtype=np.float64)
    t_len = p.shape[0]
    i = np.arange(1, t_len)  # frames 1..T-1
    disp = np.zeros_like(p)  # [T, J, 3], disp[k] = p[k] - p[k-1]
    disp[1:] = p[1:] - p[:-1]
    lo, hi = np.maximum(1, i - window), np.minimum(t_len - 1, i + window)
    vel = _window_sums(disp, lo, hi) / ((hi - lo + 1)[:, None, None] * ft)  # [T-1, J, 3]
    ke_h = np.sum(vel[..., [0, 2]] ** 2, axis=-1).mean(axis=0)  # [J]  (y is up)
    ke_v = (vel[..., 1] ** 2).mean(axis=0)  # [J]

    m = np.arange(1, t_len - 1)  # acceleration terms m = 1..T-2
    v2 = (p[m + 1] - p[m]) / ft
    v1 = p[m] - p[m - 1] / ft if acceleration_quirk else (p[m] - p[m - 1]) / ft
    acc = np.zeros_like(p)  # [T, J, 3], acc[m] for m = 1..T-2
    acc[m] = (v2 - v1) / ft
    lo, hi = np.maximum(1, i - window), np.minimum(t_len - 2, i + window)
    mean_acc = _window_sums(acc, lo, hi) / (hi - lo + 1)[:, None, None]  # [T-1, J, 3]
    energy = np.linalg.norm(mean_acc, axis=-1).mean(axis=0)  # [J]
    return np.stack([ke_h, ke_v, energy], axis=1).reshape(-1).astype(np.float32)  # [J * 3]


class _Frames:
    """Current (t = 1..T-1) and previous (t-1) positions plus the pseudo-joints of manual.py."""

    def __init__(self, p: np.ndarray) -> None:
        self.cur, self.prev = p[1:], p[:-1]  # [F, J, 3]
        f = self.cur.shape[0]
        y_min = np.zeros((f, 3))
        y_min[:, 1] = self.cur[:, :, 1].min(axis=1)  # lowest joint height of the current frame
        unit_y = np.broadcast_to(np.array([0.0, 1.0, 0.0]), (f, 3))
        self.pseudo = {"zero": np.zeros((f, 3)), "y_unit": unit_y, "minus_y_unit": -unit_y, "y_min": y_min}

    def __call__(self, name: str) -> np.ndarray:
        return self.pseudo[name] if name in self.pseudo else self.cur[:, _J[name]]

    def prev_of(self, name: str) -> np.ndarray:
        return self.prev[:, _J[name]]


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1)


def _norm(a: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a, axis=-1)


def geometric_features(joints: Any, fps: float = 60.0) -> np.ndarray:
    """32-d geometric ("manual") features (float32) of one y-up SMPL-24 sequence `[T, 24, 3]`, T >= 2."""
    tpf = 1.0 / (2.0 * check_positive(fps, "fps"))  # published time_per_frame = 1/120 at 60 fps
    p = joints_array(joints, num_joints=SMPL_NUM_JOINTS, min_frames=2, dtype=np.float64)
    fr = _Frames(p)
    hl, sw, hw = HUMERUS, SHOULDER_WIDTH, HIP_WIDTH

    def move(j1: str, j2: str, j3: str, thr: float) -> np.ndarray:
        # velocity of j3 relative to j1, along j1 -> j2 (the published f_move ignores its 4th joint)
        vel = (fr(j3) - fr(j1)) - (fr.prev_of(j3) - fr.prev_of(j1))
        direction = fr(j2) - fr(j1)
        return _dot(vel, direction) / _norm(direction) / tpf > thr

    def nmove(j1: str, j2: str, j3: str, j4: str, thr: float) -> np.ndarray:
        # velocity of j4 relative to j1, along the normal of the plane (j1, j2, j3)
        vel = (fr(j4) - fr(j1)) - (fr.prev_of(j4) - fr.prev_of(j1))
        normal = np.cross(fr(j3) - fr(j1), fr(j2) - fr(j1))
        return _dot(vel, normal) / _norm(normal) / tpf > thr

    def plane(j1: str, j2: str, j3: str, j4: str, thr: float) -> np.ndarray:
        # signed distance of j4 from the plane through j1, j2, j3
        normal = np.cross(fr(j3) - fr(j1), fr(j2) - fr(j1))
        return _dot(normal, fr(j4) - fr(j1)) / _norm(normal) > thr

    def nplane(j1: str, j2: str, j3: str, j4: str, thr: float) -> np.ndarray:
        # signed distance of j4 from the plane through j3 with normal j1 -> j2
        normal = fr(j2) - fr(j1)
        return _dot(normal, fr(j4) - fr(j3)) / _norm(normal) > thr

    def angle(j1: str, j2: str, j3: str, j4: str, lo: float, hi: float) -> np.ndarray:
        a, b = fr(j2) - fr(j1), fr(j4) - fr(j3)
        deg = np.degrees(np.arccos(_dot(a, b) / (_norm(a) * _norm(b))))  # NaN (-> False) if out of [-1, 1]
        return (deg > lo) & (deg < hi)

    def fast(j: str, thr: float) -> np.ndarray:
        return _norm(fr(j) - fr.prev_of(j)) / tpf > thr

    with np.errstate(invalid="ignore", divide="ignore"):
        feats = [
            nmove("neck", "rhip", "lhip", "rwrist", 1.8 * hl),
            nmove("neck", "lhip", "rhip", "lwrist", 1.8 * hl),
            nplane("chest", "neck", "neck", "rwrist", 0.2 * hl),
            nplane("chest", "neck", "neck", "lwrist", 0.2 * hl),
            move(
                "belly", "chest", "chest", 1.8 * hl
            ),  # published args: ("belly", "chest", "chest", "rwrist")
            move(
                "belly", "chest", "chest", 1.8 * hl
            ),  # published args: ("belly", "chest", "chest", "lwrist")
            angle("relbow", "rshoulder", "relbow", "rwrist", 0, 110),
            angle("lelbow", "lshoulder", "lelbow", "lwrist", 0, 110),
            nplane("lshoulder", "rshoulder", "lwrist", "rwrist", 2.5 * sw),
            move("lwrist", "rwrist", "rwrist", 1.4 * hl),  # 4th published arg "lwrist" unused
            move("rwrist", "root", "lwrist", 1.4 * hl),  # 4th published arg "root" unused
            move("lwrist", "root", "rwrist", 1.4 * hl),  # 4th published arg "root" unused
            fast("rwrist", 2.5 * hl),
            fast("lwrist", 2.5 * hl),
            plane("root", "lhip", "ltoes", "rankle", 0.38 * hl),
            plane("root", "rhip", "rtoes", "lankle", 0.38 * hl),
            nplane("zero", "y_unit", "y_min", "rankle", 1.2 * hl),
            nplane("zero", "y_unit", "y_min", "lankle", 1.2 * hl),
            nplane("lhip", "rhip", "lankle", "rankle", 2.1 * hw),
            angle("rknee", "rhip", "rknee", "rankle", 0, 110),
            angle("lknee", "lhip", "lknee", "lankle", 0, 110),
            fast("rankle", 2.5 * hl),
            fast("lankle", 2.5 * hl),
            angle("neck", "root", "rshoulder", "relbow", 25, 180),
            angle("neck", "root", "lshoulder", "lelbow", 25, 180),
            angle("neck", "root", "rhip", "rknee", 50, 180),
            angle("neck", "root", "lhip", "lknee", 50, 180),
            plane("rankle", "neck", "lankle", "root", 0.5 * hl),
            angle("neck", "root", "zero", "y_unit", 70, 110),
            nplane("zero", "minus_y_unit", "y_min", "rwrist", -1.2 * hl),
            nplane("zero", "minus_y_unit", "y_min", "lwrist", -1.2 * hl),
            fast("root", 2.3 * hl),
        ]
    return np.stack(feats, axis=1).astype(np.float32).mean(axis=0)  # [32]
