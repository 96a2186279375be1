"""Beats Coverage / Beats Hit scores (BCS / BHS): onsets binned into 1-second bins, two published variants.

Per pair, onsets (`music_onsets`, i.e. librosa `onset_detect`, hop 512, `wait=1, delta=0.2` and the
variant's peak-picking windows) are binned into a 0/1 vector of length ceil(len(y) / sr) with
bin[floor(t)] = 1. G, S, H = number of bins set in the ground truth, in the generated audio, in both.

* "d2m" - D2M-GAN / CDCD (`L-YeZhu/Beats_Scores beats_scores.py`): BCS = S / G (can exceed 1, and
  per-pair errors cancel in the mean), BHS = H / G; both vectors must have the same number of
  bins (published: assert) and G > 0 (published: ZeroDivisionError) - both raise ValueError here.
  Aggregation: arithmetic means over pairs.
* "loris" - LORIS (`OpenGVLab/LORIS beats_scores.py`, also MoMu's benchmark): the ground-truth vector
  is truncated to the generated length (a shorter ground truth fails the published assert: ValueError);
  BCS = H / S (0 if S = 0), BHS = H / G (0 if G = 0); means over pairs, CSD / HSD = their sample std
  (ddof 1; NaN for a single pair, as numpy gives); F1 = 2 BCS BHS / (BCS + BHS) from the MEAN scores
  (published: ZeroDivisionError when both means are 0 - ValueError here).

Caveat: these are per-second bins, not a tolerance window. Music with a steady beat (> 60 BPM) has
an onset in nearly every second, so any other steady music saturates BCS/BHS near 1 whatever its
alignment; clips of a few seconds have only a few bins. Use `beat_f_measure` (+-70 ms) for a sharp
measure of beat agreement.

Items of `gt` / `gen` are mono waveforms `[S]` at `sr` (22,050 Hz in the published code; other
rates change the result because the peak-picking windows are in frames), or `OnsetTimes(times,
duration)` / `(times, duration)` tuples of onset times in seconds (non-decreasing) and the clip length
in seconds. `gt` / `gen` is one clip (a waveform, an `OnsetTimes`, or a bare `(times, duration)`
tuple) or a list / batch of clips. Anything that could be read two ways raises ValueError: a bare
number among the clips, a tuple of two numbers, or a `(times, duration)` whose times decrease (a
`(waveform, sr)` pair looks like that; pass the waveform alone and `sr=`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from mmgen.metrics._checks import audio_array, check_finite, check_positive, check_variant, to_numpy
from mmgen.metrics.beats import music_onsets

BCS_VARIANTS = ("loris", "d2m")


class OnsetTimes(NamedTuple):
    """Onset times in seconds and the clip duration in seconds (an alternative to a waveform)."""

    times: Any
    duration: float


@dataclass(frozen=True)
class BeatScores:
    """BCS / BHS over a set of pairs. `csd`, `hsd`, `f1` are only defined for the "loris" variant."""

    variant: str
    bcs: float
    bhs: float
    csd: float | None = None
    hsd: float | None = None
    f1: float | None = None
    per_pair_bcs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    per_pair_bhs: np.ndarray = field(default_factory=lambda: np.zeros(0))


def onset_bins(onset_times: Any, duration: float, what: str = "onsets") -> np.ndarray:
    """0/1 vector of ceil(duration) one-second bins with bin[floor(t)] = 1 for every onset time t."""
    duration = check_positive(duration, f"{what}: duration")
    t = to_numpy(onset_times, what, dtype=np.float64).reshape(-1)
    check_finite(t, what)
    n = math.ceil(duration)
    idx = np.trunc(t).astype(np.int64)
    if (t < 0).any() or (idx >= n).any():
        lo, hi = t.min(), t.max()
        raise ValueError(
            f"{what}: onset times must lie in [0, {n}) s for a {duration:g}-s clip, got {lo:g}..{hi:g} s"
        )
    bins = np.zeros(n, dtype=np.int64)
    bins[idx] = 1
    return bins


def _is_number(item: Any) -> bool:
    return isinstance(item, (int, float, np.number)) or (getattr(item, "ndim", None) == 0)


def _is_onset_pair(item: Any) -> bool:
    """A bare `(times, duration)` tuple: two entries, a 1-D sequence of times and one number."""
    return (
        isinstance(item, tuple)
        and len(item) == 2
        and _is_number(item[1])
        and not _is_number(item[0])
        and np.ndim(item[0]) == 1
    )


def _item_bins(item: Any, variant: str, sr: int, what: str) -> np.ndarray:
    if isinstance(item, tuple) and len(item) == 2 and _is_number(item[1]):
        if not _is_onset_pair(item):
            raise ValueError(
                f"{what}: a (times, duration) tuple needs a 1-D sequence of onset times, got "
                f"{np.ndim(item[0])}-D; pass OnsetTimes([...], duration)"
            )
        times = to_numpy(item[0], f"{what}: onset times", dtype=np.float64).reshape(-1)
        if np.any(np.diff(times) < 0):
            raise ValueError(
                f"{what}: onset times must be non-decreasing; if this is a (waveform, sr) pair, pass the "
                "waveform alone and sr= to bcs_bhs"
            )
        return onset_bins(times, float(item[1]), what)
    y = audio_array(item, what)
    return onset_bins(music_onsets(y, sr, variant=variant), len(y) / sr, what)


def _as_items(x: Any, what: str) -> list[Any]:
    """One clip -> [clip]; a list / tuple / batch of clips -> the clips. Ambiguous input raises."""
    if isinstance(x, OnsetTimes) or _is_onset_pair(x):
        return [x]
    if isinstance(x, (list, tuple)):
        items = list(x)
        for i, item in enumerate(items):
            if _is_number(item):
                raise ValueError(
                    f"{what}[{i}] is a single number, not a clip; give one clip as OnsetTimes(times, "
                    "duration) or a (times, duration) tuple, several as a list of them"
                )
    else:
        arr = to_numpy(x, what)
        if arr.ndim == 1:  # one waveform
            items = [arr]
        elif arr.ndim == 2:  # [N, S] waveforms
            items = [arr[i] for i in range(arr.shape[0])]
        else:
            raise ValueError(
                f"{what}: expected waveforms [N, S] / a list of waveforms or OnsetTimes, got {arr.shape}"
            )
    if not items:
        raise ValueError(f"{what}: no clips")
    return items


def pair_scores(gt_bins: np.ndarray, gen_bins: np.ndarray, variant: str) -> tuple[float, float]:
    """(BCS, BHS) of one pair of 1-s onset-bin vectors, with the variant's length and zero rules."""
    if variant == "d2m":
        if len(gt_bins) != len(gen_bins):
            raise ValueError(
                f"d2m needs equal lengths: {len(gt_bins)} ground-truth vs {len(gen_bins)} generated 1-s bins"
            )
        g = int(gt_bins.sum())
        if g == 0:
            raise ValueError("d2m: the ground truth has no onsets (BCS = S/G divides by zero)")
        return float(gen_bins.sum()) / g, float(np.sum(gt_bins * gen_bins)) / g
    if len(gt_bins) < len(gen_bins):
        raise ValueError(
            f"loris: ground truth ({len(gt_bins)} 1-s bins) is shorter than generated ({len(gen_bins)})"
        )
    gt_bins = gt_bins[: len(gen_bins)]
    g, s, h = int(gt_bins.sum()), int(gen_bins.sum()), int(np.sum(gt_bins * gen_bins))
    return (h / s if s else 0.0), (h / g if g else 0.0)


