"""`mmgen generate`, `mmgen eval` and `mmgen cache` in-process on a saved tiny pipeline and a tiny
ToyDance folder; bad input exits 2 with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_pipeline import make_pipeline

from mmgen.cli import main
from mmgen.core.fileio import MARKER, read_marker
from mmgen.data.latent_cache import LatentCache
from mmgen.data.toydance.io import make_dataset
from mmgen.io.export import load_motion_npz, save_motion_npz, save_wav
from mmgen.pipeline import Pipeline


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipe") / "tiny"
    make_pipeline(video=True).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(
        tmp_path_factory.mktemp("data") / "toydance", clips=2, seconds=4.0, seed=0, progress=False
    )


def test_generate_then_eval(pipe_dir, data, tmp_path, capsys):
    out = tmp_path / "out"
    motion = data / "clips" / "00000.npz"
    rc = main(
        [
            "generate",
            "--pipeline",
            str(pipe_dir),
            "--task",
            "dance2music",
            "--motion",
            str(motion),
            "--out",
            str(out),
            "--name",
            "00000",
            "--steps",
            "2",
            "--seed",
            "3",
            "--no-progress",
        ]
    )
    assert rc == 0
    written = ["00000.mp4", "00000.npz", "00000.wav", "00000_mel.png"]
    assert sorted(p.name for p in out.iterdir() if p.name != MARKER) == written
    assert read_marker(out)["files"] == written  # mmgen knows them as its own
    assert np.array_equal(load_motion_npz(out / "00000.npz")["joints"], load_motion_npz(motion)["joints"])
    audio, sr = sf.read(str(out / "00000.wav"))
    assert sr == 22050 and len(audio) == 4 * 22050
    expected = Pipeline.from_pretrained(pipe_dir).generate(
        "dance2music", {"motion": load_motion_npz(motion)["joints"]}, steps=2, seed=3, progress=False
    )
    assert np.array_equal(audio.astype(np.float32), expected.audio[0])  # the CLI is the library call
    capsys.readouterr()
    assert main(["eval", str(out), str(data / "clips"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| d2m_beat_f |" in printed and "metrics.json" in printed
    assert set(json.loads((out / "metrics.json").read_text())["items"]) == {"00000"}


def test_generate_conforms_inputs_at_other_rates(pipe_dir, data, tmp_path):
    clip = load_motion_npz(data / "clips" / "00001.npz")
    joints60 = np.repeat(clip["joints"], 2, axis=0)  # the same dance at 60 fps
    save_motion_npz(tmp_path / "m60.npz", joints60, 60.0)
    wave, _ = sf.read(str(data / "clips" / "00001.wav"), dtype="float32")
    save_wav(tmp_path / "a16k.wav", wave[::2].copy(), 11025)  # half the sample rate
    rc = main(
        [
            "generate",
            "--pipeline",
            str(pipe_dir),
            "--task",
            "interpolate",
            "--motion",
            str(tmp_path / "m60.npz"),
            "--audio",
            str(tmp_path / "a16k.wav"),
            "--head",
            "1",
            "--tail",
            "1",
            "--out",
            str(tmp_path / "o"),
            "--steps",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    joints = load_motion_npz(tmp_path / "o" / "sample.npz")["joints"]
    assert joints.shape == (120, 24, 3)  # 4 s at the model's 30 fps
    assert np.allclose(joints[:30], clip["joints"][:30], atol=0.02)  # GIVEN head: resampled back to 30 fps
    assert sf.info(str(tmp_path / "o" / "sample.wav")).frames == 4 * 22050
    rc = main(
        [
            "generate",
            "--pipeline",
            str(pipe_dir),
            "--task",
            "video2audio",
            "--video",
            str(data / "clips" / "00001.mp4"),
            "--out",
            str(tmp_path / "v"),
            "--steps",
            "2",
            "--seconds",
            "2",
            "--no-progress",
        ]
    )
    assert (
        rc == 0 and (tmp_path / "v" / "sample.mp4").is_file() and not (tmp_path / "v" / "sample.npz").exists()
    )
    # --via motion: the dance is generated alongside the music and written too
    video = ["--video", str(data / "clips" / "00001.mp4"), "--steps", "2", "--seconds", "2", "--no-progress"]
    rc = main(["generate", "--pipeline", str(pipe_dir), "--task", "video2audio", "--via", "motion",
               "--out", str(tmp_path / "vm"), *video])
    assert rc == 0 and load_motion_npz(tmp_path / "vm" / "sample.npz")["joints"].shape == (60, 24, 3)


def test_cache_from_pipeline_and_from_vae_folders(pipe_dir, data, tmp_path):
    rc = main(
        [
            "cache",
            "--data",
            str(data),
            "--pipeline",
            str(pipe_dir),
            "--out",
            str(tmp_path / "c"),
            "--seconds",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    cache = LatentCache(tmp_path / "c")
    pipe = Pipeline.from_pretrained(pipe_dir)
    cache.check_fingerprints({m: mod.fingerprint() for m, mod in pipe.modalities.items()})
    assert [it["id"] for it in cache.items] == ["00000@0", "00000@2", "00001@0", "00001@2"]
    item = cache[1]
    assert {m: z.shape[0] for m, z in item["latents"].items()} == {"audio": 15, "motion": 15, "video": 8}
    joints = load_motion_npz(data / "clips" / "00000.npz")
    window = torch.from_numpy(joints["joints"][60:120])  # 2-4 s at 30 fps: 60 frames = 15 latent frames
    assert torch.equal(item["latents"]["motion"], pipe.modalities["motion"].encode_item(window))
    beats = joints["beat_times"]
    assert np.allclose(item["beat_times"], beats[(beats >= 2) & (beats < 4)] - 2) and item["seconds"] == 2.0

    # the same VAEs as bare / modality folders give the same latents
    rc = main(
        [
            "cache",
            "--data",
            str(data),
            "--vae",
            f"motion={pipe_dir / 'motion' / 'vae'}",
            "--vae",
            f"audio={pipe_dir / 'audio'}",
            "--out",
            str(tmp_path / "c2"),
            "--no-progress",
        ]
    )
    assert rc == 0
    whole = LatentCache(tmp_path / "c2")
    assert whole.modalities == ["motion", "audio"] and len(whole) == 2
    assert torch.equal(
        whole[0]["latents"]["motion"],
        pipe.modalities["motion"].encode_item(torch.from_numpy(joints["joints"])),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--motion", "missing.npz"], "--motion missing.npz: no such file"),
        (["--task", "dance3music", "--motion", "{data}/clips/00000.npz"], "unknown task 'dance3music'"),
        (
            ["--motion", "{tmp}/j17.npz"],
            "j17.npz: joints have shape (120, 17, 3); this pipeline's motion VAE takes [T, 24, 3]",
        ),
        (["--task", "music2dance"], "task 'music2dance' needs given ['audio']"),
        (
            ["--guidance", "motion:2", "--motion", "{data}/clips/00000.npz"],
            "--guidance: expected group=scale",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(pipe_dir, data, tmp_path, capsys, args, message):
    save_motion_npz(tmp_path / "j17.npz", np.zeros((120, 17, 3), np.float32), 30.0)
    args = [a.format(data=data, tmp=tmp_path) for a in args]
    rc = main(["generate", "--pipeline", str(pipe_dir), "--out", str(tmp_path / "o"), "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("mmgen generate: error: ") and message in err, err
    assert not (tmp_path / "o").exists()


def test_eval_and_cache_errors_exit_2(pipe_dir, data, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing"), str(data / "clips")]) == 2
    assert "generated folder not found" in capsys.readouterr().err
    assert main(["cache", "--data", str(data), "--vae", "audio", "--out", str(tmp_path / "c")]) == 2
    assert "expected NAME=DIR" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        main(["cache", "--data", str(tmp_path / "empty"), "--pipeline", str(pipe_dir), "--out", str(tmp_path / "c")])
        == 2
    )
    assert "manifest.jsonl: no manifest" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_read_motion_resamples_and_drops_2d_confidence(tmp_path):
    from mmgen.io.read import read_motion
    from mmgen.modalities.media import MotionModality
    from mmgen.modalities.motion import MotionVAE

    t = np.arange(61, dtype=np.float32) / 60.0  # 1 s at 60 fps, x moving at 1 unit / s
    pose = np.zeros((61, 17, 3), np.float32)
    pose[..., 0], pose[..., 2] = t[:, None], 0.9  # x, (y = 0), detector confidence
    save_motion_npz(tmp_path / "pose.npz", pose, 60.0)
    joints = read_motion(tmp_path / "pose.npz", MotionModality(MotionVAE.tiny(skeleton="coco17", dims=2)))
    assert joints.shape == (30, 17, 2)  # 30 fps, confidence dropped
    assert np.allclose(joints[:, 0, 0], np.arange(30) / 30.0, atol=1e-6)


def test_task_arguments_from_flags():
    import argparse

    from mmgen.commands.generate import add_arguments, task_kwargs

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parse = lambda *flags: task_kwargs(parser.parse_args(["--out", "o", *flags]))
    assert parse("--via", "motion") == {"via": ("motion",)}
    assert parse("--via", "none") == {"via": ()}  # turns a pipeline's task_args default off
    assert parse("--head", "1", "--modalities", "audio, motion") == {"head": 1.0, "modalities": ("audio", "motion")}
    assert parse() == {}
