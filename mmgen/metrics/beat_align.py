"""Beat Align Score (BAS): the two incompatible published versions, under explicit names.

Music beats are passed in **seconds** and converted to frame indices of the joint sequence with
`round(t * fps)`, which is what the published code's music-feature frame indices are when the audio
features run at the motion frame rate (FACT and Bailando: 60 fps, hop 512 at 30,720 Hz). Duplicates
after rounding are merged; beats outside the envelope (negative, or past its end) are dropped, as
the published truncation `[:length]` of the one-hot beat vector does (mint's generated-motion path
does not truncate the music side; that only differs for motion beats within a few frames of the end).

* "bailando" - Bailando `utils/beat_align_score.py` (what EDGE, Bailando++, LODGE-era and most
  diffusion papers report): motion beats = strict minima of the gaussian-smoothed (sigma 5 frames)
  mean joint speed (length T-1); music beats kept if < T-1;
  BAS = mean over MUSIC beats b of exp(-min_m (m - b)^2 / (2 * 9)).
  The published code crashes on no motion beats (np.min of empty) and divides by zero on no
  music beats: both raise ValueError here.
* "fact" - FACT / mint `tools/calculate_beat_scores.py`: motion beats = minima of the summed joint
  speed within +-10 frames (length T); music beats kept if < T;
  BAS = mean over MOTION beats m of exp(-min_b (m - b)^2 / (2 * 3^2)); 0.0 if there are no motion
  beats (as published); no music beats raises ValueError (published: argmin of an empty array).
  FACT drops the first 120 frames (seed motion) of generated results after detecting beats on the
  whole sequence: pass `skip_frames=120`.

The sigma of both is 3 frames, i.e. 0.05 s at 60 fps but 0.1 s at 30 fps: numbers at different fps
are not comparable. Not reproduced, noted: the motion-to-music peer vtan05/dmd `bas_cdcd.py` compares
librosa beat frames of the audio (hop 512 at 22,050 Hz = 43.07 fps) with 30-fps motion frame indices
without converting; pass beat times in seconds here instead. Final numbers in the papers are the
mean over test sequences (`mean_bas`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmgen.metrics._checks import (
    check_finite,
    check_positive,
    check_variant,
    joints_array,
    sequence_list,
    to_numpy,
)
from mmgen.metrics.beats import MOTION_VARIANTS, motion_beats

BAS_SIGMA_FRAMES = 3.0


def beats_to_frames(beat_seconds: Any, fps: float, num_frames: int) -> np.ndarray:
    """Beat times (s) -> sorted unique frame indices `round(t * fps)` in [0, num_frames)."""
    t = to_numpy(beat_seconds, "music_beats", dtype=np.float64).reshape(-1)
    check_finite(t, "music_beats")
    idx = np.unique(np.rint(t * fps).astype(np.int64))
    return idx[(idx >= 0) & (idx < num_frames)]


def alignment_score(
    reference: np.ndarray, other: np.ndarray, sigma: float = BAS_SIGMA_FRAMES, dtype: type = np.float64
) -> float:
    """mean over r in `reference` of exp(-min_o (r - o)^2 / (2 sigma^2)); frame indices, both non-empty.

    FACT computes the distances and exponentials in float32 (`dtype=np.float32`), Bailando in float64.
    """
    d = np.abs(reference[:, None] - other[None, :]).min(axis=1).astype(dtype)  # [R]
    scores = np.exp(-(d**2) / dtype(2.0 * sigma**2))
    return float(sum(float(s) for s in scores) / len(scores))


def bas(
    joints: Any,
    music_beats: Any,
    fps: float,
    variant: str = "bailando",
    skip_frames: int = 0,
    sigma: float = BAS_SIGMA_FRAMES,
) -> float:
    """Beat Align Score of one joint sequence `[T, J, 3]` against music beats given in seconds.

    `variant`: "bailando" (default; averaged over music beats) or "fact" (averaged over motion
    beats). `skip_frames` drops beats (motion and music) before that frame after detection, as FACT
    does with its 120-frame seed. Returns a Python float in [0, 1].
    """
    check_variant(variant, MOTION_VARIANTS, "bas")
    fps = check_positive(fps, "fps")
    p = joints_array(joints, dims=(2, 3))
    env_len = len(p) - 1 if variant == "bailando" else len(p)  # length of the variant's speed envelope
    motion = motion_beats(p, fps, variant)
    music = beats_to_frames(music_beats, fps, env_len)
    if skip_frames:
        motion, music = motion[motion >= skip_frames], music[music >= skip_frames]
    if variant == "bailando":
        if len(music) == 0:
            raise ValueError(
                "bas(bailando): no music beats inside the motion sequence (published code divides by zero)"
            )
        if len(motion) == 0:
            raise ValueError("bas(bailando): no motion beats (no local minimum of the smoothed joint speed)")
        return alignment_score(music, motion, sigma)
    if len(motion) == 0:
        return 0.0
    if len(music) == 0:
        raise ValueError("bas(fact): no music beats inside the motion sequence")
    return alignment_score(motion, music, sigma, dtype=np.float32)


def mean_bas(
    joints_list: Any, music_beats_list: Any, fps: float, variant: str = "bailando", skip_frames: int = 0
) -> float:
    """Mean BAS over sequences, as the papers report it. Errors name the failing sequence index."""
    seqs = sequence_list(joints_list, "joints_list")
    beats = sequence_list(music_beats_list, "music_beats_list")
    if len(seqs) != len(beats):
        raise ValueError(f"mean_bas: {len(seqs)} joint sequences but {len(beats)} music-beat arrays")
    scores = []
    for i, (j, b) in enumerate(zip(seqs, beats, strict=True)):
        try:
            scores.append(bas(j, b, fps, variant=variant, skip_frames=skip_frames))
        except ValueError as err:
            raise ValueError(f"sequence {i}: {err}") from None
    return float(np.mean(scores))
