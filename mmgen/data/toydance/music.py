"""ToyDance music: drums, bass, chord pads and an optional arpeggio on a `BeatGrid`.

Everything is additive synthesis or filtered noise in numpy/scipy, vectorised per sound; a sound
is made once per clip and pasted at every onset (with a small velocity variation). The kick,
snare/clap and hats sit on the grid, so librosa's beat tracker finds the true tempo and phase.

A `MusicPlan` holds every random choice (key, progression, mix levels, which bars each
instrument sits out); `structure()` turns it into the caption's machine-readable
[{"instrument", "start", "end"}] list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from mmgen.data.toydance.grid import BeatGrid
from mmgen.data.toydance.styles import Style

INSTRUMENTS = ("kick", "snare", "hihat", "bass", "pad", "arp")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class MusicPlan:
    key: int  # pitch class of the tonic, 0 = C
    progression: tuple[int, ...]  # scale degree of each bar's chord, cycled
    levels: dict[str, float]
    silent: dict[str, frozenset[int]] = field(default_factory=dict)  # bars an instrument sits out
    instruments: tuple[str, ...] = ()

    def key_name(self, style: Style) -> str:
        """E.g. "A minor"."""
        return f"{NOTE_NAMES[self.key]} {style.mode}"

    def plays(self, instrument: str, bar: int) -> bool:
        return instrument in self.instruments and bar not in self.silent.get(instrument, frozenset())


def plan_music(rng: np.random.Generator, style: Style, grid: BeatGrid) -> MusicPlan:
    """Draw key, progression, mix and sections (intro entries, a bass drop-out, a breakdown)."""
    instruments = tuple(i for i in INSTRUMENTS if i != "arp" or style.arp)
    levels = {i: style.levels[i] * float(rng.uniform(0.75, 1.25)) for i in instruments}
    bars = list(grid.bars_in_clip())
    before = set(range(int(grid.bar(grid.first_beat)), bars[0]))  # pre-roll bars follow the first bar
    silent: dict[str, set[int]] = {i: set() for i in instruments}
    inner = bars[1:-1] if len(bars) >= 3 else []
    if len(bars) >= 2 and rng.random() < 0.35:  # intro: one layer enters on the second bar
        late = str(rng.choice([i for i in ("hihat", "pad", "arp", "snare") if i in instruments]))
        silent[late] |= {bars[0]} | before
    if inner and rng.random() < 0.3:  # the bass drops out for a bar
        silent["bass"].add(int(rng.choice(inner)))
    if inner and rng.random() < 0.25:  # breakdown: kick and bass drop out for a bar
        bar = int(rng.choice(inner))
        silent["kick"].add(bar)
        silent["bass"].add(bar)
    if "arp" in instruments and len(bars) >= 2 and rng.random() < 0.3:  # arpeggio only in the second half
        silent["arp"] |= set(bars[: len(bars) // 2]) | before
    return MusicPlan(
        key=int(rng.integers(0, 12)),
        progression=tuple(style.progressions[int(rng.integers(len(style.progressions)))]),
        levels=levels,
        silent={k: frozenset(v) for k, v in silent.items()},
        instruments=instruments,
    )


def structure(plan: MusicPlan, grid: BeatGrid) -> list[dict]:
    """Which instrument plays when: sorted [{"instrument", "start", "end"}] in seconds, in the clip."""
    out = []
    bars = list(grid.bars_in_clip())
    for inst in plan.instruments:
        run_start = None
        for b in bars + [None]:
            on = b is not None and plan.plays(inst, b)
            if on and run_start is None:
                run_start = b
            elif not on and run_start is not None:
                end_bar = b if b is not None else bars[-1] + 1
                start = max(0.0, grid.bar_start(run_start))
                end = min(grid.seconds, grid.bar_start(end_bar))
                out.append({"instrument": inst, "start": round(start, 3), "end": round(end, 3)})
                run_start = None
    return sorted(out, key=lambda d: (d["start"], INSTRUMENTS.index(d["instrument"])))


# ---------------------------------------------------------------------------------------------
# sounds
# ---------------------------------------------------------------------------------------------


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(int(round(seconds * sr))) / sr


def _filtered_noise(
    rng: np.random.Generator, n: int, sr: int, band: tuple[float | None, float | None]
) -> np.ndarray:
    lo, hi = band
    noise = rng.standard_normal(n)
    if lo and hi:
        sos = signal.butter(2, [lo, min(hi, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    elif lo:
        sos = signal.butter(2, lo, btype="highpass", fs=sr, output="sos")
    else:
        sos = signal.butter(2, hi, btype="lowpass", fs=sr, output="sos")
    out = signal.sosfilt(sos, noise)
    return out / (np.abs(out).max() + 1e-9)


def drum_sounds(rng: np.random.Generator, style: Style, sr: int) -> dict[str, np.ndarray]:
    """One-shot samples of this clip's kit (each peak-normalised to 1)."""
    f0, f1, decay = style.kick_sound
    f0, f1 = f0 * rng.uniform(0.92, 1.08), f1 * rng.uniform(0.92, 1.08)
    t = _t(decay * 4, sr)
    freq = f1 + (f0 - f1) * np.exp(-t / 0.035)
    kick = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / decay) * (1 - np.exp(-t / 0.002))
    kick += 0.25 * _filtered_noise(rng, len(t), sr, (None, 3000.0)) * np.exp(-t / 0.004)

    t = _t(0.4, sr)
    if style.snare_sound == "clap":
        env = sum(np.exp(-np.clip(t - d, 0, None) / 0.006) * (t >= d) for d in (0.0, 0.011, 0.022))
        env = env + 0.7 * np.exp(-np.clip(t - 0.03, 0, None) / 0.11) * (t >= 0.03)
        snare = _filtered_noise(rng, len(t), sr, (900.0, 4500.0)) * env
    elif style.snare_sound == "brush":
        env = (1 - np.exp(-t / 0.015)) * np.exp(-t / 0.13)
        snare = _filtered_noise(rng, len(t), sr, (1500.0, 6000.0)) * env + 0.3 * np.sin(
            2 * np.pi * 220 * t
        ) * np.exp(-t / 0.05)
    else:
        tone = 0.6 * np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.06) + 0.3 * np.sin(
            2 * np.pi * 330 * t
        ) * np.exp(-t / 0.035)
        snare = tone + _filtered_noise(rng, len(t), sr, (1500.0, 9000.0)) * np.exp(
            -t / rng.uniform(0.09, 0.15)
        )

    t = _t(0.5, sr)
    hiss = _filtered_noise(rng, len(t), sr, (7000.0, None))
    hat = hiss * np.exp(-t / rng.uniform(0.025, 0.045))
    open_hat = hiss * np.exp(-t / 0.2)
    sounds = {"kick": kick, "snare": snare, "hihat": hat, "open_hat": open_hat}
    return {k: (v / (np.abs(v).max() + 1e-9)).astype(np.float32) for k, v in sounds.items()}


