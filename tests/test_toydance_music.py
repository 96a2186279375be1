"""ToyDance music: librosa hears the true tempo and beats, the harmony is in the stated key, and the
machine-readable structure says truthfully which instrument plays when."""

import dataclasses

import numpy as np
import pytest
from scipy import signal

from mmgen.data.toydance import STYLES, generate_clip
from mmgen.data.toydance.grid import BeatGrid
from mmgen.data.toydance.music import INSTRUMENTS, NOTE_NAMES, SCALES, plan_music, render_music, structure
from mmgen.data.toydance.styles import get_style

SR = 22050
SECONDS = 6.0


@pytest.fixture(scope="module")
def clips():
    return [generate_clip(200 + i, SECONDS, style=s, render_video=False) for i, s in enumerate(STYLES)]


def test_librosa_finds_the_true_tempo_and_beats(clips):
    from mmgen.metrics import beat_f_measure, music_beats, music_tempo, tempo_accuracy

    est = [music_tempo(c.audio, SR) for c in clips]
    assert tempo_accuracy(est, [c.bpm for c in clips]) == 1.0, list(zip([c.bpm for c in clips], est))
    f = [beat_f_measure(c.beat_times, music_beats(c.audio, SR)) for c in clips]
    assert np.mean(f) >= 0.8, f
    # and a clip at another tempo is not matched by these beats: the measure is sharp
    assert beat_f_measure(clips[0].beat_times * 1.1, music_beats(clips[0].audio, SR)) < 0.5


def test_level_and_range(clips):
    for c in clips:
        peak = np.abs(c.audio).max()
        assert 0.6 <= peak <= 0.95
        assert np.sqrt(np.mean(c.audio**2)) > 0.03


def test_harmony_is_in_the_stated_key(clips):
    import librosa

    fractions = []
    for c in clips:
        tonic, mode = c.key.split()
        assert get_style(c.style).mode == mode
        # chroma above C3: the chords and arpeggio, not the kick's pitch sweep or the bass's smeared bins
        chroma = librosa.feature.chroma_cqt(
            y=c.audio, sr=SR, tuning=0.0, fmin=librosa.note_to_hz("C3"), n_octaves=5
        ).sum(axis=1)  # [12]
        in_key = [
            chroma[sorted({(k + s) % 12 for s in SCALES[mode]})].sum() / chroma.sum() for k in range(12)
        ]
        stated = in_key[NOTE_NAMES.index(tonic)]
        fractions.append(stated)
        # the stated key is the best or second best of the 12 keys of its mode (a fifth away shares 6 notes)
        assert sum(v > stated for v in in_key) <= 1, (c.style, c.key)
    assert np.mean(fractions) >= 0.7  # 7 of 12 pitch classes hold 0.58 of the energy by chance


def test_structure_is_well_formed(clips):
    for c in clips:
        assert c.structure, c.style
        for entry in c.structure:
            assert set(entry) == {"instrument", "start", "end"} and entry["instrument"] in INSTRUMENTS
            assert 0.0 <= entry["start"] < entry["end"] <= SECONDS
        starts = [(e["start"], INSTRUMENTS.index(e["instrument"])) for e in c.structure]
        assert starts == sorted(starts)
        assert any(e["instrument"] == "kick" for e in c.structure)


def _band_rms(audio: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    btype, freq = ("lowpass", hi) if lo is None else ("highpass", lo)
    sos = signal.butter(4, freq, btype=btype, fs=SR, output="sos")
    return signal.sosfilt(sos, audio)


def test_silent_bars_in_the_structure_are_silent():
    style = get_style("pop")
    grid = BeatGrid(bpm=120.0, phase=0.1, meter=4, shift=0, seconds=8.0)
    rng = np.random.default_rng(0)
    plan = plan_music(rng, style, grid)
    bars = list(grid.bars_in_clip())
    gap = bars[2]
    silent = {i: frozenset() for i in plan.instruments} | {"kick": frozenset({gap}), "bass": frozenset({gap})}
    plan = dataclasses.replace(plan, silent=silent)
    audio = render_music(np.random.default_rng(1), plan, style, grid, SR)
    entries = [e for e in structure(plan, grid) if e["instrument"] == "kick"]
    assert len(entries) == 2 and entries[0]["end"] == pytest.approx(grid.bar_start(gap), abs=1e-3)
    low = _band_rms(audio, None, 120.0)
    start, end = grid.bar_start(gap), grid.bar_start(gap + 1)
    inside = low[int((start + 0.3) * SR) : int(end * SR)]  # skip the previous bar's decaying tail
    before = low[int(grid.bar_start(gap - 1) * SR) : int(start * SR)]
    assert np.sqrt(np.mean(inside**2)) < 0.1 * np.sqrt(np.mean(before**2))
    hats = _band_rms(audio, 7000.0, None)  # the hi-hat keeps playing
    hats_inside = np.sqrt(np.mean(hats[int(start * SR) : int(end * SR)] ** 2))
    assert hats_inside > 0.5 * np.sqrt(
        np.mean(hats[int(grid.bar_start(gap - 1) * SR) : int(start * SR)] ** 2)
    )


def test_beat_grid_bars():
    grid = BeatGrid(bpm=120.0, phase=0.2, meter=3, shift=2, seconds=4.0)
    # beat 0 is the third beat of its bar, so bar 1 starts on beat 1
    assert grid.bar_start(1) == pytest.approx(0.7)
    assert list(grid.bars_in_clip()) == [0, 1, 2, 3]
    assert np.allclose(grid.beat_times(), 0.2 + 0.5 * np.arange(8))
