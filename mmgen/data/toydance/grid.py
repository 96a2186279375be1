"""The beat grid both the music and the dance of a ToyDance clip are built on.

    time (s)   0      phase        phase+P      phase+2P   ...            seconds
               |--------|------------|------------|-------- ... ----------|
    beat k             k=0          k=1          k=2
    bar pos            (k + shift) % meter        bar = (k + shift) // meter

Beats with k < 0 lie before the clip; they exist so that sounds and moves already under way at
t = 0 are continuous. `phase` in [0, P) is the first beat's time; `shift` says which beat of its
bar the first beat is (0 = the clip starts on a downbeat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BeatGrid:
    bpm: float
    phase: float  # time of beat 0 in seconds, in [0, period)
    meter: int
    shift: int  # bar position of beat 0, in [0, meter)
    seconds: float

    @property
    def period(self) -> float:
        return 60.0 / self.bpm

    @property
    def first_beat(self) -> int:
        """Lowest beat index generated: one full bar before the clip."""
        return -self.meter - 1

    @property
    def last_beat(self) -> int:
        """Highest beat index generated: the first beat at or after the clip's end, plus one."""
        return math.ceil((self.seconds - self.phase) / self.period) + 1

    def beat_indices(self) -> np.ndarray:
        return np.arange(self.first_beat, self.last_beat + 1)

    def time(self, k: np.ndarray | int) -> np.ndarray:
        return self.phase + np.asarray(k, dtype=np.float64) * self.period

    def bar(self, k: np.ndarray | int) -> np.ndarray:
        return np.floor_divide(np.asarray(k) + self.shift, self.meter)

    def position(self, k: np.ndarray | int) -> np.ndarray:
        return np.mod(np.asarray(k) + self.shift, self.meter)

    def bar_start(self, bar: int) -> float:
        return float(self.time(bar * self.meter - self.shift))

    def bars_in_clip(self) -> range:
        """Bars that overlap [0, seconds)."""
        first = int(self.bar(self.first_beat + self.meter))  # bar containing t in [-P, 0]
        while self.bar_start(first + 1) <= 0.0:
            first += 1
        last = first
        while self.bar_start(last + 1) < self.seconds:
            last += 1
        return range(first, last + 1)

    def beat_times(self) -> np.ndarray:
        """Beats inside the clip, [K] float64 seconds."""
        t = self.time(self.beat_indices())
        return t[(t >= 0.0) & (t < self.seconds)]
