"""Motion beats and Beat Align Score: hand-built speed envelopes with known minima, hand-computed scores."""

import math

import numpy as np
import pytest
import torch

from mmgen.metrics import bas, mean_bas, motion_beats, motion_envelope, motion_tempo


def joints_from_speeds(speeds, num_joints=2):
    """Joints moving along +x whose per-step speed is exactly speeds[t] (frame t -> t+1)."""
    x = np.concatenate([[0.0], np.cumsum(speeds)])  # [T]
    p = np.zeros((len(x), num_joints, 3))
    p[:, :, 0] = x[:, None]
    p[:, 1, 1] = 1.0  # second joint offset, same motion
    return p


def cosine_speeds(n, period=20):
    t = np.arange(n)
    return 1.0 + np.cos(2 * np.pi * t / period)  # minima at t = 10, 30, 50, ...


def gaussian_smooth_reflect(x, sigma):
    """Independent 1-D gaussian smoothing: radius int(4 sigma + 0.5), half-sample symmetric padding."""
    r = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    xp = np.pad(x, r, mode="symmetric")
    return np.array([np.dot(xp[i : i + 2 * r + 1], k) for i in range(len(x))])


def strict_minima(x, order=1):
    return np.array(
        [
            i
            for i in range(order, len(x) - order)
            if all(x[i] < x[i + d] and x[i] < x[i - d] for d in range(1, order + 1))
        ]
    )


def test_bailando_envelope_and_beats_match_independent_formula():
    rng = np.random.default_rng(3)
    p = rng.normal(size=(90, 24, 3)).cumsum(axis=0) * 0.01
    speed = np.mean(np.linalg.norm(p[1:] - p[:-1], axis=2), axis=1)
    expected = gaussian_smooth_reflect(speed, 5.0)
    np.testing.assert_allclose(motion_envelope(p), expected, rtol=1e-10)
    np.testing.assert_array_equal(motion_beats(p, fps=60), strict_minima(expected))


def test_bailando_bas_hand_computed():
    p = joints_from_speeds(cosine_speeds(101))  # 102 frames, envelope of 101 steps
    np.testing.assert_array_equal(motion_beats(p, fps=30), [10, 30, 50, 70, 90])
    fps = 30.0
    music = np.array([10, 32, 50, 150]) / fps  # frame 150 lies past the envelope and is dropped
    expected = (1.0 + math.exp(-4 / 18) + 1.0) / 3  # distances 0, 2, 0 frames, sigma^2 = 9
    assert bas(p, music, fps) == pytest.approx(expected, abs=1e-12)
    # seconds -> frames uses round(t * fps): 0.34 s at 30 fps is frame 10
    assert bas(p, [0.34], fps) == pytest.approx(1.0)
    # the same beats at 60 fps are other frames: BAS is not fps-invariant, as published
    assert bas(p, [20 / 60], 60.0) == pytest.approx(math.exp(-100 / 18))


def test_fact_bas_hand_computed_order_and_direction():
    s = cosine_speeds(101)
    s[40] = 1.9  # a notch in a maximum: a local minimum of order 1, not of order 10
    p = joints_from_speeds(s)
    env = motion_envelope(p, "fact")
    assert env.dtype == np.float32 and env[0] == 0.0
    np.testing.assert_allclose(env[1:], 2 * s, rtol=1e-6)  # summed over the 2 joints
    beats = motion_beats(p, 30, "fact")
    assert 40 not in beats and 41 not in beats
    # e[t] is the step (t-1 -> t), so speed minima at step 10 show up at frame 11
    np.testing.assert_array_equal(beats, [11, 31, 51, 71, 91])
    fps = 30.0
    music = np.array([13, 51, 96]) / fps
    d = np.array([2, 20, 0, 20, 5])  # per MOTION beat, distance to the nearest music beat
    # FACT computes in float32: agreement to float32 precision
    assert bas(p, music, fps, variant="fact") == pytest.approx(np.mean(np.exp(-(d**2) / 18)), abs=1e-6)
    # skip_frames drops beats before frame 40 on both sides (FACT's 120-frame seed)
    d_skip = np.array([0, 20, 5])
    got = bas(p, music, fps, variant="fact", skip_frames=40)
    assert got == pytest.approx(np.mean(np.exp(-(d_skip**2) / 18)), abs=1e-6)


def test_no_beats_edge_cases():
    straight = joints_from_speeds(np.ones(80))  # constant speed: no minimum at all
    assert len(motion_beats(straight, 30)) == 0
    assert bas(straight, [0.5, 1.0], 30, variant="fact") == 0.0  # published: 0.0 without motion beats
    with pytest.raises(ValueError, match="no motion beats"):
        bas(straight, [0.5, 1.0], 30, variant="bailando")
    p = joints_from_speeds(cosine_speeds(101))
    with pytest.raises(ValueError, match="no music beats"):
        bas(p, [], 30)
    with pytest.raises(ValueError, match="no music beats"):
        bas(p, [100.0], 30, variant="fact")  # all beats past the end


def test_bad_input_raises():
    p = joints_from_speeds(cosine_speeds(101))
    bad = p.copy()
    bad[5, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bas(bad, [1.0], 30)
    with pytest.raises(ValueError, match="expected shape"):
        bas(p[:, :, :1], [1.0], 30)
    with pytest.raises(ValueError, match="fps"):
        bas(p, [1.0], 0)
    with pytest.raises(ValueError, match="variant"):
        bas(p, [1.0], 30, variant="edge")
    with pytest.raises(ValueError, match="NaN"):
        bas(p, [np.nan], 30)
    with pytest.raises(ValueError, match="at least 2 frames"):
        motion_beats(p[:1], 30)


def test_mean_bas_averages_sequences_and_accepts_torch():
    p = joints_from_speeds(cosine_speeds(101))
    a = bas(p, np.array([10, 32]) / 30, 30)
    b = bas(p, np.array([50]) / 30, 30)
    got = mean_bas([torch.from_numpy(p), p], [torch.tensor([10 / 30, 32 / 30]), [50 / 30]], 30)
    assert got == pytest.approx((a + b) / 2)
    with pytest.raises(ValueError, match="2 joint sequences but 1"):
        mean_bas([p, p], [[1.0]], 30)
    with pytest.raises(ValueError, match="sequence 1"):
        mean_bas([p, p], [[1.0], []], 30)


def test_motion_tempo_from_beat_spacing():
    p = joints_from_speeds(cosine_speeds(201, period=20))  # a minimum every 20 frames
    assert motion_tempo(p, fps=40) == pytest.approx(120.0)  # 0.5 s per beat
