"""Any video in: timestamps (variable frame rate), the crop rule, and bad files refused by name."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from test_pipeline import make_pipeline

from mmgen.cli import main
from mmgen.io.synth_video import write_test_video
from mmgen.io.video_stream import VideoFileError, crop_box, fit_frames, iter_video, probe


def source_frames(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return np.array([f.time for f in frames]), [f.to_ndarray(format="rgb24") for f in frames]


def test_variable_frame_rate_follows_timestamps(tmp_path):
    path = write_test_video(tmp_path / "vfr.mp4", 3.0, fps=24.0, size=(36, 64), jitter=0.4)
    times, src = source_frames(path)
    assert np.ptp(np.diff(times)) > 0.01  # really variable
    out = np.concatenate(list(iter_video(path, 15.0, (16, 16), chunk=7)))
    end = times[-1] - times[0] + np.median(np.diff(times))  # the last frame's duration as the file gives it
    assert abs(len(out) - int(np.floor(end * 15.0))) <= 1
    for k in range(len(out)):  # frame k is the one a player shows at k / 15 s
        j = int(np.searchsorted(times - times[0], k / 15.0 + 1e-9, side="right")) - 1
        ref = fit_frames(torch.from_numpy(src[j][None]), (16, 16))[0].numpy()
        assert np.array_equal(out[k], ref), k


def test_crop_rule_scales_the_short_side_and_centre_crops():
    assert crop_box(180, 322, (64, 64)) == (64, 114, 0, 25, 64, 64)
    assert crop_box(322, 180, (64, 64)) == (114, 64, 25, 0, 64, 64)
    assert crop_box(30, 40, (64, 64)) == (64, 85, 0, 10, 64, 64)  # small sources are scaled up
    frame = torch.zeros(1, 180, 322, 3, dtype=torch.uint8)
    frame[:, :, :50] = 255  # a white band at the far left is cut off
    frame[:, :, 150:172] = 200  # a grey band in the middle is kept, centred
    out = fit_frames(frame, (64, 64))[0]
    assert out.shape == (64, 64, 3)
    assert int(out[:, :3].max()) == 0 and int(out[:, 29:35].min()) > 150


def bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, fragment of the one-line error)."""
    audio_only = tmp / "sound.m4a"
    with av.open(str(audio_only), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=22050)
        for i in range(0, 22050, 1024):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 22050, i
            for p in stream.encode(f):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    zero = tmp / "zero.y4m"
    zero.write_text("YUV4MPEG2 W64 H64 F24:1 Ip A1:1 C420jpeg\n")  # a header and no frame
    ok = write_test_video(tmp / "ok.mp4", 1.0, size=(64, 64))
    codec = tmp / "codec.mp4"
    codec.write_bytes(ok.read_bytes().replace(b"avc1", b"zzzz"))  # a codec FFmpeg has no decoder for
    garbage = tmp / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    return {
        "no video stream": (audio_only, "sound.m4a: has no video stream"),
        "zero frames": (zero, "zero.y4m: the video stream has no frames"),
        "unreadable codec": (codec, "codec.mp4: cannot decode its video"),
        "garbage": (garbage, "garbage.mp4: not a readable video"),
    }


def test_probe_names_the_file_and_the_fault(tmp_path):
    for name, (path, fragment) in bad_files(tmp_path).items():
        with pytest.raises(VideoFileError, match=fragment.split(":")[1].strip()):
            probe(path)
    info = probe(tmp_path / "ok.mp4")
    assert (info.width, info.height, info.has_audio) == (64, 64, False)


def test_bad_video_on_the_cli_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    pipe = tmp_path / "pipe"
    make_pipeline(video=True).save_pretrained(pipe)
    for name, (path, fragment) in bad_files(tmp_path).items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        code = main(["generate", "--pipeline", str(pipe), "--task", "video2audio", "--video", str(path),
                     "--out", str(out), "--steps", "2", "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2, name
        assert len(err.splitlines()) == 1 and fragment in err and "--video" in err, (name, err)
        assert not out.exists() or not any(out.iterdir()), name


def test_stick_figure_chunks_stream_into_the_same_mp4(tmp_path):
    from mmgen.data.toydance.clip import generate_clip
    from mmgen.io.export import save_video
    from mmgen.io.render import iter_stick_figure, render_stick_figure

    joints = generate_clip(2, seconds=2.0, render_video=False).joints
    whole = render_stick_figure(joints, 30.0, size=32)
    chunks = list(iter_stick_figure(joints, 30.0, size=32, chunk=7))
    assert max(len(c) for c in chunks) == 7 and np.array_equal(np.concatenate(chunks), whole)
    a = save_video(tmp_path / "a.mp4", whole, 30.0)
    b = save_video(tmp_path / "b.mp4", iter_stick_figure(joints, 30.0, size=32, chunk=7), 30.0)
    assert a.read_bytes() == b.read_bytes()
