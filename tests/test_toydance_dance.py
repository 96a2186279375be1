"""ToyDance clips: the dance is rigid, grounded, beat-synchronous and varied; video and caption match it."""

import numpy as np
import pytest

from mmgen.core.skeleton import SMPL24
from mmgen.data.toydance import STYLES, generate_clip
from mmgen.data.toydance.dance import Body
from mmgen.data.toydance.styles import BPM_RANGE, get_style
from mmgen.io.render import render_stick_figure

SECONDS = 6.0


@pytest.fixture(scope="module")
def clips():
    """One clip per style (no video: rendering is tested separately)."""
    return [generate_clip(100 + i, SECONDS, style=s, render_video=False) for i, s in enumerate(STYLES)]


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    return np.stack([np.linalg.norm(joints[:, j] - joints[:, p], axis=-1) for p, j in SMPL24.bones], axis=1)


def test_clip_contract(clips):
    for c in clips:
        assert c.joints.shape == (round(SECONDS * 30), 24, 3) and c.joints.dtype == np.float32
        assert c.audio.shape == (round(SECONDS * 22050),) and c.audio.dtype == np.float32
        assert c.fps == 30.0 and c.sample_rate == 22050 and c.video is None
        lo, hi = get_style(c.style).bpm
        assert lo <= c.bpm <= hi and BPM_RANGE[0] <= c.bpm <= BPM_RANGE[1]
        period = 60.0 / c.bpm
        assert c.beat_times.dtype == np.float64 and 0 <= c.beat_times[0] < period
        assert np.allclose(np.diff(c.beat_times), period) and c.beat_times[-1] < SECONDS
        assert f"{int(c.bpm)} bpm" in c.caption and get_style(c.style).phrase in c.caption


def test_bones_are_rigid_and_follow_the_body(clips):
    for c in clips:
        lengths = _bone_lengths(c.joints)  # [T, 23]
        assert lengths.std(axis=0).max() < 1e-5
    a, b = (_bone_lengths(c.joints)[0] for c in clips[:2])
    assert np.abs(a - b).max() > 0.01  # body proportions vary per clip
    body = Body(height=1.1, legs=0.9)
    expected = np.linalg.norm(body.offsets(), axis=1)[[j for _, j in SMPL24.bones]]
    base = np.linalg.norm(Body().offsets(), axis=1)[[j for _, j in SMPL24.bones]]
    shin = SMPL24.bones.index((4, 7))
    assert expected[shin] == pytest.approx(base[shin] * 1.1 * 0.9)


def test_feet_on_the_floor_and_planted(clips):
    feet = [7, 8, 10, 11]
    for c in clips:
        lowest = c.joints[:, feet, 1].min(axis=1)  # [T]
        assert np.abs(lowest).max() < 1e-5  # the lowest foot joint touches y = 0 on every frame
        assert c.joints[..., 1].min() > -1e-5  # nothing below the floor
        ankles = c.joints[:, [7, 8]][..., [0, 2]]  # [T, 2, 2] horizontal ankle positions
        slide = np.linalg.norm(np.diff(ankles, axis=0), axis=-1).min(axis=1)  # [T-1] the stiller ankle
        assert slide.max() < 1e-5  # one ankle is always planted: no foot skating


def test_joint_speed_minima_fall_on_the_beats(clips):
    for c in clips:
        speed = np.linalg.norm(np.diff(c.joints, axis=0), axis=-1).mean(axis=1)  # [T-1], k[t] at t + 0.5
        for beat in c.beat_times[(c.beat_times > 0.2) & (c.beat_times < SECONDS - 0.2)]:
            b = beat * 30 - 0.5  # the beat on the half-frame axis of the speed samples
            window = np.arange(int(b) - 4, int(b) + 6)
            nearest = window[np.argmin(speed[window])]
            assert abs(nearest - b) <= 1.0, (c.style, beat)
            mid = int((beat + 30 / c.bpm) * 30)  # half a beat later the dance is moving
            if mid < len(speed):
                assert speed[mid] > 5 * speed[window].min()


def test_bailando_bas_own_beats_beats_mismatched(clips):
    from mmgen.metrics import bas, motion_tempo, tempo_accuracy

    own = [bas(c.joints, c.beat_times, 30.0) for c in clips]
    mismatched = [bas(c.joints, d.beat_times, 30.0) for c in clips for d in clips if d is not c]
    assert np.mean(own) >= 0.85
    assert np.mean(own) - np.mean(mismatched) >= 0.3
    # the dance alone determines the tempo
    est = [motion_tempo(c.joints, 30.0) for c in clips]
    assert tempo_accuracy(est, [c.bpm for c in clips]) >= 5 / 6


def test_determinism_and_variation():
    a = generate_clip(7, 3.0, render_video=False)
    b = generate_clip(7, 3.0, render_video=False)
    assert np.array_equal(a.joints, b.joints) and np.array_equal(a.audio, b.audio) and a.caption == b.caption
    c = generate_clip(8, 3.0, style=a.style, bpm=a.bpm, render_video=False)
    assert np.abs(c.joints - a.joints).mean() > 0.01 and np.abs(c.audio - a.audio).mean() > 1e-3


def test_video_is_the_rendered_dance():
    c = generate_clip(3, 2.0, style="house")
    assert c.video.shape == (30, 64, 64, 3) and c.video.dtype == np.uint8 and c.video_fps == 15.0
    expected = render_stick_figure(c.joints, 30.0, 64, out_fps=15.0, background=get_style("house").background)
    assert np.array_equal(c.video, expected)
    assert tuple(c.video[0, 0, 0]) == get_style("house").background
    other = generate_clip(3, 2.0, style="ballet")
    assert tuple(other.video[0, 0, 0]) != tuple(c.video[0, 0, 0])  # style-dependent background
    # the figure (floor to head top) fills about 80 % of the height over the clip
    figure = (np.abs(c.video.astype(int) - get_style("house").background).sum(-1) > 80).any(axis=(0, 2))
    rows = np.nonzero(figure)[0]
    assert 0.7 * 64 <= rows.max() - rows.min() + 1 <= 0.9 * 64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bpm": 79.0}, "bpm"),
        ({"bpm": 141.0}, "bpm"),
        ({"style": "tango"}, "tango.*hiphop"),
        ({"seconds": 0.0}, "seconds"),
        ({"seconds": float("nan")}, "seconds"),
        ({"seed": -1}, "seed"),
        ({"video_size": 63}, "video_size"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = {"seed": 0, "seconds": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_clip(**args)


def test_tempo_position_places_the_tempo_inside_the_style_range():
    low, mid, high = (generate_clip(8, 3.0, style="ballet", tempo_position=p, render_video=False) for p in (0.0, 0.5, 1.0))
    assert (low.bpm, mid.bpm, high.bpm) == (80.0, 90.0, 100.0)  # ballet waltzes are trained at 80-100 bpm
    assert low.beat_times[1] - low.beat_times[0] == pytest.approx(60.0 / 80.0)
    drawn = generate_clip(8, 1.0, render_video=False)
    assert generate_clip(8, 1.0, tempo_position=0.0, render_video=False).style == drawn.style  # the seed keeps its style
    with pytest.raises(ValueError, match="either bpm or tempo_position"):
        generate_clip(8, 1.0, bpm=100, tempo_position=0.5)
    with pytest.raises(ValueError, match=r"tempo_position must be in \[0, 1\]"):
        generate_clip(8, 1.0, tempo_position=1.5)
