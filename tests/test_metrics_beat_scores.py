"""BCS / BHS (both variants), beat F-measure and tempo accuracy on onset / beat times counted by hand."""

import numpy as np
import pytest

from mmgen.metrics import OnsetTimes, bcs_bhs, beat_f_measure, onset_bins, tempo_accuracy

# pair A: gt bins [1,1,0,1], gen bins [1,0,1,1]  -> G = 3, S = 3, H = 2
# pair B: gt bins [1,1],     gen bins [0,1]      -> G = 2, S = 1, H = 1
GT = [OnsetTimes([0.2, 1.5, 3.9], 4.0), OnsetTimes([0.5, 1.5], 2.0)]
GEN = [OnsetTimes([0.1, 2.2, 3.0, 3.5], 4.0), OnsetTimes([1.0], 2.0)]


def test_onset_bins_by_hand():
    np.testing.assert_array_equal(onset_bins([0.2, 1.5, 1.7, 3.9], 4.0), [1, 1, 0, 1])
    np.testing.assert_array_equal(onset_bins([], 2.5), [0, 0, 0])  # ceil(2.5) = 3 bins
    with pytest.raises(ValueError, match="onset times must lie"):
        onset_bins([4.0], 4.0)
    with pytest.raises(ValueError, match="onset times must lie"):
        onset_bins([-0.1], 4.0)


def test_d2m_variant_hand_counted():
    s = bcs_bhs(GT, GEN, variant="d2m")
    assert s.bcs == pytest.approx((3 / 3 + 1 / 2) / 2)  # S / G
    assert s.bhs == pytest.approx((2 / 3 + 1 / 2) / 2)  # H / G
    assert s.f1 is None and s.csd is None
    # S / G exceeds 1 when the generated clip has more onset bins than the ground truth
    over = bcs_bhs([OnsetTimes([0.5], 3.0)], [OnsetTimes([0.5, 1.5, 2.5], 3.0)], variant="d2m")
    assert over.bcs == pytest.approx(3.0) and over.bhs == pytest.approx(1.0)


def test_loris_variant_hand_counted():
    s = bcs_bhs(GT, GEN, variant="loris")
    bcs_pairs, bhs_pairs = np.array([2 / 3, 1 / 1]), np.array([2 / 3, 1 / 2])  # H / S, H / G
    assert s.bcs == pytest.approx(bcs_pairs.mean())
    assert s.bhs == pytest.approx(bhs_pairs.mean())
    assert s.csd == pytest.approx(np.std(bcs_pairs, ddof=1))
    assert s.hsd == pytest.approx(np.std(bhs_pairs, ddof=1))
    c, h = bcs_pairs.mean(), bhs_pairs.mean()
    assert s.f1 == pytest.approx(2 * c * h / (c + h))  # F1 of the MEANS
    np.testing.assert_allclose(s.per_pair_bcs, bcs_pairs)


def test_loris_truncates_longer_ground_truth_and_zero_rules():
    gt = [OnsetTimes([0.5, 4.5], 5.0)]  # bin 4 lies past the generated 4 bins: not counted
    gen = [OnsetTimes([0.5], 4.0)]
    s = bcs_bhs(gt, gen)
    assert s.bcs == pytest.approx(1.0) and s.bhs == pytest.approx(1.0)
    assert np.isnan(s.csd)  # one pair: sample std undefined
    silent_gen = bcs_bhs(
        [OnsetTimes([0.5], 2.0), OnsetTimes([0.5], 2.0)], [OnsetTimes([], 2.0), OnsetTimes([0.7], 2.0)]
    )
    assert silent_gen.per_pair_bcs.tolist() == [0.0, 1.0]  # S = 0 -> BCS 0 (published)


def test_edge_cases_raise_clear_errors():
    with pytest.raises(ValueError, match="shorter than generated"):
        bcs_bhs([OnsetTimes([0.5], 2.0)], [OnsetTimes([0.5], 3.0)], variant="loris")
    with pytest.raises(ValueError, match="equal lengths"):
        bcs_bhs([OnsetTimes([0.5], 3.0)], [OnsetTimes([0.5], 2.0)], variant="d2m")
    with pytest.raises(ValueError, match="no onsets"):
        bcs_bhs([OnsetTimes([], 2.0)], [OnsetTimes([0.5], 2.0)], variant="d2m")
    with pytest.raises(ValueError, match="F1 is undefined"):
        bcs_bhs([OnsetTimes([0.5], 2.0)], [OnsetTimes([1.5], 2.0)], variant="loris")
    with pytest.raises(ValueError, match="2 ground-truth clips but 1"):
        bcs_bhs(GT, GEN[:1])
    with pytest.raises(ValueError, match="variant"):
        bcs_bhs(GT, GEN, variant="cdcd")
    with pytest.raises(ValueError, match="pair 1"):
        bcs_bhs(GT, [GEN[0], OnsetTimes([np.nan], 2.0)])
    with pytest.raises(ValueError, match="no clips"):
        bcs_bhs([], [])


