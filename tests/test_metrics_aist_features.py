"""AIST++ API kinetic / geometric features: hand-computed cases and a frame-by-frame loop reference."""

import numpy as np
import pytest

from mmgen.core.skeleton import SMPL24_REST
from mmgen.metrics import geometric_features, kinetic_features
from mmgen.metrics.aist_features import AIST_JOINTS, HUMERUS

J = {n: i for i, n in enumerate(AIST_JOINTS)}


def random_motion(t=14, seed=0):
    rng = np.random.default_rng(seed)
    return SMPL24_REST[None].astype(np.float64) + np.cumsum(rng.normal(0, 0.02, (t, 24, 3)), axis=0)


# ---------------------------------------------------------------- kinetic


def kinetic_loop(p, ft=1 / 60, w=2, quirk=True):
    """Frame-by-frame reference written from the published formulas."""
    t_len = len(p)
    out = []
    for j in range(p.shape[1]):
        ke_h = ke_v = ee = 0.0
        for i in range(1, t_len):
            v, n = np.zeros(3), 0
            for k in range(-w, w + 1):
                if i + k - 1 >= 0 and i + k < t_len:
                    v += p[i + k, j] - p[i + k - 1, j]
                    n += 1
            v = v / (n * ft)
            ke_h += v[0] ** 2 + v[2] ** 2
            ke_v += v[1] ** 2
            a, n = np.zeros(3), 0
            for k in range(-w, w + 1):
                if i + k - 1 >= 0 and i + k + 1 < t_len:
                    v2 = (p[i + k + 1, j] - p[i + k, j]) / ft
                    v1 = p[i + k, j] - p[i + k - 1, j] / ft if quirk else (p[i + k, j] - p[i + k - 1, j]) / ft
                    a += (v2 - v1) / ft
                    n += 1
            ee += np.linalg.norm(a / n)
        out += [ke_h / (t_len - 1), ke_v / (t_len - 1), ee / (t_len - 1)]
    return np.array(out)


@pytest.mark.parametrize("quirk", [True, False])
def test_kinetic_matches_loop_reference(quirk):
    p = random_motion()
    got = kinetic_features(p, acceleration_quirk=quirk)
    assert got.shape == (72,) and got.dtype == np.float32
    np.testing.assert_allclose(got, kinetic_loop(p, quirk=quirk), rtol=2e-6)


def test_kinetic_hand_computed():
    # constant velocity v (m/s): windowed velocity is v everywhere; the true acceleration is 0
    v = np.array([0.3, -0.4, 1.2])
    p = SMPL24_REST[None].astype(np.float64) + np.arange(10)[:, None, None] * v / 60  # [10, 24, 3]
    k = kinetic_features(p, acceleration_quirk=False).reshape(24, 3)
    np.testing.assert_allclose(k[:, 0], 0.3**2 + 1.2**2, rtol=1e-6)  # horizontal: x, z (y is up)
    np.testing.assert_allclose(k[:, 1], 0.4**2, rtol=1e-6)
    np.testing.assert_allclose(k[:, 2], 0.0, atol=1e-3)
    # the published quirk: a static joint at c has v1 = c - c * 60, so EE = ||c|| * 59 * 60
    c = np.array([0.1, 0.2, -0.2])
    still = np.broadcast_to(c, (10, 24, 3)).copy()
    q = kinetic_features(still).reshape(24, 3)
    np.testing.assert_allclose(q[:, 2], 59 * 60 * np.linalg.norm(c), rtol=1e-6)
    np.testing.assert_allclose(q[:, :2], 0.0)


def test_kinetic_bad_input():
    with pytest.raises(ValueError, match="at least 3 frames"):
        kinetic_features(np.zeros((2, 24, 3)))
    with pytest.raises(ValueError, match=r"\[T, 24, 3\]"):
        kinetic_features(np.zeros((10, 22, 3)))
    with pytest.raises(ValueError, match="NaN"):
        kinetic_features(np.full((10, 24, 3), np.nan))


# ---------------------------------------------------------------- geometric

HL = HUMERUS
SW = np.linalg.norm(
    np.array([0.199113488, 0.236807942, -0.0180702247]) - np.array([-0.191692337, 0.236928746, -0.0123055102])
)
HW = np.linalg.norm(
    np.array([0.0564076714, -0.323069185, 0.0109197125])
    - np.array([-0.0624834076, -0.331302464, 0.0150412619])
)

