"""The functions behind `mmgen app` (no browser, no Gradio): which span boxes a task shows, the
`Pipeline.generate` call a page state makes, clear errors for bad uploads, the app's temp folders."""

import os
import sys

import numpy as np
import pytest
import soundfile as sf

from mmgen.app.handlers import (
    SOURCES,
    AppError,
    AppRequest,
    generate_kwargs,
    read_uploads,
    run_request,
    span_defaults,
    span_visibility,
    task_names,
)
from mmgen.app.workspace import Workspace
from mmgen.cli import main
from mmgen.core.fileio import MARKER
from mmgen.data.toydance import generate_clip
from mmgen.demo.run import default_pipeline_dir
from mmgen.diffusion.tasks import PRESETS
from mmgen.io.export import save_motion_npz
from mmgen.pipeline import Pipeline

EXAMPLE, FILES = SOURCES


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.from_pretrained(default_pipeline_dir())


@pytest.fixture(scope="module")
def clip():
    return generate_clip(10_001, seconds=3.0)  # held out


def given_of(clip):
    return {"audio": clip.audio, "motion": clip.joints, "video": clip.video}


def test_each_task_shows_exactly_its_span_boxes():
    shown = {task: sorted(a for a, v in span_visibility(task).items() if v) for task in PRESETS}
    assert shown == {
        "dance2music": [],
        "music2dance": [],
        "video2audio": [],
        "audio2video": [],
        "joint": [],
        "interpolate": ["head", "tail"],
        "continue": ["prefix"],
        "inpaint": ["end", "start"],
        "edit": ["end", "start", "t0"],
    }
    assert span_defaults("edit") == {"start": 0.0, "end": None, "t0": 0.5}
    assert span_defaults("interpolate") == {"head": 1.0, "tail": None}


def test_the_shipped_pipeline_offers_every_task_one_way_tasks_first(pipe):
    assert task_names(pipe) == [
        "dance2music",
        "music2dance",
        "video2audio",
        "audio2video",
        "joint",
        "interpolate",
        "continue",
        "inpaint",
        "edit",
    ]


def test_dance2music_takes_only_the_dance_of_an_example(pipe, clip):
    kw = generate_kwargs(pipe, AppRequest("dance2music", steps=3, seed=7, guidance=2.5), given_of(clip))
    assert sorted(kw["given"]) == ["motion"] and kw["given"]["motion"] is clip.joints
    assert kw["seconds"] == pytest.approx(3.0)  # the input's length
    assert kw["guidance"] == {"motion": 2.5} and kw["steps"] == 3 and kw["seed"] == 7
    assert kw["task"] == "dance2music" and kw["task_kwargs"] == {}


def test_spans_reach_the_task_and_boxes_of_other_tasks_do_not(pipe, clip):
    spans = {"head": 0.5, "tail": None, "prefix": 2.0, "start": 1.0, "end": 2.0, "t0": 0.3}
    kw = generate_kwargs(pipe, AppRequest("interpolate", spans=spans, seconds=3.0), given_of(clip))
    assert kw["task_kwargs"] == {"head": 0.5}  # tail empty: the preset's own default (= head)
    assert sorted(kw["given"]) == ["audio", "motion", "video"]
    assert kw["guidance"] == {"audio": 2.0, "motion": 2.0, "video": 2.0}
    kw = generate_kwargs(pipe, AppRequest("edit", spans=spans, guidance=1.0), {"audio": clip.audio})
    assert kw["task_kwargs"] == {"start": 1.0, "end": 2.0, "t0": 0.3}
    assert kw["guidance"] == {}  # 1 = no guidance: no extra model call


def test_joint_needs_no_input_and_uses_the_pipelines_clip_length(pipe):
    kw = generate_kwargs(pipe, AppRequest("joint"), {})
    assert kw["given"] == {} and kw["seconds"] == pipe.defaults.seconds and kw["guidance"] == {}


def test_a_task_without_its_input_says_what_to_upload(pipe, clip):
    with pytest.raises(AppError, match="music2dance needs an audio file"):
        generate_kwargs(pipe, AppRequest("music2dance"), {"motion": clip.joints})
    with pytest.raises(AppError, match="video2audio needs a video file"):
        generate_kwargs(pipe, AppRequest("video2audio"), {"audio": clip.audio})
    with pytest.raises(AppError, match="inpaint reworks the inputs you give"):
        generate_kwargs(pipe, AppRequest("inpaint"), {})