def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12)


def tone(midi: float, seconds: float, sr: int, kind: str) -> np.ndarray:
    """One pitched note of `seconds` plus its release; peak about 1."""
    f = _midi_hz(midi)
    release = {"strings": 0.3, "saw": 0.15, "organ": 0.05, "epiano": 0.25}.get(kind, 0.04)
    t = _t(seconds + release, sr)
    max_h = max(1, int(0.45 * sr / f))
    vibrato = np.zeros_like(t)
    if kind == "strings":
        vibrato = 0.003 * np.sin(2 * np.pi * 5.5 * t) * np.clip(t / 0.3, 0, 1)
    phase = 2 * np.pi * f * np.cumsum(1 + vibrato) / sr  # [N]
    if kind == "sub":
        harm = np.array([1, 2])
        amps = np.array([[1.0], [0.15]]) * np.ones_like(t)
    elif kind in ("saw", "strings"):
        harm = np.arange(1, min(12, max_h) + 1)
        cutoff = 2.5 + (7 * np.exp(-t / 0.12) if kind == "saw" else 3.0)  # harmonic index of the "filter"
        amps = (1.0 / harm[:, None]) / (1 + (harm[:, None] / cutoff) ** 4)
    elif kind == "pluck":
        harm = np.arange(1, min(10, max_h) + 1)
        amps = harm[:, None] ** -1.2 * np.exp(-t * (2.0 + 1.5 * harm[:, None]))
    elif kind == "organ":
        harm = np.array([1, 2, 3, 4, 6])
        amps = np.array([[1.0], [0.5], [0.3], [0.2], [0.1]]) * np.ones_like(t)
    elif kind == "epiano":
        harm = np.array([1, 2, 3])
        amps = np.stack([np.ones_like(t), 0.35 * np.exp(-t / 0.3), 0.12 * np.exp(-t / 0.15)])
        amps = amps * (1 + 0.15 * np.sin(2 * np.pi * 4.5 * t)) * np.exp(-t / 1.5)
    else:
        raise ValueError(f"unknown tone kind {kind!r}")
    keep = harm * f < 0.45 * sr
    wave = (np.sin(harm[keep, None] * phase[None, :]) * amps[keep]).sum(0)  # [N]
    attack = {"strings": 0.2, "saw": 0.03, "organ": 0.01, "epiano": 0.004}.get(kind, 0.003)
    env = np.clip(t / attack, 0, 1) * np.clip((seconds + release - t) / release, 0, 1)
    if kind in ("sub", "saw"):
        env = env * (0.55 + 0.45 * np.exp(-t / 0.25))
    return (wave * env / (np.abs(wave).max() + 1e-9)).astype(np.float32)