def bcs_bhs(gt: Any, gen: Any, variant: str = "loris", sr: int = 22050) -> BeatScores:
    """BCS / BHS (and CSD, HSD, F1 for "loris") between paired ground-truth and generated clips.

    `gt[i]` is paired with `gen[i]`; errors name the failing pair index.
    """
    check_variant(variant, BCS_VARIANTS, "bcs_bhs")
    gts, gens = _as_items(gt, "gt"), _as_items(gen, "gen")
    if len(gts) != len(gens):
        raise ValueError(f"bcs_bhs: {len(gts)} ground-truth clips but {len(gens)} generated clips")
    sr = int(check_positive(sr, "sr"))
    cover, hit = [], []
    for i, (a, b) in enumerate(zip(gts, gens, strict=True)):
        try:
            c, h = pair_scores(_item_bins(a, variant, sr, "gt"), _item_bins(b, variant, sr, "gen"), variant)
        except ValueError as err:
            raise ValueError(f"bcs_bhs pair {i}: {err}") from None
        cover.append(c)
        hit.append(h)
    cover_a, hit_a = np.asarray(cover), np.asarray(hit)
    bcs, bhs = float(cover_a.mean()), float(hit_a.mean())
    if variant == "d2m":
        return BeatScores(variant, bcs, bhs, per_pair_bcs=cover_a, per_pair_bhs=hit_a)
    if bcs + bhs == 0:
        raise ValueError(
            "bcs_bhs(loris): mean BCS and BHS are both 0, F1 is undefined (published: division by zero)"
        )
    n = len(cover_a)
    csd = float(np.std(cover_a, ddof=1)) if n > 1 else float("nan")
    hsd = float(np.std(hit_a, ddof=1)) if n > 1 else float("nan")
    f1 = 2 * bcs * bhs / (bcs + bhs)
    return BeatScores(variant, bcs, bhs, csd, hsd, f1, per_pair_bcs=cover_a, per_pair_bhs=hit_a)
