"""MoMu / LORIS kinematic amplitude indicator and LORIS peak picking, against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from mmgen.metrics import directogram, kinematic_amplitude, rhythm_peaks


def two_joint_clip():
    """2-D joints [4, 2, 2] with offsets: joint 0: (1,0), (0,2), (1,1); joint 1: 0, 0, (-1,-1)."""
    offsets = np.array(
        [
            [[1.0, 0.0], [0.0, 0.0]],
            [[0.0, 2.0], [0.0, 0.0]],
            [[1.0, 1.0], [-1.0, -1.0]],
        ]
    )
    return np.concatenate([np.zeros((1, 2, 2)), np.cumsum(offsets, axis=0)])  # [4, 2, 2]


def test_directogram_uniform_and_loris_bins_by_hand():
    off = torch.tensor([[1.0, 0.0], [0.0, 2.0], [math.cos(math.radians(25.5)), math.sin(math.radians(25.5))]])
    uni = directogram(off, nbins=10)  # 18-degree sectors: 0 deg -> 0, 90 deg -> 5, 25.5 deg -> 1
    assert uni.tolist() == pytest.approx([1.0, 1.0, 0, 0, 0, 2.0, 0, 0, 0, 0])
    lor = directogram(off, nbins=10, binning="loris")  # floor(deg) % 10: 0 -> 0, 90 -> 0, 25.5 -> 5
    assert lor.tolist() == pytest.approx([3.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0])
    # directions are taken mod 180 degrees: (-1, 0) falls with (1, 0)
    assert directogram(torch.tensor([[-1.0, 0.0]]), nbins=4).tolist() == pytest.approx([1.0, 0, 0, 0])


def test_kinematic_amplitude_hand_computed():
    clip = two_joint_clip()
    # uniform bins: D1 = {0: 1}, D2 = {5: 2}, D3 = {2: 2 sqrt 2}  ->  Q2 = 2, Q3 = 2 sqrt 2
    raw = kinematic_amplitude(clip, normalize=False)
    assert isinstance(raw, np.ndarray)
    np.testing.assert_allclose(raw, [0, 0, 2.0, 2 * math.sqrt(2)], rtol=1e-6)
    # LORIS bins: D1 = {0: 1}, D2 = {0: 2}, D3 = {5: 2 sqrt 2}  ->  Q2 = 1, Q3 = 2 sqrt 2; T-2 values
    lor = kinematic_amplitude(clip, binning="loris", normalize=False, pad=False)
    np.testing.assert_allclose(lor, [1.0, 2 * math.sqrt(2)], rtol=1e-6)
    norm = kinematic_amplitude(clip)
    np.testing.assert_allclose(norm, [0, 0, 1 / math.sqrt(2), 1.0], rtol=1e-6)


def test_kinematic_amplitude_3d_axes_batch_torch_and_still_clip():
    clip2d = two_joint_clip()
    clip3d = np.zeros((4, 2, 3))
    clip3d[..., 0], clip3d[..., 2] = clip2d[..., 0], clip2d[..., 1]  # the motion lives in the x-z plane
    np.testing.assert_allclose(
        kinematic_amplitude(clip3d, axes=(0, 2)), kinematic_amplitude(clip2d), rtol=1e-6
    )
    batch = torch.from_numpy(np.stack([clip2d, np.zeros_like(clip2d)])).float()  # [2, 4, 2, 2]
    out = kinematic_amplitude(batch)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4)
    assert torch.all(out[1] == 0)  # a still clip stays 0 (LORIS would divide 0 by 0)


def test_kinematic_amplitude_bad_input():
    with pytest.raises(ValueError, match="T >= 3"):
        kinematic_amplitude(np.zeros((2, 5, 2)))
    bad = two_joint_clip()
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kinematic_amplitude(bad)
    with pytest.raises(ValueError, match="axes"):
        kinematic_amplitude(two_joint_clip(), axes=(0, 2))


def test_rhythm_peaks_forward_windows_and_last_of_run():
    env = np.array([0, 1, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0], dtype=np.float32)
    # i=1: max(env[1:7]) = 1 = env[1], mean(env[1:5]) = 0.25, 1 - 0.25 > 0.1 * mean(env)
    # i=6: max(env[6:12]) = 0.5 = env[6], mean(env[6:10]) = 0.125
    assert np.flatnonzero(rhythm_peaks(env)).tolist() == [1, 6]
    plateau = np.array([0, 1, 1, 0, 0, 0, 0, 0, 0, 0], dtype=np.float32)
    assert np.flatnonzero(rhythm_peaks(plateau)).tolist() == [2]  # the run [1, 2] keeps its last frame
    batch = torch.tensor(np.stack([env, env[::-1].copy()]))
    assert rhythm_peaks(batch).shape == (2, 12)
    with pytest.raises(ValueError, match="shorter than the windows"):
        rhythm_peaks(np.ones(4))
