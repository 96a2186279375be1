"""Structured temporal captions (Make-An-Audio 2 style) from a clip's known structure.

    [{"instrument": "kick", "start": 0.0, "end": 8.0},
     {"instrument": "bass", "start": 0.0, "end": 2.1}]      (8-second clip)
        -> "<kick @ all>, <bass @ start>"

Each event gets one place on the clip: `all` when it covers (nearly) the whole clip, otherwise
`start` / `mid` / `end` from the third of the clip its centre falls in. Tags are ordered by start
time (then name); an instrument with several runs at the same place is named once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

PLACES = ("all", "start", "mid", "end")


def event_place(start: float, end: float, seconds: float, all_fraction: float = 0.9) -> str:
    """Where an event [start, end) sits in a clip of `seconds`."""
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"clip length must be positive, got {seconds}")
    if not (0 <= start < end) or not math.isfinite(end):
        raise ValueError(f"event must have 0 <= start < end, got start={start}, end={end}")
    start, end = min(start, seconds), min(end, seconds)
    if end - start >= all_fraction * seconds:
        return "all"
    centre = 0.5 * (start + end) / seconds
    return "start" if centre < 1 / 3 else "end" if centre >= 2 / 3 else "mid"


def structure_caption(
    structure: Iterable[Mapping[str, Any]], seconds: float, all_fraction: float = 0.9
) -> str:
    """The "<name @ place>, ..." caption of a structure list of {"instrument", "start", "end"}."""
    events = []
    for i, ev in enumerate(structure):
        try:
            name, start, end = str(ev["instrument"]), float(ev["start"]), float(ev["end"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"structure[{i}]: needs 'instrument', 'start', 'end' ({err})") from None
        if start >= seconds:
            continue
        events.append((start, name, event_place(start, end, seconds, all_fraction)))
    tags, seen = [], set()
    for _, name, place in sorted(events):
        if (name, place) not in seen:
            seen.add((name, place))
            tags.append(f"<{name} @ {place}>")
    return ", ".join(tags)
