"""The six ToyDance styles: tempo range, metre, key, drum/bass/chord patterns, timbres, dance moves.

Patterns are written in 16th-note steps from the start of a bar (a 4/4 bar has steps 0..15,
a 3/4 bar 0..11; beats fall on steps 0, 4, 8, 12). Chord progressions are scale degrees
(0 = I ... 6 = VII), one chord per bar. Moves are named in `toydance_moves.MOVES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BPM_RANGE = (80.0, 140.0)


@dataclass(frozen=True)
class Style:
    name: str
    phrase: str  # how captions name the dance
    adjectives: tuple[str, str, str]  # low, medium, high energy
    bpm: tuple[int, int]
    meter: int  # beats per bar
    mode: str  # "major" | "minor"
    progressions: tuple[tuple[int, ...], ...]
    kick: tuple[int, ...]
    snare: tuple[int, ...]
    hat: tuple[int, ...]
    open_hat: tuple[int, ...] = ()
    swing: float = 0.0  # delay of off-beat 8ths, fraction of a 16th
    bass: tuple[tuple[int, int, int], ...] = ()  # (step, length in steps, semitones above chord root)
    pad_hits: tuple[tuple[int, int], ...] = ()  # (step, length) chord stabs; () = sustained chord per bar
    arp: bool = False  # 8th-note arpeggio of the chord an octave up
    kick_sound: tuple[float, float, float] = (150.0, 50.0, 0.35)  # start Hz, end Hz, decay s
    snare_sound: str = "snare"  # "snare" | "clap" | "brush"
    bass_sound: str = "sub"  # "sub" | "saw" | "pluck"
    pad_sound: str = "epiano"  # "epiano" | "saw" | "strings" | "organ"
    levels: dict[str, float] = field(default_factory=dict)
    background: tuple[int, int, int] = (24, 24, 32)
    moves: tuple[str, ...] = ()

    @property
    def steps_per_bar(self) -> int:
        return 4 * self.meter


_BASE_LEVELS = {"kick": 1.0, "snare": 0.55, "hihat": 0.22, "bass": 0.5, "pad": 0.22, "arp": 0.16}


def _levels(**over: float) -> dict[str, float]:
    return {**_BASE_LEVELS, **over}


STYLE_TABLE: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            name="hiphop",
            phrase="hip-hop",
            adjectives=("laid-back", "groovy", "energetic"),
            bpm=(84, 104),
            meter=4,
            mode="minor",
            progressions=((0, 5, 3, 4), (0, 3, 6, 4), (0, 6, 5, 4)),
            kick=(0, 7, 10),
            snare=(4, 12),
            hat=(0, 2, 4, 6, 8, 10, 12, 14),
            swing=0.45,
            bass=((0, 6, 0), (7, 3, 0), (10, 4, 7)),
            kick_sound=(130.0, 45.0, 0.45),
            bass_sound="sub",
            pad_sound="epiano",
            levels=_levels(bass=0.6),
            background=(52, 28, 72),
            moves=("bounce_swing", "rock", "step_touch", "arm_wave", "turn_bar"),
        ),
        Style(
            name="house",
            phrase="house",
            adjectives=("smooth", "bouncy", "high-energy"),
            bpm=(118, 134),
            meter=4,
            mode="minor",
            progressions=((0, 5, 2, 6), (0, 3, 4, 3), (0, 6, 5, 6)),
            kick=(0, 4, 8, 12),
            snare=(4, 12),
            hat=(0, 4, 8, 12),
            open_hat=(2, 6, 10, 14),
            # chord stabs and bass also on the beats: all-off-beat accents made librosa hear 2/3 tempo
            bass=((0, 2, 0), (2, 2, 0), (6, 2, 12), (8, 2, 0), (10, 2, 0), (14, 2, 12)),
            pad_hits=((0, 2), (6, 2), (8, 2), (14, 2)),
            kick_sound=(160.0, 52.0, 0.28),
            snare_sound="clap",
            bass_sound="saw",
            pad_sound="organ",
            levels=_levels(hihat=0.2, pad=0.2),
            background=(16, 40, 78),
            moves=("jack", "side_shuffle", "heel_toe", "arm_pump", "turn_bar"),
        ),
        Style(
            name="ballet",
            phrase="ballet waltz",
            adjectives=("gentle", "flowing", "soaring"),
            bpm=(80, 100),
            meter=3,
            mode="major",
            progressions=((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3)),
            kick=(0,),
            snare=(4, 8),
            hat=(0, 4, 8),
            bass=((0, 4, 0), (4, 2, 7), (8, 2, 12)),
            pad_hits=((4, 3), (8, 3)),
            arp=True,
            kick_sound=(110.0, 55.0, 0.5),
            snare_sound="brush",
            bass_sound="pluck",
            pad_sound="strings",
            levels=_levels(kick=0.9, snare=0.35, hihat=0.12, arp=0.2),
            background=(70, 48, 62),
            moves=("port_de_bras", "balance", "waltz_turn", "plie"),
        ),
        Style(
            name="breaking",
            phrase="breaking",
            adjectives=("loose", "funky", "explosive"),
            bpm=(104, 124),
            meter=4,
            mode="minor",
            progressions=((0, 0, 3, 3), (0, 6, 5, 6), (0, 3, 0, 4)),
            kick=(0, 6, 10),
            snare=(4, 12),
            hat=tuple(range(16)),
            open_hat=(14,),
            swing=0.2,
            bass=((0, 3, 0), (3, 2, 12), (6, 2, 0), (10, 3, 10), (14, 2, 7)),
            kick_sound=(140.0, 48.0, 0.3),
            bass_sound="pluck",
            pad_sound="saw",
            levels=_levels(hihat=0.16, pad=0.14),
            background=(28, 60, 40),
            moves=("toprock_cross", "kick_out", "twist_swing", "indian_step"),
        ),
        Style(
            name="pop",
            phrase="pop",
            adjectives=("easy-going", "upbeat", "euphoric"),
            bpm=(100, 130),
            meter=4,
            mode="major",
            progressions=((0, 4, 5, 3), (0, 5, 3, 4), (3, 0, 4, 5)),
            kick=(0, 8, 10),
            snare=(4, 12),
            hat=(0, 2, 4, 6, 8, 10, 12, 14),
            bass=((0, 2, 0), (2, 2, 0), (4, 2, 0), (6, 2, 0), (8, 2, 0), (10, 2, 0), (12, 2, 0), (14, 2, 0)),
            arp=True,
            kick_sound=(150.0, 50.0, 0.32),
            snare_sound="clap",
            bass_sound="saw",
            pad_sound="saw",
            levels=_levels(pad=0.18),
            background=(78, 30, 44),
            moves=("point", "hip_sway", "clap", "step_touch"),
        ),
        Style(
            name="locking",
            phrase="locking",
            adjectives=("cool", "funky", "fiery"),
            bpm=(96, 120),
            meter=4,
            mode="major",
            progressions=((0, 3, 0, 4), (1, 4, 0, 0), (0, 6, 3, 4)),
            kick=(0, 3, 10),
            snare=(4, 12),
            hat=(0, 2, 4, 6, 8, 10, 12, 14),
            open_hat=(6,),
            swing=0.3,
            bass=((0, 2, 0), (3, 1, 12), (6, 2, 7), (8, 2, 0), (11, 1, 10), (14, 2, 7)),
            pad_hits=((2, 1), (6, 2), (12, 2)),
            kick_sound=(145.0, 50.0, 0.3),
            bass_sound="pluck",
            pad_sound="organ",
            levels=_levels(pad=0.2),
            background=(76, 62, 18),
            moves=("lock_point", "wrist_roll", "knee_drop", "kick_step"),
        ),
    )
}
STYLES: tuple[str, ...] = tuple(STYLE_TABLE)


def get_style(name: str) -> Style:
    try:
        return STYLE_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown ToyDance style {name!r}; known styles: {', '.join(STYLES)}") from None
