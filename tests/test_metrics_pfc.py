"""EDGE's physical foot contact score on hand-built sequences."""

import numpy as np
import pytest
import torch

from mmgen.metrics import pfc, pfc_sequence, yup_to_zup

LANKLE, LTOES, RANKLE, RTOES = 7, 10, 8, 11


def hand_sequence():
    """4 frames, z-up. Root x: 0, 0, 1, 3 -> velocity 0, 1, 2 -> acceleration 1, 1 (per frame^2)."""
    p = np.zeros((4, 24, 3))
    p[:, 0, 0] = [0, 0, 1, 3]
    p[:, 0, 2] = [0, 0, -1, -3]  # downward root acceleration is clamped to 0
    steps = {LANKLE: (0.1, 0.2), LTOES: (0.3, 0.1), RANKLE: (0.5, 0.4), RTOES: (0.2, 0.6)}
    for j, (a, b) in steps.items():
        p[:, j, 1] = [0, 0, a, a + b]  # horizontal (y) steps between frames 1->2 and 2->3
        p[:, j, 2] = [0, 5, -5, 5]  # vertical foot motion is ignored
    return p


def test_pfc_hand_computed():
    # L = [min(.1, .3), min(.2, .1)] = [.1, .1]; R = [min(.5, .2), min(.4, .6)] = [.2, .4]; a_hat = [1, 1]
    expected = (0.1 * 0.2 + 0.1 * 0.4) / 2
    assert pfc_sequence(hand_sequence(), fps=1) == pytest.approx(expected)
    assert pfc_sequence(hand_sequence(), fps=30) == pytest.approx(expected)  # DT cancels in a / max(a)
    assert pfc(hand_sequence(), fps=30) == pytest.approx(1e4 * expected)


def test_pfc_acceleration_weights_and_mean_over_sequences():
    p = hand_sequence()
    p[:, 0, 0] = [0, 0, 1, 4]  # velocity 0, 1, 3 -> acceleration 1, 2 -> a_hat = [0.5, 1]
    expected = (0.1 * 0.2 * 0.5 + 0.1 * 0.4 * 1.0) / 2
    assert pfc_sequence(p) == pytest.approx(expected)
    both = np.stack([hand_sequence(), p])  # [N, S, 24, 3]
    assert pfc(both) == pytest.approx(1e4 * (0.03 + expected) / 2)
    assert pfc([torch.from_numpy(hand_sequence()), p]) == pytest.approx(1e4 * (0.03 + expected) / 2)


def test_yup_to_zup_rotates_plus_90_about_x():
    np.testing.assert_allclose(yup_to_zup(np.array([1.0, 2.0, 3.0])), [1.0, -3.0, 2.0])
    # a y-up sequence whose feet only move vertically (y) scores 0 after conversion
    p = hand_sequence()
    yup = np.zeros_like(p)
    yup[..., 0], yup[..., 1], yup[..., 2] = p[..., 0], p[..., 2], -p[..., 1]  # inverse rotation
    np.testing.assert_allclose(yup_to_zup(yup), p)
    feet_up = yup.copy()
    feet_up[:, [LANKLE, LTOES, RANKLE, RTOES], 2] = 0.0  # remove horizontal foot motion
    feet_up[:, [LANKLE, LTOES, RANKLE, RTOES], 1] = [[0], [1], [3], [2]]  # jump (y-up vertical)
    assert pfc_sequence(yup_to_zup(feet_up)) == 0.0


def test_pfc_bad_input():
    with pytest.raises(ValueError, match="zero on every frame"):
        pfc_sequence(np.zeros((10, 24, 3)))
    with pytest.raises(ValueError, match=r"\[T, 24, 3\]"):
        pfc_sequence(np.zeros((10, 17, 3)))
    with pytest.raises(ValueError, match="at least 3 frames"):
        pfc_sequence(np.zeros((2, 24, 3)))
    bad = hand_sequence()
    bad[2, 3, 1] = np.inf
    with pytest.raises(ValueError, match="sequence 1"):
        pfc([hand_sequence(), bad])
    with pytest.raises(ValueError, match="fps"):
        pfc(hand_sequence(), fps=-1)
