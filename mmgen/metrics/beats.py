"""Music onsets / beats (librosa) and motion beats (minima of joint speed), as the published code has them.

Units: music onsets and beats are returned in **seconds**; motion beats in **frame indices** of the
joint sequence. The published motion constants are in frames and are NOT rescaled with `fps`:
Bailando smooths with sigma = 5 frames (its evaluation ran on 60-fps joints, EDGE-era works feed
30-fps joints to the same code); FACT/mint's `order=10` minimum window is commented "10 for 60FPS".

Sources
-------
* Bailando, `utils/beat_align_score.py` (`calc_db`): kinetic velocity = mean over joints of
  ||p[t+1] - p[t]||, `scipy.ndimage.gaussian_filter(., 5)`, `argrelextrema(., np.less)`.
* FACT / google-research/mint, `tools/calculate_beat_scores.py` (`motion_peak_onehot`): velocity
  v[0] = 0, v[t] = p[t] - p[t-1] in float32, envelope = sum over joints of ||v||,
  `argrelextrema(., np.less, order=10)`.
* D2M-GAN (`L-YeZhu/Beats_Scores`) and LORIS (`OpenGVLab/LORIS beats_scores.py`): `onset_detect`
  with `wait=1, delta=0.2` and their own peak-picking windows (see `ONSET_PARAMS`).
* FACT/EDGE music beats: `librosa.beat.beat_track` (hop 512) with `start_bpm` from the AIST++ music id
  and `tightness=100` (librosa's default).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import argrelextrema

from mmgen.core.numba_cache import warm_librosa
from mmgen.metrics._checks import audio_array, check_positive, check_variant, joints_array

MOTION_VARIANTS = ("bailando", "fact")

# Peak-picking parameters of `librosa.onset.onset_detect` per published variant (hop 512, in frames).
# "librosa" = the library defaults (pre_max = 0.03 sr // hop, post_max = 1, pre_avg = 0.1 sr // hop,
# post_avg = 0.1 sr // hop + 1, wait = 0.03 sr // hop, delta = 0.07). D2M leaves pre_max at its
# default, which is 1.0 frame at 22,050 Hz.
ONSET_PARAMS: dict[str, dict[str, float]] = {
    "librosa": {},
    "d2m": {"wait": 1, "delta": 0.2, "pre_avg": 1, "post_avg": 1, "post_max": 1},
    "loris": {"wait": 1, "delta": 0.2, "pre_avg": 3, "post_avg": 3, "pre_max": 3, "post_max": 3},
}
HOP_LENGTH = 512


def music_onsets(audio: Any, sr: int, variant: str = "librosa", hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Onset times in seconds of a mono waveform `[S]` from `librosa.onset.onset_detect`.

    `variant` selects the published peak-picking parameters (`ONSET_PARAMS`): "d2m" (D2M-GAN / CDCD),
    "loris" (LORIS, MoMu's benchmark) or "librosa" (library defaults). The published scripts load
    audio at 22,050 Hz; the peak-picking windows are in frames, so other rates give other numbers.
    """
    import librosa

    warm_librosa()
    check_variant(variant, tuple(ONSET_PARAMS), "music_onsets")
    y = audio_array(audio)
    sr = int(check_positive(sr, "sr"))
    times = librosa.onset.onset_detect(
        y=y, sr=sr, hop_length=hop_length, units="time", **ONSET_PARAMS[variant]
    )
    return np.asarray(times, dtype=np.float64)


def _beat_track(audio: Any, sr: int, start_bpm: float | None, hop_length: int) -> tuple[float, np.ndarray]:
    import librosa

    warm_librosa()
    y = audio_array(audio)
    sr = int(check_positive(sr, "sr"))
    bpm0 = 120.0 if start_bpm is None else check_positive(start_bpm, "start_bpm")
    tempo, beats = librosa.beat.beat_track(
        y=y, sr=sr, hop_length=hop_length, start_bpm=bpm0, tightness=100, units="time"
    )
    return float(np.atleast_1d(tempo)[0]), np.asarray(beats, dtype=np.float64)


