"""ToyDance: seeded tri-modal clips (music, dance, stick-figure video, caption) in sync by construction.

One seed fixes everything. The seed is split into independent streams (style/tempo, music,
dance, caption), so a change to, say, the dance code leaves a seed's music unchanged.

    beat grid (bpm, phase, bar shift)
        ├── music: drums on the beats, bass + chords per bar, sections      -> audio [S]
        ├── dance: one key pose per beat, eased, FK, feet planted           -> joints [T, 24, 3]
        │       └── stick figure, 15 fps                                    -> video [F, 64, 64, 3]
        └── caption "an energetic hip-hop dance at 124 bpm", beat times, structure

The dance's joint-speed minima sit on the music's beats, so each modality determines the other's
tempo and beat phase; the style (timbre, patterns, moves, background colour) is shared too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mmgen.data.toydance.dance import Body, synthesize_dance
from mmgen.data.toydance.grid import BeatGrid
from mmgen.data.toydance.music import plan_music, render_music, structure
from mmgen.data.toydance.styles import BPM_RANGE, STYLES, Style, get_style
from mmgen.io.render import render_stick_figure

__all__ = ["MOTION_FPS", "SAMPLE_RATE", "STYLES", "VIDEO_FPS", "ToyDanceClip", "caption_for", "generate_clip"]

SAMPLE_RATE = 22050
MOTION_FPS = 30.0
VIDEO_FPS = 15.0
MAX_SECONDS = 600.0
_TEMPLATES = (
    "{a} {adj} {phrase} dance at {bpm} bpm",
    "{a} {adj} {phrase} dance to music at {bpm} bpm",
    "{a} {phrase} dance, {adj}, at {bpm} bpm",
)


@dataclass
class ToyDanceClip:
    audio: np.ndarray  # [S] float32, sample_rate Hz
    sample_rate: int  # 22050
    joints: np.ndarray  # [T, 24, 3] float32, SMPL-24, y-up, metres
    fps: float  # 30.0
    video: np.ndarray | None  # [F, H, W, 3] uint8
    video_fps: float  # 15.0
    bpm: float
    beat_times: np.ndarray  # [K] float64 seconds
    style: str
    caption: str
    structure: list[dict] = field(default_factory=list)
    seed: int = 0
    key: str = ""  # e.g. "A minor"

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def check_args(
    seed: int, seconds: float, style: str | None, bpm: float | None, video_size: int, tempo_position: float | None = None
) -> None:
    """Raise ValueError naming the bad argument of `generate_clip`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"ToyDance seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise ValueError(f"ToyDance seconds must be in (0, {MAX_SECONDS:g}], got {seconds!r}")
    if style is not None and style not in STYLES:
        raise ValueError(f"unknown ToyDance style {style!r}; known styles: {', '.join(STYLES)}")
    if bpm is not None and not (math.isfinite(bpm) and BPM_RANGE[0] <= bpm <= BPM_RANGE[1]):
        raise ValueError(f"ToyDance bpm must be in [{BPM_RANGE[0]:g}, {BPM_RANGE[1]:g}], got {bpm!r}")
    if tempo_position is not None:
        if bpm is not None:
            raise ValueError("give ToyDance either bpm or tempo_position, not both")
        if not (math.isfinite(tempo_position) and 0.0 <= tempo_position <= 1.0):
            raise ValueError(f"ToyDance tempo_position must be in [0, 1], got {tempo_position!r}")
    if video_size < 16 or video_size % 2:
        raise ValueError(
            f"ToyDance video_size must be an even number >= 16 (H.264 yuv420p), got {video_size}"
        )


def caption_for(rng: np.random.Generator, style: Style, bpm: float, energy: float) -> str:
    """E.g. "an energetic hip-hop dance at 124 bpm"; the adjective follows the dance's energy."""
    adj = style.adjectives[0 if energy < 0.88 else 1 if energy < 1.07 else 2]
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    body = template.removeprefix("{a} ").format(adj=adj, phrase=style.phrase, bpm=int(round(bpm)))
    return f"{'an' if body[0] in 'aeiou' else 'a'} {body}"


def generate_clip(
    seed: int,
    seconds: float = 4.0,
    style: str | None = None,
    bpm: float | None = None,
    render_video: bool = True,
    video_size: int = 64,
    tempo_position: float | None = None,
) -> ToyDanceClip:
    """Generate one ToyDance clip; the same arguments always give the same clip.

    Args:
        seed: non-negative integer; everything random follows from it.
        seconds: clip length; style: one of STYLES (default: drawn from the seed);
        bpm: tempo in [80, 140] (default: drawn from the style's range, an integer).
        render_video: also draw the stick-figure video (15 fps, video_size x video_size).
        tempo_position: instead of `bpm`, where in the style's own tempo range the tempo lies
            (0 = its slowest, 1 = its fastest; rounded to an integer bpm). Evaluation sets use it to
            span slow to fast without playing a style at a tempo its training clips never had.
    """
    check_args(seed, seconds, style, bpm, video_size, tempo_position)
    streams = np.random.SeedSequence(int(seed)).spawn(4)
    rng_main, rng_music, rng_dance, rng_text = (np.random.default_rng(s) for s in streams)
    sty = get_style(style) if style is not None else get_style(STYLES[int(rng_main.integers(len(STYLES)))])
    if bpm is not None:
        tempo = float(bpm)
    elif tempo_position is not None:
        tempo = float(round(sty.bpm[0] + tempo_position * (sty.bpm[1] - sty.bpm[0])))
    else:
        tempo = float(rng_main.integers(sty.bpm[0], sty.bpm[1] + 1))
    period = 60.0 / tempo
    grid = BeatGrid(
        bpm=tempo,
        phase=float(rng_main.uniform(0.0, period)),
        meter=sty.meter,
        shift=int(rng_main.integers(sty.meter)),
        seconds=float(seconds),
    )
    energy = float(rng_main.uniform(0.7, 1.25))
    body = Body.random(rng_main)
    facing = float(rng_main.uniform(-0.45, 0.45))

    plan = plan_music(rng_music, sty, grid)
    audio = render_music(rng_music, plan, sty, grid, SAMPLE_RATE)
    joints = synthesize_dance(rng_dance, sty, grid, MOTION_FPS, energy, body, facing)
    video = None
    if render_video:
        video = render_stick_figure(
            joints, MOTION_FPS, size=video_size, out_fps=VIDEO_FPS, background=sty.background
        )
    return ToyDanceClip(
        audio=audio,
        sample_rate=SAMPLE_RATE,
        joints=joints,
        fps=MOTION_FPS,
        video=video,
        video_fps=VIDEO_FPS,
        bpm=tempo,
        beat_times=grid.beat_times(),
        style=sty.name,
        caption=caption_for(rng_text, sty, tempo, energy),
        structure=structure(plan, grid),
        seed=int(seed),
        key=plan.key_name(sty),
    )
