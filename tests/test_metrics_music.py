"""librosa-backed music onsets / beats and BCS/BHS on waveforms (few tests: librosa is slow to warm up)."""

import librosa
import numpy as np
import pytest

from mmgen.metrics import (
    OnsetTimes,
    bcs_bhs,
    beat_f_measure,
    music_beats,
    music_onsets,
    music_tempo,
    onset_bins,
)
from mmgen.metrics.beats import ONSET_PARAMS

SR = 22050


def click_track(times, seconds, seed=0):
    """Decaying noise bursts (30 ms) at the given times: unambiguous onsets."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    n = int(0.03 * SR)
    burst = (0.8 * np.exp(-np.arange(n) / (0.004 * SR)) * rng.standard_normal(n)).astype(np.float32)
    for t in times:
        i = int(t * SR)
        y[i : i + n] += burst[: len(y) - i]
    return y


def test_onsets_and_bins_match_librosa_and_hand_count():
    gt = click_track([0.25, 1.25, 2.5], 3.0)
    gen = click_track([0.5, 2.25], 3.0, seed=1)
    for variant in ("loris", "d2m"):
        direct = librosa.onset.onset_detect(
            y=gt, sr=SR, hop_length=512, units="time", **ONSET_PARAMS[variant]
        )
        np.testing.assert_allclose(music_onsets(gt, SR, variant=variant), direct)
        np.testing.assert_array_equal(onset_bins(direct, len(gt) / SR), [1, 1, 1])
    # gt bins [1,1,1], gen bins [1,0,1]: G = 3, S = 2, H = 2
    loris = bcs_bhs([gt], [gen], variant="loris")
    assert (loris.bcs, loris.bhs) == pytest.approx((1.0, 2 / 3))
    d2m = bcs_bhs(np.stack([gt]), np.stack([gen]), variant="d2m")  # [N, S] batches work too
    assert (d2m.bcs, d2m.bhs) == pytest.approx((2 / 3, 2 / 3))
    # waveforms and precomputed onset times give the same scores
    gen_onsets = OnsetTimes(music_onsets(gen, SR, variant="loris"), len(gen) / SR)
    assert bcs_bhs([gt], [gen_onsets]).bcs == loris.bcs


def test_music_beats_and_tempo_on_a_click_track():
    true_beats = np.arange(0.0, 8.0, 0.5)  # 120 BPM
    y = click_track(true_beats, 8.0)
    beats = music_beats(y, SR)
    assert beat_f_measure(true_beats, beats) >= 0.9
    assert abs(music_tempo(y, SR, start_bpm=120) - 120.0) <= 0.04 * 120


def test_bad_audio_raises():
    with pytest.raises(ValueError, match="empty audio"):
        music_onsets(np.zeros(0), SR)
    with pytest.raises(ValueError, match="NaN"):
        music_beats(np.full(SR, np.nan), SR)
    with pytest.raises(ValueError, match="mono"):
        music_onsets(np.zeros((2, SR)), SR)
    with pytest.raises(ValueError, match="empty audio"):
        bcs_bhs([np.zeros(0)], [np.zeros(SR)])
    with pytest.raises(ValueError, match="variant"):
        music_onsets(np.zeros(SR), SR, variant="madmom")