def _add(buf: np.ndarray, start_s: float, sound: np.ndarray, gain: float, sr: int) -> None:
    i = int(round(start_s * sr))
    a, b = max(i, 0), min(i + len(sound), len(buf))
    if b > a:
        buf[a:b] += gain * sound[a - i : b - i]


def _chord(plan: MusicPlan, style: Style, degree: int) -> tuple[int, list[int]]:
    """Bass root (MIDI 36..47) and pad voicing (MIDI ~55..76) of the triad on `degree`."""
    scale = SCALES[style.mode]
    notes = [scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]
    root = plan.key + notes[0]
    bass = 36 + (root - 36) % 12
    pad_root = 55 + (root - 55) % 12
    return bass, [pad_root + n - notes[0] for n in notes]


def render_music(
    rng: np.random.Generator, plan: MusicPlan, style: Style, grid: BeatGrid, sr: int
) -> np.ndarray:
    """The clip's audio [round(seconds * sr)] float32, peak-normalised to a random level <= 0.95."""
    n = int(round(grid.seconds * sr))
    tracks = {i: np.zeros(n) for i in plan.instruments}
    step = grid.period / 4  # one 16th note
    kit = drum_sounds(rng, style, sr)
    cache: dict[tuple, np.ndarray] = {}

    def note(midi: int, steps: float, kind: str) -> np.ndarray:
        key = (midi, round(steps * step * sr), kind)
        if key not in cache:
            cache[key] = tone(midi, steps * step, sr, kind)
        return cache[key]

    def step_time(bar: int, s: int) -> float:
        swing = style.swing * step * (1.0 if s % 4 == 2 else 0.5 if s % 2 else 0.0)
        return grid.bar_start(bar) + s * step + swing

    first_bar, last_bar = int(grid.bar(grid.first_beat)), int(grid.bar(grid.last_beat))
    for bar in range(first_bar, last_bar + 1):
        degree = plan.progression[bar % len(plan.progression)]
        bass_root, voicing = _chord(plan, style, degree)
        for name, steps, sound in (
            ("kick", style.kick, "kick"),
            ("snare", style.snare, "snare"),
            ("hihat", style.hat, "hihat"),
            ("hihat", style.open_hat, "open_hat"),
        ):
            if not plan.plays(name, bar):
                continue
            for s in steps:
                accent = 1.0 if s % 4 == 0 else 0.8 if s % 2 == 0 else 0.6
                gain = accent * (1 + 0.06 * rng.standard_normal())
                _add(tracks[name], step_time(bar, s), kit[sound], gain, sr)
        if plan.plays("bass", bar):
            for s, length, interval in style.bass:
                _add(
                    tracks["bass"],
                    step_time(bar, s),
                    note(bass_root + interval, length, style.bass_sound),
                    1.0,
                    sr,
                )
        if plan.plays("pad", bar):
            hits = style.pad_hits or ((0, style.steps_per_bar),)
            for s, length in hits:
                for m in voicing:
                    _add(tracks["pad"], step_time(bar, s), note(m, length, style.pad_sound), 1 / 3, sr)
        if "arp" in plan.instruments and plan.plays("arp", bar):
            tones = [voicing[0] + 12, voicing[1] + 12, voicing[2] + 12, voicing[0] + 24]
            order = tones + tones[-2:0:-1]  # up then down
            for i, s in enumerate(range(0, style.steps_per_bar, 2)):
                _add(tracks["arp"], step_time(bar, s), note(order[i % len(order)], 2, "pluck"), 1.0, sr)
    mix = sum(plan.levels[i] * tracks[i] for i in plan.instruments)
    peak = np.abs(mix).max()
    return (mix * (rng.uniform(0.7, 0.95) / (peak + 1e-9))).astype(np.float32)