# (kind, joints..., threshold or (lo, hi)) in published order; "move" lists the published 4 joints
TABLE = [
    ("nmove", "neck", "rhip", "lhip", "rwrist", 1.8 * HL),
    ("nmove", "neck", "lhip", "rhip", "lwrist", 1.8 * HL),
    ("nplane", "chest", "neck", "neck", "rwrist", 0.2 * HL),
    ("nplane", "chest", "neck", "neck", "lwrist", 0.2 * HL),
    ("move", "belly", "chest", "chest", "rwrist", 1.8 * HL),
    ("move", "belly", "chest", "chest", "lwrist", 1.8 * HL),
    ("angle", "relbow", "rshoulder", "relbow", "rwrist", (0, 110)),
    ("angle", "lelbow", "lshoulder", "lelbow", "lwrist", (0, 110)),
    ("nplane", "lshoulder", "rshoulder", "lwrist", "rwrist", 2.5 * SW),
    ("move", "lwrist", "rwrist", "rwrist", "lwrist", 1.4 * HL),
    ("move", "rwrist", "root", "lwrist", "root", 1.4 * HL),
    ("move", "lwrist", "root", "rwrist", "root", 1.4 * HL),
    ("fast", "rwrist", 2.5 * HL),
    ("fast", "lwrist", 2.5 * HL),
    ("plane", "root", "lhip", "ltoes", "rankle", 0.38 * HL),
    ("plane", "root", "rhip", "rtoes", "lankle", 0.38 * HL),
    ("nplane", "zero", "y_unit", "y_min", "rankle", 1.2 * HL),
    ("nplane", "zero", "y_unit", "y_min", "lankle", 1.2 * HL),
    ("nplane", "lhip", "rhip", "lankle", "rankle", 2.1 * HW),
    ("angle", "rknee", "rhip", "rknee", "rankle", (0, 110)),
    ("angle", "lknee", "lhip", "lknee", "lankle", (0, 110)),
    ("fast", "rankle", 2.5 * HL),
    ("fast", "lankle", 2.5 * HL),
    ("angle", "neck", "root", "rshoulder", "relbow", (25, 180)),
    ("angle", "neck", "root", "lshoulder", "lelbow", (25, 180)),
    ("angle", "neck", "root", "rhip", "rknee", (50, 180)),
    ("angle", "neck", "root", "lhip", "lknee", (50, 180)),
    ("plane", "rankle", "neck", "lankle", "root", 0.5 * HL),
    ("angle", "neck", "root", "zero", "y_unit", (70, 110)),
    ("nplane", "zero", "minus_y_unit", "y_min", "rwrist", -1.2 * HL),
    ("nplane", "zero", "minus_y_unit", "y_min", "lwrist", -1.2 * HL),
    ("fast", "root", 2.3 * HL),
]


def geometric_loop(p, tpf=1 / 120):
    def pos(name, f):
        special = {
            "zero": [0, 0, 0],
            "y_unit": [0, 1, 0],
            "minus_y_unit": [0, -1, 0],
            "y_min": [0, p[f, :, 1].min(), 0],
        }
        return np.array(special[name], float) if name in special else p[f, J[name]]

    rows = []
    for f in range(1, len(p)):
        row = []
        for kind, *args in TABLE:
            a = [pos(n, f) for n in args[:-1]]
            thr = args[-1]
            with np.errstate(invalid="ignore", divide="ignore"):
                if (
                    kind == "move"
                ):  # published: velocity of the 3rd joint relative to the 1st along 1st -> 2nd
                    vel = (a[2] - a[0]) - (pos(args[2], f - 1) - pos(args[0], f - 1))
                    d = a[1] - a[0]
                    row.append(np.dot(vel, d) / np.linalg.norm(d) / tpf > thr)
                elif kind == "nmove":
                    vel = (a[3] - a[0]) - (pos(args[3], f - 1) - pos(args[0], f - 1))
                    d = np.cross(a[2] - a[0], a[1] - a[0])
                    row.append(np.dot(vel, d) / np.linalg.norm(d) / tpf > thr)
                elif kind == "plane":
                    d = np.cross(a[2] - a[0], a[1] - a[0])
                    row.append(np.dot(d, a[3] - a[0]) / np.linalg.norm(d) > thr)
                elif kind == "nplane":
                    d = a[1] - a[0]
                    row.append(np.dot(d, a[3] - a[2]) / np.linalg.norm(d) > thr)
                elif kind == "angle":
                    u, w = a[1] - a[0], a[3] - a[2]
                    ang = np.degrees(np.arccos(np.dot(u, w) / (np.linalg.norm(u) * np.linalg.norm(w))))
                    row.append(thr[0] < ang < thr[1])
                else:  # fast
                    row.append(np.linalg.norm(a[0] - pos(args[0], f - 1)) / tpf > thr)
        rows.append(row)
    return np.array(rows, dtype=np.float32).mean(axis=0)


def test_geometric_matches_loop_reference():
    assert len(TABLE) == 32
    for seed in range(3):
        p = random_motion(t=12, seed=seed)
        p[:, :, :] += np.random.default_rng(seed).normal(0, 0.05, p.shape)  # fast, varied poses
        got = geometric_features(p)
        assert got.shape == (32,) and got.dtype == np.float32
        np.testing.assert_array_equal(got, geometric_loop(p))


def test_geometric_hand_cases():
    still = np.repeat(SMPL24_REST[None].astype(np.float64), 9, axis=0)  # T-pose, y-up, 9 frames
    g = geometric_features(still)
    velocity_features = [0, 1, 4, 5, 9, 10, 11, 12, 13, 21, 22, 31]
    np.testing.assert_array_equal(g[velocity_features], 0.0)
    assert g[23] == 1.0 and g[24] == 1.0  # neck->root (down) vs shoulder->elbow (sideways): 90 deg
    assert g[6] == 0.0 and g[19] == 0.0  # straight elbow / knee: ~180 deg, outside (0, 110)
    assert g[8] == 1.0  # wrists 1.36 m apart along the shoulder line > 2.5 shoulder widths
    # y_min predicates: right ankle lifted 0.5 m above the lowest joint; right wrist 10 cm above it
    pose = still.copy()
    pose[:, J["rankle"], 1] += 0.5
    pose[:, J["rwrist"], 1] = still[0, :, 1].min() + 0.1
    g = geometric_features(pose)
    assert (g[16], g[17], g[29], g[30]) == (1.0, 0.0, 1.0, 0.0)
    # right wrist moves 1 cm per frame on 4 of 8 steps: fast(rwrist) needs > 2.5 * HL / 120 = 5.3 mm
    moving = still.copy()
    moving[1:5, J["rwrist"], 2] += 0.01 * np.arange(1, 5)[:, None].ravel()
    moving[5:, J["rwrist"], 2] += 0.04
    assert geometric_features(moving)[12] == pytest.approx(0.5)
    # a global translation changes nothing (y_min follows the body)
    np.testing.assert_array_equal(
        geometric_features(moving + np.array([3.0, 10.0, -2.0])), geometric_features(moving)
    )
