"""Beat F-measure (mir_eval, +-70 ms) and tempo accuracy (within 4 %, or at double / half tempo).

Unlike the 1-second bins of BCS/BHS, these are sharp: a beat sequence shifted by 100 ms scores 0.

* `beat_f_measure` wraps `mir_eval.beat.f_measure` (one-to-one matching of estimated to reference
  beats within the window; F = 2PR / (P + R); 0.0 when either sequence is empty). MIREX practice
  (`mir_eval.beat.evaluate`) first drops beats before 5 s; `trim_seconds` reproduces that but
  defaults to 0 because generated clips are often only a few seconds long.
* `tempo_accuracy`: MIREX "Accuracy 1" uses |est - ref| <= 4 % of ref; with `octave=True` the
  estimate may also match 2x or 0.5x the reference (the usual octave-error allowance).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mmgen.metrics._checks import check_finite, to_numpy


def _beat_times(beats: Any, what: str) -> np.ndarray:
    t = to_numpy(beats, what, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array of beat times in seconds, got shape {t.shape}")
    check_finite(t, what)
    if (t < 0).any():
        raise ValueError(f"{what}: beat times must be >= 0 s")
    return np.sort(t)


def beat_f_measure(
    reference_beats: Any, estimated_beats: Any, window: float = 0.07, trim_seconds: float = 0.0
) -> float:
    """F-measure between two beat sequences in seconds (mir_eval.beat.f_measure, +-`window` s)."""
    import mir_eval

    ref = _beat_times(reference_beats, "reference_beats")
    est = _beat_times(estimated_beats, "estimated_beats")
    if window <= 0:
        raise ValueError(f"beat_f_measure: window must be > 0 s, got {window}")
    if trim_seconds > 0:
        ref, est = ref[ref >= trim_seconds], est[est >= trim_seconds]
    if ref.size == 0 or est.size == 0:  # mir_eval warns and returns 0.0
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # mir_eval warns on beats above 30000 s etc.; inputs are validated above
        return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=window))


def tempo_accuracy(
    estimated_bpm: Any, reference_bpm: Any, tolerance: float = 0.04, octave: bool = True
) -> float:
    """Fraction of estimates within `tolerance` (relative) of the reference tempo, or of 2x / 0.5x
    it when `octave`. Scalars give 0.0 or 1.0; arrays of equal length give the fraction."""
    est = to_numpy(estimated_bpm, "estimated_bpm", dtype=np.float64).reshape(-1)
    ref = to_numpy(reference_bpm, "reference_bpm", dtype=np.float64).reshape(-1)
    if est.shape != ref.shape or est.size == 0:
        raise ValueError(
            f"tempo_accuracy: {est.size} estimates vs {ref.size} references (need equal, non-zero)"
        )
    check_finite(est, "estimated_bpm")
    check_finite(ref, "reference_bpm")
    if (ref <= 0).any():
        raise ValueError("tempo_accuracy: reference tempi must be > 0 BPM")
    factors = np.array([1.0, 2.0, 0.5]) if octave else np.array([1.0])
    targets = ref[:, None] * factors[None, :]  # [N, F]
    hit = (np.abs(est[:, None] - targets) <= tolerance * targets).any(axis=1)  # [N]
    return float(hit.mean())
