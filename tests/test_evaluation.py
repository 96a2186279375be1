"""Evaluation functions on cases with known answers: ToyDance in sync vs another tempo, click tracks for
LORIS BCS/BHS, PFC's y-up -> z-up, interpolation error and the linear blend by hand, and folders."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mmgen import evaluation
from mmgen.data.toydance import generate_clip
from mmgen.io.export import save_motion_npz, save_wav
from mmgen.metrics import pfc as edge_pfc
from mmgen.metrics import yup_to_zup

SR = 22050


@pytest.fixture(scope="module")
def slow_fast():
    return generate_clip(3, seconds=8.0, bpm=90, render_video=False), generate_clip(
        5, seconds=8.0, bpm=128, render_video=False
    )


def test_music_dance_sync_is_high_in_sync_and_low_across_tempi(slow_fast):
    a, b = slow_fast
    same = evaluation.music_dance_sync(a.audio, a.sample_rate, a.joints, a.fps, dance_beats=a.beat_times)
    other = evaluation.music_dance_sync(a.audio, a.sample_rate, b.joints, b.fps, dance_beats=b.beat_times)
    assert same["beat_f"] > 0.8 and other["beat_f"] < 0.35
    assert same["tempo_match"] == 1.0 and other["tempo_match"] == 0.0
    assert same["dance_bpm"] == pytest.approx(90.0, rel=1e-6) and other["dance_bpm"] == pytest.approx(
        128.0, rel=1e-6
    )
    assert same["bas"] > other["bas"] + 0.2
    # without ground-truth beats the dance's beats are its joint-speed minima
    detected = evaluation.music_dance_sync(b.audio, b.sample_rate, b.joints, b.fps)
    crossed = evaluation.music_dance_sync(b.audio, b.sample_rate, a.joints, a.fps)
    assert detected["beat_f"] > 0.7 > crossed["beat_f"] + 0.3
    assert detected["dance_bpm"] == pytest.approx(128.0, rel=0.04)


def test_music_analysed_once_scores_like_music_dance_sync(slow_fast):
    a, b = slow_fast
    music = evaluation.analyse_music(a.audio, a.sample_rate)
    assert music.bpm == pytest.approx(90.0, rel=0.04) and len(music.beats) >= 10
    for dance in (a, b):  # one music against two dances, as the demo's shuffled baseline does
        direct = evaluation.music_dance_sync(a.audio, a.sample_rate, dance.joints, dance.fps, dance.beat_times)
        reused = evaluation.analysed_music_dance_sync(music, dance.joints, dance.fps, dance.beat_times)
        assert reused == pytest.approx(direct, nan_ok=True)
    with pytest.raises(ValueError, match="ref_audio: expected a mono waveform"):
        evaluation.analyse_music(np.zeros((2, 100)), SR, "ref_audio")


def test_music_agreement(slow_fast):
    a, b = slow_fast
    same = evaluation.music_agreement(a.audio, SR, a.audio)
    assert same["beat_f"] == 1.0 and same["tempo_match"] == 1.0
    other = evaluation.music_agreement(b.audio, SR, a.audio)
    assert other["beat_f"] < 0.4 and other["tempo_match"] == 0.0


def _clicks(times, seconds=4.0, sr=SR):
    y = np.zeros(int(sr * seconds), np.float32)
    for t in times:
        i = int(t * sr)
        y[i : i + 200] = 0.8 * np.hanning(200) * np.sign(np.sin(np.arange(200)))
    return y


def test_loris_bcs_bhs_on_click_tracks():
    ref = _clicks([0.25, 1.25, 2.25, 3.25])  # one onset in each of the 4 one-second bins
    half = _clicks([0.25, 1.25])  # bins 0, 1: S = 2, G = 4, H = 2 -> BCS = 1, BHS = 0.5
    out = evaluation.loris_bcs_bhs([ref, half], [ref, ref], SR)
    assert out["bcs"] == 1.0 and out["bhs"] == 0.75
    assert out["f1"] == pytest.approx(2 * 0.75 / 1.75)  # F1 of the means
    assert out["csd"] == 0.0 and out["hsd"] == pytest.approx(np.std([1.0, 0.5], ddof=1))
    resampled = evaluation.loris_bcs_bhs([_clicks([0.25, 1.25], sr=16000)], [ref], 16000, SR)  # -> 22,050 Hz
    assert resampled["bcs"] == 1.0 and resampled["bhs"] == 0.5
    silent = evaluation.loris_bcs_bhs([np.zeros_like(ref)], [ref], SR)
    assert silent["bcs"] == 0.0 and math.isnan(silent["f1"])
    with pytest.raises(ValueError, match="1 generated vs 2 reference"):
        evaluation.loris_bcs_bhs([ref], [ref, ref], SR)


def test_pfc_converts_y_up_to_z_up():
    rng = np.random.default_rng(0)
    joints = np.cumsum(rng.normal(0, 0.01, (40, 24, 3)), axis=0).astype(
        np.float32
    )  # y-up, feet sliding in x and z
    expected = edge_pfc(yup_to_zup(joints))
    assert evaluation.pfc(joints)["pfc"] == pytest.approx(expected)
    assert evaluation.pfc(joints)["pfc"] != pytest.approx(
        edge_pfc(joints)
    )  # y-up fed as z-up gives another value
    assert evaluation.pfc(np.stack([joints, joints]))["pfc"] == pytest.approx(expected)
    assert math.isnan(evaluation.pfc(np.zeros((10, 24, 3)))["pfc"])  # the root never accelerates
    with pytest.raises(ValueError, match=r"SMPL-24"):
        evaluation.pfc(np.zeros((10, 17, 3)))


def test_linear_blend_and_interpolation_error_by_hand():
    ref = np.array([0.0, 5.0, 5.0, 3.0])
    mask = np.array([False, True, True, False])
    assert np.allclose(evaluation.linear_blend(ref, mask), [0.0, 1.0, 2.0, 3.0])
    assert np.allclose(
        evaluation.linear_blend(ref, [True, False, False, True]), [5.0, 5.0, 5.0, 5.0]
    )  # ends held
    out = evaluation.interpolation_error(np.array([0.0, 4.0, 5.0, 3.0]), ref, mask)
    assert out["error"] == pytest.approx(0.5)  # mean(|4 - 5|, |5 - 5|)
    assert out["rmse"] == pytest.approx(np.sqrt(0.5))
    assert out["blend_error"] == pytest.approx(3.5)  # mean(|1 - 5|, |2 - 5|)
    assert out["ratio"] == pytest.approx(0.5 / 3.5)
    # joints [T, J, 3]: mean per-joint position error; a batch with a [B, T] mask
    ref_j = np.zeros((3, 2, 3))
    gen_j = ref_j.copy()
    gen_j[1, 0] = [3.0, 4.0, 0.0]  # 5 m off on joint 0 of the middle frame, joint 1 exact
    one = evaluation.interpolation_error(gen_j, ref_j, [False, True, False])
    assert one["error"] == pytest.approx(2.5) and one["blend_error"] == 0.0 and one["ratio"] == math.inf
    both = evaluation.interpolation_error(
        np.stack([gen_j, ref_j]), np.stack([ref_j, ref_j]), np.array([[0, 1, 0], [0, 1, 0]])
    )
    assert both["error"] == pytest.approx(1.25)
    assert both["item_error"] == pytest.approx([2.5, 0.0]) and "item_error" not in one
    uneven = evaluation.interpolation_error(
        np.stack([gen_j, gen_j]), np.stack([ref_j, ref_j]), np.array([[1, 1, 0], [0, 0, 0]])
    )  # each item over its own frames; an item with none is NaN
    assert uneven["item_error"][0] == pytest.approx(1.25) and math.isnan(uneven["item_error"][1])
    with pytest.raises(ValueError, match="every frame is masked"):
        evaluation.linear_blend(ref, [True] * 4)
    with pytest.raises(ValueError, match="mask"):
        evaluation.interpolation_error(ref, ref, [True, False])


def _write(folder, name, clip, audio=True, motion=True):
    if audio:
        save_wav(folder / f"{name}.wav", clip.audio, clip.sample_rate)
    if motion:
        save_motion_npz(folder / f"{name}.npz", clip.joints, clip.fps, beat_times=clip.beat_times)


def test_evaluate_folder_pairs_by_name_and_writes_json(tmp_path, slow_fast):
    a, b = slow_fast
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    _write(gen, "good", a)
    _write(ref, "good", a)
    _write(gen, "bad", b, motion=False)  # music of another tempo for the dance of `a`
    _write(ref, "bad", a)
    _write(ref, "spare", b)  # references without a generated file are left out
    _write(gen, "long", a, motion=False)
    save_wav(ref / "long.wav", a.audio[: 6 * SR], SR)  # a shorter reference: LORIS cuts the pair to 6 s
    (gen / "good.mp4").write_bytes(b"ignored")
    result = evaluation.evaluate_folder(gen, ref, progress=False)
    good, bad = result["items"]["good"], result["items"]["bad"]
    assert good["music_beat_f"] == 1.0 and good["d2m_beat_f"] > 0.8 and good["d2m_tempo_match"] == 1.0
    assert bad["d2m_beat_f"] < 0.35 and bad["d2m_tempo_match"] == 0.0
    assert "sync_bas" in good and "sync_bas" not in bad and "pfc" not in bad and "m2d_bas" in good
    assert (
        result["count"]["d2m_beat_f"] == 2 and result["count"]["sync_bas"] == 1 and result["loris_pairs"] == 3
    )
    assert result["mean"]["d2m_beat_f"] == pytest.approx((good["d2m_beat_f"] + bad["d2m_beat_f"]) / 2)
    saved = json.loads((gen / "metrics.json").read_text())
    assert saved["items"]["good"] == pytest.approx(good) and set(saved["loris"]) == {
        "bcs",
        "bhs",
        "csd",
        "hsd",
        "f1",
    }
    assert saved["loris"]["csd"] is not None
    table = evaluation.format_table(result)
    assert "| d2m_beat_f |" in table and "| loris_f1 |" in table

    _write(gen, "orphan", b)
    with pytest.raises(ValueError, match=r"1 generated file stem\(s\) have no reference .*: orphan.npz.wav"):
        evaluation.evaluate_folder(gen, ref, progress=False)
    with pytest.raises(FileNotFoundError, match="reference folder not found"):
        evaluation.evaluate_folder(gen, tmp_path / "nope", progress=False)