def test_bins_saturate_on_steady_beats_while_beat_f_does_not():
    dur = 10.0
    gt_beats = np.arange(0.0, dur, 0.5)  # 120 BPM
    gen_beats = np.arange(0.3, dur, 0.6)  # 100 BPM, off the grid
    s = bcs_bhs([OnsetTimes(gt_beats, dur)], [OnsetTimes(gen_beats, dur)])
    assert s.bcs == 1.0 and s.bhs == 1.0  # every 1-s bin has an onset in both
    assert beat_f_measure(gt_beats, gen_beats) < 0.25


def test_beat_f_measure_hand_counted():
    ref = [1.0, 2.0, 3.0, 4.0]
    est = [1.05, 2.1, 3.0, 3.02, 5.0]  # within 70 ms: 1.05 and one of 3.0 / 3.02 (one-to-one)
    p, r = 2 / 5, 2 / 4
    assert beat_f_measure(ref, est) == pytest.approx(2 * p * r / (p + r))
    assert beat_f_measure(ref, est, window=0.15) == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))
    assert beat_f_measure(ref, ref) == 1.0
    assert beat_f_measure(ref, []) == 0.0
    assert beat_f_measure(ref, [3.0, 4.0], trim_seconds=2.5) == 1.0  # beats before 2.5 s dropped
    with pytest.raises(ValueError, match="NaN"):
        beat_f_measure(ref, [np.nan])
    with pytest.raises(ValueError, match="1-D"):
        beat_f_measure(np.ones((2, 2)), ref)


def test_tempo_accuracy_within_4_percent_or_octave():
    est, ref = [121.0, 60.0, 100.0, 246.0], [120.0] * 4  # 0.8 %, half, 17 %, double + 2.5 %
    assert tempo_accuracy(est, ref) == pytest.approx(0.75)
    assert tempo_accuracy(est, ref, octave=False) == pytest.approx(0.25)
    assert tempo_accuracy(124.7, 120.0) == 1.0 and tempo_accuracy(125.0, 120.0) == 0.0
    with pytest.raises(ValueError, match="4 estimates vs 1"):
        tempo_accuracy(est, [120.0])
    with pytest.raises(ValueError, match="> 0 BPM"):
        tempo_accuracy([120.0], [0.0])


def test_a_bare_times_duration_pair_is_one_clip():
    # hand-counted: gt bins {0, 1, 3} of 4, gen bins {0, 2, 3}: H = 2, S = 3, G = 3
    gt, gen = ([0.2, 1.5, 3.9], 4.0), (np.array([0.1, 2.2, 3.0, 3.5]), 4.0)
    s = bcs_bhs(gt, gen)
    assert (s.bcs, s.bhs, s.f1) == (pytest.approx(2 / 3), pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert len(s.per_pair_bcs) == 1 and np.isnan(s.csd)
    d = bcs_bhs(gt, gen, variant="d2m")  # S / G = 3 / 3, H / G = 2 / 3
    assert (d.bcs, d.bhs) == (pytest.approx(1.0), pytest.approx(2 / 3))
    # the same as OnsetTimes, alone or in a list; lists of pairs are pairs
    assert bcs_bhs(OnsetTimes(*gt), [gen]).bcs == s.bcs
    two = bcs_bhs([gt, GT[1]], [gen, GEN[1]])
    np.testing.assert_allclose(two.per_pair_bcs, [2 / 3, 1.0])  # pair 2: gen bin {1} of gt {0, 1}


def test_ambiguous_clip_input_raises():
    with pytest.raises(ValueError, match=r"gt\[1\] is a single number"):
        bcs_bhs([[0.2, 1.5], 4.0], GEN[:2])  # a list, not a tuple: two clips, one of them a number
    with pytest.raises(ValueError, match=r"gt\[0\] is a single number.*OnsetTimes"):
        bcs_bhs((0.5, 4.0), (0.5, 4.0))  # one onset at 0.5 s, or two clips?
    with pytest.raises(ValueError, match="1-D sequence of onset times"):
        bcs_bhs([(np.zeros((2, 2)), 4.0)], [(np.zeros((2, 2)), 4.0)])
    rng = np.random.default_rng(0)
    wave = rng.uniform(0, 0.5, 22050).astype(np.float32)
    with pytest.raises(ValueError, match="non-decreasing.*waveform alone"):
        bcs_bhs((wave, 22050), (wave, 22050))  # (waveform, sr) is not (times, duration)
