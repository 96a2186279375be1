"""Generation.save: wav / npz / mp4 (muxed audio, stick figure or video) / mel PNG that read back."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from test_pipeline import SR, make_pipeline

from mmgen.data.toydance import generate_clip
from mmgen.io.export import load_motion_npz
from mmgen.pipeline.generation import Generation


@pytest.fixture(scope="module")
def clip():
    return generate_clip(3, seconds=4.0)


def _frames(path):
    import decord

    return decord.VideoReader(str(path), num_threads=1)


def test_save_writes_files_that_read_back(tmp_path, clip):
    pipe = make_pipeline(video=False)
    out = pipe.generate("dance2music", {"motion": clip.joints}, batch_size=2, progress=False)
    written = out.save(tmp_path, prefix="d2m")
    names = sorted(p.name for p in written)
    assert names == sorted(
        f"d2m_{i:03d}{ext}" for i in range(2) for ext in (".wav", ".npz", ".mp4", "_mel.png")
    )
    for i in range(2):
        audio, sr = sf.read(str(tmp_path / f"d2m_{i:03d}.wav"), dtype="float32")
        assert sr == SR and np.array_equal(audio, out.audio[i])
        motion = load_motion_npz(tmp_path / f"d2m_{i:03d}.npz")
        assert np.array_equal(motion["joints"], clip.joints) and float(motion["fps"]) == 30.0
        assert str(motion["task"]) == "dance2music"
        video = _frames(tmp_path / f"d2m_{i:03d}.mp4")
        assert len(video) == 120 and video[0].shape == (128, 128, 3)  # stick figure at the motion's 30 fps
        import decord

        sound = decord.AudioReader(str(tmp_path / f"d2m_{i:03d}.mp4"), sample_rate=SR, mono=True)
        assert sound.shape[1] >= 4 * SR  # muxed (AAC decodes a few hundred samples longer)
        png = (tmp_path / f"d2m_{i:03d}_mel.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_save_uses_the_video_modality_and_a_single_name(tmp_path, clip):
    pipe = make_pipeline(video=True)
    out = pipe.generate("video2audio", {"video": clip.video}, progress=False)
    written = out.save(tmp_path)
    assert sorted(p.name for p in written) == [
        "sample.mp4",
        "sample.wav",
        "sample_mel.png",
    ]  # no motion, no npz
    video = _frames(tmp_path / "sample.mp4")
    assert len(video) == 60 and video[0].shape == (64, 64, 3)
    decoded = video.get_batch(list(range(60))).asnumpy().astype(np.float64)
    assert np.abs(decoded - clip.video).mean() < 8.0  # the given video (lossy H.264: ~4 levels off)


def test_generation_checks_the_prefix():
    gen = Generation(task="joint", seconds=1.0, audio=np.zeros((1, 100), np.float32), sample_rate=100)
    with pytest.raises(ValueError, match="plain file name"):
        gen.save("/tmp", prefix="a/b")


def test_2d_pose_is_saved_with_a_confidence_channel(tmp_path):
    joints = np.random.default_rng(0).normal(size=(1, 40, 17, 2)).astype(np.float32)
    gen = Generation(task="music2dance", seconds=4 / 3, joints=joints, fps=30.0)
    written = gen.save(tmp_path)
    assert [p.name for p in written] == ["sample.npz"]  # no audio, no stick figure for COCO-17
    stored = load_motion_npz(tmp_path / "sample.npz")["joints"]
    assert np.array_equal(stored[..., :2], joints[0]) and np.all(stored[..., 2] == 1.0)


def test_stick_figure_marks_only_the_frames_an_in_between_made(clip):
    from mmgen.io.render import GENERATED_BAR_COLOR

    pipe = make_pipeline(video=False)
    out = pipe.generate("interpolate", {"motion": clip.joints}, progress=False, task_kwargs={"head": 1.0, "tail": 1.0})
    frames, fps = out.example_frames(0, stick_size=32)
    barred = (frames[:, 0] == GENERATED_BAR_COLOR).all(axis=(1, 2))
    assert fps == 30.0 and np.array_equal(barred, out.generated["motion"]) and 0 < barred.sum() < len(barred)
    whole = pipe.generate("music2dance", {"audio": clip.audio}, progress=False)
    frames, _ = whole.example_frames(0, stick_size=32)
    assert not (frames[:, 0] == GENERATED_BAR_COLOR).all(axis=(1, 2)).any()  # all generated: nothing to point out


def test_video_marks_only_the_frames_an_in_between_made_and_leaves_the_rest(clip):
    from mmgen.io.render import GENERATED_BAR_COLOR

    pipe = make_pipeline(video=True)
    given = {"video": clip.video, "audio": clip.audio}
    out = pipe.generate("interpolate", given, progress=False, task_kwargs={"head": 1.0, "tail": 1.0})
    frames, fps = out.example_frames(0)
    made = out.generated["video"]
    barred = (frames[:, 0] == GENERATED_BAR_COLOR).all(axis=(1, 2))
    assert fps == clip.video_fps and np.array_equal(barred, made) and 0 < made.sum() < len(made)
    assert np.array_equal(frames[:, 2:], out.frames[0][:, 2:])  # below the bar: the frames as generated
    assert not (out.frames[0][:, 0] == GENERATED_BAR_COLOR).all(axis=(1, 2)).any()  # the Generation is untouched