def test_spans_that_leave_nothing_to_generate_are_refused(pipe, clip):
    given = {"motion": clip.joints}
    with pytest.raises(AppError, match="leave nothing to generate in 3 s"):
        generate_kwargs(pipe, AppRequest("interpolate", spans={"head": 1.5}), given)
    with pytest.raises(AppError, match="prefix 3 s leaves nothing"):
        generate_kwargs(pipe, AppRequest("continue", spans={"prefix": 3.0}), given)
    with pytest.raises(AppError, match="need 0 <= start < end"):
        generate_kwargs(pipe, AppRequest("inpaint", spans={"start": 2.0, "end": 1.0}), given)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be a positive whole number"),
        ({"seed": -1}, "seed must be a non-negative whole number"),
        ({"guidance": float("nan")}, "guidance must be a number"),
        ({"seconds": -2.0}, "seconds must be positive"),
        ({"task": "dance"}, "unknown task 'dance'"),
        ({"source": "web"}, "input source must be one of"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(AppError, match=message):
        AppRequest(**kwargs)


def test_uploads_are_read_at_the_pipelines_rates(pipe, clip, tmp_path):
    motion = save_motion_npz(tmp_path / "dance.npz", clip.joints[::2], clip.fps / 2)  # 15 fps
    wav = tmp_path / "song.wav"
    sf.write(wav, clip.audio, 44100)  # 1.5 s at 44.1 kHz -> 1.5 s at the pipeline's 22.05 kHz
    given = read_uploads(pipe, motion=str(motion), audio=str(wav))
    assert sorted(given) == ["audio", "motion"]
    assert given["motion"].shape == (90, 24, 3)  # 45 frames at 15 fps -> 3 s at 30 fps
    np.testing.assert_allclose(given["motion"][:88:2], clip.joints[:88:2], atol=1e-5)  # the kept frames
    assert len(given["audio"]) == pytest.approx(len(clip.audio) / 2, abs=2)


def test_a_bad_upload_is_a_clear_error_naming_the_file(pipe, clip, tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not a zip")
    with pytest.raises(AppError, match=r"^motion upload notes.npz: not a readable motion .npz") as err:
        read_uploads(pipe, motion=str(text))
    assert str(tmp_path) not in str(err.value)  # Gradio's temp path is not the user's business
    hands = save_motion_npz(tmp_path / "hands.npz", clip.joints[:, :21], clip.fps)
    with pytest.raises(AppError, match=r"hands.npz: joints have shape \(90, 21, 3\).*\[T, 24, 3\]"):
        read_uploads(pipe, motion=str(hands))
    with pytest.raises(AppError, match="audio upload notes.npz: cannot read audio"):
        read_uploads(pipe, audio=str(text))


@pytest.mark.slow  # writing the mel PNG runs librosa's beat tracker (compiled on first use)
def test_a_run_writes_only_into_its_own_folder(pipe, clip, tmp_path):
    uploads = tmp_path / "mine"
    uploads.mkdir()
    dance = save_motion_npz(uploads / "dance.npz", clip.joints, clip.fps)
    before = sorted(os.listdir(uploads))
    ws = Workspace(parent=tmp_path)
    try:
        out = ws.new_run()
        result = run_request(
            pipe, AppRequest("dance2music", FILES, motion=str(dance), seconds=2.0, steps=2), out
        )
        assert (
            sorted(p.name for p in out.iterdir() if p.name != MARKER)  # the marker: mmgen wrote them
            == sorted(p.name for p in result.files)
            == [
                "mmgen_dance2music.mp4",
                "mmgen_dance2music.npz",
                "mmgen_dance2music.wav",
                "mmgen_dance2music_mel.png",
            ]
        )
        audio, sr = sf.read(result.audio)
        assert len(audio) == round(2.0 * sr)  # seconds trims the 3-s dance
        assert result.video.suffix == ".mp4" and result.mel.name.endswith("_mel.png")
        assert result.summary.startswith("dance2music: 2 s from motion; 2 steps, seed 0")
        with pytest.raises(AppError, match="longer than this app allows"):
            run_request(pipe, AppRequest("dance2music", EXAMPLE, seconds=9.0), ws.new_run(), max_seconds=8.0)
    finally:
        ws.close()
    assert sorted(os.listdir(uploads)) == before
    assert not ws.root.exists()


def test_the_workspace_keeps_the_newest_runs_and_removes_itself(tmp_path):
    ws = Workspace(keep=2, parent=tmp_path)
    runs = [ws.new_run() for _ in range(4)]
    assert len(set(runs)) == 4 and [r.exists() for r in runs] == [False, False, True, True]
    ws.close()
    assert not ws.root.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="closed"):
        ws.new_run()


def test_mmgen_app_without_gradio_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError, find_spec -> ValueError
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a)
    )
    assert main(["app"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == 'mmgen app: error: the web app needs Gradio: pip install "mmgen[app]"'
