"""Video tasks at any length through the CLI on the shipped checkpoint (few steps: this checks
lengths, windows and files, not quality)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mmgen.cli import main
from mmgen.demo.run import default_pipeline_dir
from mmgen.io.synth_video import write_test_video
from mmgen.io.video_stream import iter_video

pytestmark = pytest.mark.skipif(not default_pipeline_dir().is_dir(), reason="shipped checkpoint not present")


def generate(*args: str) -> int:
    return main(["generate", "--steps", "1", "--no-progress", "--no-cross-guidance", *args])


@pytest.mark.slow
def test_video2audio_on_a_61_s_variable_rate_odd_size_clip_without_audio(tmp_path):
    clip = write_test_video(tmp_path / "clip.mp4", 61.0, fps=24.0, size=(180, 322), jitter=0.3)
    assert generate("--task", "video2audio", "--video", str(clip), "--out", str(tmp_path / "out")) == 0
    audio, sr = sf.read(tmp_path / "out" / "sample.wav")
    frames = sum(len(c) for c in iter_video(clip, 15.0, (64, 64)))
    assert abs(len(audio) / sr - frames / 15.0) < 1e-3  # the clip's length
    assert abs(len(audio) / sr - 61.0) < 0.1
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


@pytest.mark.slow
def test_audio2video_interpolate_and_continue_on_a_30_s_clip(tmp_path):
    import av

    clip = write_test_video(tmp_path / "clip.mp4", 30.0, fps=30.0, size=(120, 160), audio=True)
    wav = tmp_path / "song.wav"
    with av.open(str(clip)) as c:
        sound = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    sf.write(wav, sound[: 30 * 22050], 22050)
    runs = {
        "audio2video": ["--audio", str(wav)],
        "interpolate": ["--audio", str(wav), "--video", str(clip), "--head", "2", "--tail", "2"],
        "continue": ["--audio", str(wav), "--video", str(clip), "--prefix", "5"],
    }
    for task, extra in runs.items():
        out = tmp_path / task
        assert generate("--task", task, *extra, "--out", str(out), "--hop", "2.7") == 0, task
        with av.open(str(out / "sample.mp4")) as c:
            n = sum(1 for _ in c.decode(video=0))
        assert abs(n / 15.0 - 30.0) < 0.2, (task, n)
        audio, sr = sf.read(out / "sample.wav")
        assert abs(len(audio) / sr - 30.0) < 0.05, task
