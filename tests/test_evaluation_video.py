import numpy as np
import pytest

from mmgen.data.toydance import generate_clip
from mmgen.evaluation import video_beat_alignment


def test_pauses_on_the_beats_score_one_and_offbeat_pauses_score_low():
    fps, seconds = 15.0, 4.0
    t = np.arange(int(fps * seconds)) / fps
    # a soft blob at x(t) = 30 + 20 cos(pi (t - h) / 0.6 s) pauses every 0.6 s (9 frames); the
    # half-frame shift h puts each pause between two frames, where the frame-difference envelope
    # has a strict minimum
    h = 0.5 / fps
    beats = np.arange(0.6, seconds - 0.3, 0.6) + h
    x = 30 + 20 * np.cos(np.pi * (t - h) / 0.6)
    cols = np.arange(64)
    blob = 255 * np.exp(-((cols[None, :] - x[:, None]) ** 2) / (2 * 3.0**2))  # [F, W]
    frames = np.repeat(np.repeat(blob[:, None, :, None], 16, axis=1), 3, axis=3).round().astype(np.uint8)
    on = video_beat_alignment(frames, fps, beats)
    off = video_beat_alignment(frames, fps, beats + 0.3)
    assert on > 0.8 and off < 0.2
    # hand check of the score formula with one beat 0.1 s away from a pause: exp(-0.5)
    assert video_beat_alignment(frames, fps, [1.3 + h]) == pytest.approx(np.exp(-0.5), abs=0.05)


def test_toydance_video_follows_its_own_music():
    a, b = generate_clip(3, seconds=8.0), generate_clip(4, seconds=8.0)
    assert abs(a.bpm - b.bpm) > 10
    own = video_beat_alignment(a.video, a.video_fps, a.beat_times)
    other = video_beat_alignment(a.video, a.video_fps, b.beat_times)
    assert own > 0.75 and own > other + 0.25


def test_bad_input():
    with pytest.raises(ValueError, match="frames must be"):
        video_beat_alignment(np.zeros((2, 4, 4, 3), np.uint8), 15.0, [0.5])
    assert np.isnan(video_beat_alignment(np.zeros((10, 4, 4, 3), np.uint8), 15.0, [0.2]))