def music_beats(
    audio: Any, sr: int, start_bpm: float | None = None, hop_length: int = HOP_LENGTH
) -> np.ndarray:
    """Beat times in seconds from `librosa.beat.beat_track` (dynamic programming, tightness 100).

    `start_bpm` is the tempo prior (librosa's default 120 when None); FACT and EDGE pass the tempo
    encoded in the AIST++ music id. Silence gives an empty array.
    """
    return _beat_track(audio, sr, start_bpm, hop_length)[1]


def music_tempo(audio: Any, sr: int, start_bpm: float | None = None, hop_length: int = HOP_LENGTH) -> float:
    """Global tempo estimate in BPM, the one `librosa.beat.beat_track` uses for its beats (0.0 on silence)."""
    return _beat_track(audio, sr, start_bpm, hop_length)[0]


def motion_envelope(joints: Any, variant: str = "bailando", sigma: float = 5.0) -> np.ndarray:
    """Kinetic velocity envelope of `joints` `[T, J, 2|3]` as each published variant computes it.

    * "bailando": k[t] = mean_j ||p[t+1, j] - p[t, j]||, length T-1, then gaussian smoothing with
      `sigma` frames (5 in Bailando; pass `sigma=0` for the raw speed). Units: position units per frame.
    * "fact": e[0] = 0, e[t] = sum_j ||p[t, j] - p[t-1, j]||, length T, float32, no smoothing.
    """
    check_variant(variant, MOTION_VARIANTS, "motion_envelope")
    p = joints_array(joints, dims=(2, 3))
    if variant == "fact":
        velocity = np.zeros_like(p, dtype=np.float32)  # [T, J, D]
        velocity[1:] = p[1:] - p[:-1]
        return np.linalg.norm(velocity, axis=2).sum(axis=1)  # [T]
    speed = np.mean(np.sqrt(np.sum((p[1:] - p[:-1]) ** 2, axis=2)), axis=1)  # [T-1]
    if sigma > 0:
        speed = gaussian_filter(speed, sigma)  # mode "reflect", truncate 4.0 as published
    return speed


def motion_beats(
    joints: Any, fps: float, variant: str = "bailando", sigma: float = 5.0, order: int = 10
) -> np.ndarray:
    """Motion beats: frame indices of strict local minima of the variant's kinetic envelope.

    * "bailando": strict local minima (order 1) of the sigma-smoothed mean joint speed; index t is the
      step from frame t to t+1 (the envelope has T-1 entries), used directly as a frame index.
    * "fact": minima of the summed joint speed that are strictly below every value within +-`order`
      frames; the first and last `order` frames never qualify (argrelextrema mode "clip").

    `fps` is the frame rate of `joints`; it is validated but the published constants are in frames
    and are deliberately not rescaled (see the module docstring).
    """
    check_positive(fps, "fps")
    env = motion_envelope(joints, variant, sigma=sigma)
    if variant == "fact":
        if int(order) < 1:
            raise ValueError(f"motion_beats: order must be >= 1, got {order}")
        return argrelextrema(env, np.less, order=int(order))[0].astype(np.int64)
    return argrelextrema(env, np.less)[0].astype(np.int64)


def motion_tempo(joints: Any, fps: float, variant: str = "bailando") -> float:
    """Tempo in BPM implied by the motion beats: 60 * fps / median inter-beat interval (frames).

    A dance that moves once per two beats reads as half tempo; compare with `tempo_accuracy`, which
    accepts double/half.
    """
    fps = check_positive(fps, "fps")
    beats = motion_beats(joints, fps, variant)
    if len(beats) < 2:
        raise ValueError(f"motion_tempo: needs at least 2 motion beats, found {len(beats)}")
    return float(60.0 * fps / np.median(np.diff(beats)))
