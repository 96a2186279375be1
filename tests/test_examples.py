"""Every script in examples/ runs as a user would run it (a subprocess) on tiny inputs, and its
outputs hold what it promises: music as long as the dance, given frames back bit-exact, metrics
over every pair, a trained pipeline that loads and generates."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmgen.io.export import load_motion_npz, save_motion_npz

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPTS = ("dance_to_music", "soundtrack_a_video", "interpolate", "custom_task", "train_tiny", "evaluate_folder")


def run(script: str, *args: object, expect: int = 0) -> subprocess.CompletedProcess:
    # the checkout's mmgen first (as an editable install would give), one torch thread per process
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{script}.py"), *map(str, args)],
                          check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == expect, f"{script} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc


def wav(path: Path) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(path, dtype="float32")
    return audio, sr


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_example_explains_itself(script):
    out = run(script, "--help").stdout
    assert out.startswith("usage:") and "--out" in out


def test_a_missing_input_is_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "no_such_dance.npz"
    proc = run("dance_to_music", "--motion", missing, "--out", tmp_path / "out", expect=2)
    assert "no_such_dance.npz: no such file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.slow
def test_dance_to_music_writes_music_as_long_as_the_dance(tmp_path):
    from mmgen.data.toydance import generate_clip

    clip = generate_clip(10005, seconds=3.0, render_video=False)  # 3 s: not the 4 s window
    dance = save_motion_npz(tmp_path / "dance.npz", clip.joints, clip.fps)
    proc = run("dance_to_music", "--motion", dance, "--steps", 2, "--out", tmp_path / "out")
    audio, sr = wav(tmp_path / "out" / "music.wav")
    assert len(audio) == round(len(clip.joints) / clip.fps * sr)  # 3 s of dance -> 3 s of music
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01
    back = load_motion_npz(tmp_path / "out" / "music.npz")["joints"]
    np.testing.assert_array_equal(back, clip.joints)  # the dance comes back as given
    for name in ("music.mp4", "music_mel.png"):
        assert (tmp_path / "out" / name).is_file()
    assert str(tmp_path / "out" / "music.wav") in proc.stdout  # it says where the results are


@pytest.mark.slow
def test_soundtrack_a_video_writes_music_as_long_as_the_video(tmp_path):
    import av

    out = tmp_path / "out"
    run("soundtrack_a_video", "--seconds", 4, "--steps", 2, "--out", out)
    with av.open(str(out / "input_video.mp4")) as container:
        stream = container.streams.video[0]
        frames, fps = sum(1 for _ in container.decode(stream)), float(stream.average_rate)
    audio, sr = wav(out / "soundtrack.wav")
    assert len(audio) == round(frames / fps * sr) == 4 * sr
    with av.open(str(out / "soundtrack.mp4")) as container:
        assert container.streams.audio and container.streams.video  # the video with its music


def given_equal(gen: np.ndarray, ref: np.ndarray, rate: float, spans: list[tuple[float, float]]) -> bool:
    return all(np.array_equal(gen[round(a * rate): round(b * rate)], ref[round(a * rate): round(b * rate)])
               for a, b in spans)


# GIVEN: the first and last second of 4 s. Their latent frames (7.5 Hz, 0.5-s segments) cover
# [0, 1.07) and [3.07, 4) s of raw samples, so these spans are inside on both sides.
ENDS, MIDDLE = [(0.0, 0.9), (3.1, 4.0)], [(1.2, 2.9)]


@pytest.mark.slow
def test_interpolate_keeps_both_ends_and_makes_the_middle(tmp_path):
    out = tmp_path / "out"
    proc = run("interpolate", "--steps", 2, "--out", out)
    audio, sr = wav(out / "interpolated.wav")
    ref, ref_sr = wav(out / "input.wav")
    assert sr == ref_sr and len(audio) == len(ref) == 4 * sr
    joints = load_motion_npz(out / "interpolated.npz")["joints"]
    ref_joints = load_motion_npz(out / "input.npz")["joints"]
    assert given_equal(audio, ref, sr, ENDS) and given_equal(joints, ref_joints, 30.0, ENDS)
    assert not given_equal(audio, ref, sr, MIDDLE) and not given_equal(joints, ref_joints, 30.0, MIDDLE)
    assert "MPJPE" in proc.stdout and "straight-line blend" in proc.stdout


@pytest.mark.slow
def test_custom_task_keeps_its_given_tokens(tmp_path):
    """music_bridge: the dance GIVEN throughout, the music GIVEN at both ends, the middle made."""
    out = tmp_path / "out"
    proc = run("custom_task", "--steps", 2, "--out", out)
    assert "music_bridge" in proc.stdout and "equal the input exactly" in proc.stdout
    audio, sr = wav(out / "bridge.wav")
    ref, _ = wav(out / "input.wav")
    assert len(audio) == len(ref) == 4 * sr
    assert given_equal(audio, ref, sr, ENDS) and not given_equal(audio, ref, sr, MIDDLE)
    np.testing.assert_array_equal(load_motion_npz(out / "bridge.npz")["joints"],
                                  load_motion_npz(out / "input.npz")["joints"])


@pytest.mark.slow
def test_evaluate_folder_scores_every_pair(tmp_path):
    out = tmp_path / "out"
    proc = run("evaluate_folder", "--clips", 2, "--seconds", 4, "--steps", 2, "--out", out)
    result = json.loads((out / "generated" / "metrics.json").read_text())
    assert sorted(result["items"]) == ["clip_000", "clip_001"]
    # music2dance gives the music back as given: generated and reference music agree exactly
    assert result["mean"]["music_beat_f"] == 1.0 and result["count"]["m2d_bas"] == 2
    assert 0.0 <= result["mean"]["m2d_bas"] <= 1.0
    truth = json.loads((out / "truth_metrics.json").read_text())
    assert truth["count"]["m2d_bas"] == 2 and truth["mean"]["m2d_bas"] > 0.5  # ToyDance is in sync
    assert "m2d_bas" in proc.stdout and str(out / "generated" / "metrics.json") in proc.stdout


@pytest.mark.slow
def test_train_tiny_runs_data_to_generation(tmp_path):
    from mmgen import Pipeline

    out = tmp_path / "tiny"
    run("train_tiny", "--out", out, "--clips", 3, "--vae-steps", 2, "--dit-steps", 3, "--steps", 2)
    pipe = Pipeline.from_pretrained(out / "pipeline")
    assert sorted(pipe.modalities) == ["audio", "motion"] and pipe.dit.d_model == 32
    assert (out / "cache" / "manifest.json").is_file() and any((out / "logs").rglob("metrics.csv"))
    audio, sr = wav(out / "generated" / "sample.wav")
    assert len(audio) == 4 * sr and np.isfinite(audio).all()
