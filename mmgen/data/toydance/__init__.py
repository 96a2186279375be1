"""ToyDance: the embedded synthetic set of music, dance and stick-figure video, in sync by construction.

    clip     generate_clip(seed) -> ToyDanceClip (audio, joints, frames, caption, beat times)
    grid     the beat grid music and dance are built on
    styles   six styles: tempo range, metre, patterns, timbres, moves
    music    drums / bass / chords / arpeggio on the grid
    moves    key poses per beat;  dance: poses -> joint rotations -> FK on SMPL-24
    io       make_dataset / ToyDanceDataset / InMemoryToyDance (on disk and in memory)
    report   `mmgen toydance report`: is a made set in sync, by the published metrics?
"""

from mmgen.data.toydance.clip import (
    MAX_SECONDS,
    MOTION_FPS,
    SAMPLE_RATE,
    STYLES,
    VIDEO_FPS,
    ToyDanceClip,
    caption_for,
    generate_clip,
)

__all__ = [
    "MAX_SECONDS",
    "MOTION_FPS",
    "SAMPLE_RATE",
    "STYLES",
    "VIDEO_FPS",
    "ToyDanceClip",
    "caption_for",
    "generate_clip",
]
