"""Evaluation on raw media: plain dicts of floats, each documented with its variant and conventions.

The demo and `mmgen eval` call these; the published metric definitions live in `mmgen.metrics`.

    music_dance_sync   music (librosa beats) vs a dance (given beats or joint-speed minima):
                       beat F-measure (mir_eval, +-70 ms), tempo match (4 %), Bailando BAS
                       (analyse_music + analysed_music_dance_sync: one music vs several dances)
    music_agreement    generated vs reference music: beat F-measure of their librosa beats, tempo match
    loris_bcs_bhs      LORIS BCS / BHS / F1 (1-s onset bins) over pairs, at 22,050 Hz as published
    pfc                EDGE physical foot contact of y-up SMPL-24 joints (converted to z-up)
    interpolation_error  error of a generated span against the reference, beside a linear blend
    evaluate_folder    all of the above on a folder of outputs vs references (`mmgen eval`; evaluation_folder.py)

A metric that is undefined for an input (no beats found, a silent clip) is NaN, not an exception:
generated media can be degenerate, and one such clip must not abort an evaluation run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmgen.core.blend import blend_runs
from mmgen.metrics._checks import to_numpy

logger = logging.getLogger(__name__)

LORIS_SAMPLE_RATE = 22050
NAN = float("nan")


def _mono(audio: Any, what: str) -> np.ndarray:
    y = to_numpy(audio, what, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{what}: expected a mono waveform [S] with S > 0, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"{what}: contains NaN or infinite samples")
    return y


def _bpm(beats: np.ndarray) -> float:
    """Tempo implied by beat times in seconds: 60 / median inter-beat interval (NaN below 2 beats)."""
    if len(beats) < 2:
        return NAN
    ibi = float(np.median(np.diff(np.sort(beats))))
    return 60.0 / ibi if ibi > 0 else NAN


def _tempo_match(estimated: float, reference: float, octave: bool) -> float:
    from mmgen.metrics import tempo_accuracy

    if not (math.isfinite(estimated) and math.isfinite(reference) and reference > 0):
        return NAN
    return tempo_accuracy(estimated, reference, tolerance=0.04, octave=octave)


@dataclass(frozen=True)
class MusicAnalysis:
    """What the sync metrics need from a piece of music: librosa beats (s) and tempo (BPM).
    Computing it once lets one music be scored against several dances (e.g. a shuffled baseline)."""

    beats: np.ndarray
    bpm: float


def analyse_music(audio: Any, sr: int, what: str = "audio") -> MusicAnalysis:
    """`librosa.beat.beat_track` beats (hop 512, tempo prior 120 BPM, tightness 100) and tempo of
    `audio` [S] at `sr`; `what` names the input in errors."""
    from mmgen.metrics import music_beats, music_tempo

    y = _mono(audio, what)
    return MusicAnalysis(beats=music_beats(y, int(sr)), bpm=float(music_tempo(y, int(sr))))


def music_dance_sync(
    audio: Any, sr: int, joints: Any, fps: float, dance_beats: Any | None = None, window: float = 0.07
) -> dict[str, float]:
    """How well music and a dance agree in time.

    Music beats: `analyse_music(audio, sr)`. Dance beats: `dance_beats` in seconds if given (e.g.
    ToyDance's ground truth), else the Bailando motion beats of `joints` [T, J, 3] at `fps` (minima
    of the gaussian-smoothed (sigma 5 frames) mean joint speed), frame / fps.

    Returns:
        beat_f: mir_eval beat F-measure, reference = dance beats, estimate = music beats, +-`window` s.
        music_bpm, dance_bpm: librosa's tempo; 60 / median dance inter-beat interval.
        tempo_match: 1.0 if music_bpm is within 4 % of dance_bpm (MIREX Accuracy 1), else 0.0.
        tempo_match_octave: the same, also accepting double / half tempo (Accuracy 2).
        bas: Bailando Beat Align Score of the joints against the music beats (sigma 3 frames at `fps`;
            averaged over music beats); NaN without music or motion beats.
    """
    return analysed_music_dance_sync(analyse_music(audio, sr), joints, fps, dance_beats, window)


def analysed_music_dance_sync(
    music: MusicAnalysis, joints: Any, fps: float, dance_beats: Any | None = None, window: float = 0.07
) -> dict[str, float]:
    """`music_dance_sync` for music already analysed (`analyse_music`)."""
    from mmgen.metrics import bas, beat_f_measure, motion_beats

    if dance_beats is not None:
        dance = to_numpy(dance_beats, "dance_beats", dtype=np.float64).reshape(-1)
    else:
        dance = motion_beats(joints, fps) / float(fps)
    dance_bpm = _bpm(dance)
    try:
        align = bas(joints, music.beats, fps, variant="bailando")
    except ValueError as err:
        logger.info("BAS undefined (%s)", err)
        align = NAN
    return {
        "beat_f": beat_f_measure(dance, music.beats, window=window),
        "music_bpm": music.bpm,
        "dance_bpm": dance_bpm,
        "tempo_match": _tempo_match(music.bpm, dance_bpm, octave=False),
        "tempo_match_octave": _tempo_match(music.bpm, dance_bpm, octave=True),
        "bas": align,
    }


def music_agreement(
    audio: Any, sr: int, ref_audio: Any, ref_sr: int | None = None, window: float = 0.07
) -> dict[str, float]:
    """Generated vs reference music: beat F-measure (reference = the reference's librosa beats,
    +-`window` s) and whether their librosa tempi agree within 4 % (`tempo_match`)."""
    from mmgen.metrics import beat_f_measure

    music = analyse_music(audio, sr)
    ref = analyse_music(ref_audio, int(sr if ref_sr is None else ref_sr), "ref_audio")
    return {
        "beat_f": beat_f_measure(ref.beats, music.beats, window=window),
        "bpm": music.bpm,
        "ref_bpm": ref.bpm,
        "tempo_match": _tempo_match(music.bpm, ref.bpm, octave=False),
    }


def loris_bcs_bhs(
    gen_audios: Sequence[Any], ref_audios: Sequence[Any], sr: int, ref_sr: int | None = None
) -> dict[str, float]:
    """LORIS Beats Coverage / Hit scores over pairs (gen_audios[i] vs ref_audios[i]).

    Onsets: `librosa.onset.onset_detect` with LORIS' peak picking (wait 1, delta 0.2, pre/post
    avg and max 3 frames, hop 512) on audio resampled to 22,050 Hz (the published rate; the windows
    are in frames). 1-s bins; BCS = hits / generated bins, BHS = hits / reference bins, means over
    pairs, F1 from the means. Caveat: steady music fills nearly every bin, so these saturate;
    prefer `music_dance_sync`'s beat F-measure. When no pair has a hit, F1 is NaN (published: 0/0).
    """
    from mmgen.io.audio import resample_audio
    from mmgen.metrics import OnsetTimes, bcs_bhs, music_onsets, onset_bins

    if len(gen_audios) != len(ref_audios) or not gen_audios:
        raise ValueError(
            f"loris_bcs_bhs: {len(gen_audios)} generated vs {len(ref_audios)} reference clips (need equal, > 0)"
        )
    ref_sr = int(sr if ref_sr is None else ref_sr)

    def onsets(y: Any, rate: int, what: str) -> OnsetTimes:
        wave = resample_audio(_mono(y, what), rate, LORIS_SAMPLE_RATE)
        times = music_onsets(wave, LORIS_SAMPLE_RATE, variant="loris")
        return OnsetTimes(times, len(wave) / LORIS_SAMPLE_RATE)

    gens = [onsets(y, int(sr), f"gen_audios[{i}]") for i, y in enumerate(gen_audios)]
    refs = [onsets(y, ref_sr, f"ref_audios[{i}]") for i, y in enumerate(ref_audios)]
    hits = 0
    for g, r in zip(gens, refs, strict=True):
        gb, rb = onset_bins(g.times, g.duration), onset_bins(r.times, r.duration)
        n = min(len(gb), len(rb))
        hits += int(np.sum(gb[:n] * rb[:n]))
    if hits == 0:
        return {"bcs": 0.0, "bhs": 0.0, "csd": NAN, "hsd": NAN, "f1": NAN}
    s = bcs_bhs(refs, gens, variant="loris", sr=LORIS_SAMPLE_RATE)
    return {"bcs": s.bcs, "bhs": s.bhs, "csd": float(s.csd), "hsd": float(s.hsd), "f1": float(s.f1)}


def pfc(joints: Any, fps: float = 30.0) -> dict[str, float]:
    """EDGE PFC (x 10^4, lower is better) of y-up SMPL-24 joints [T, 24, 3] or [B, T, 24, 3]
    (rotated to z-up first, as EDGE does; mean over sequences). NaN when the root never accelerates."""
    from mmgen.metrics import pfc as edge_pfc
    from mmgen.metrics import yup_to_zup

    p = to_numpy(joints, "joints", dtype=np.float64)
    if p.ndim not in (3, 4) or p.shape[-2:] != (24, 3):
        raise ValueError(f"pfc: expected SMPL-24 joints [T, 24, 3] or [B, T, 24, 3], got {p.shape}")
    seqs = [p] if p.ndim == 3 else list(p)
    try:
        value = edge_pfc([yup_to_zup(s) for s in seqs], fps=fps)
    except ValueError as err:
        logger.info("PFC undefined (%s)", err)
        value = NAN
    return {"pfc": value}


def video_beat_alignment(
    frames: Any, fps: float, music_beats: Any, smooth_seconds: float = 1 / 6, sigma_seconds: float = 0.1
) -> float:
    """Bailando's beat alignment score with a video's motion energy in place of joint speed.

    Envelope e_t = mean |frame_{t+1} - frame_t| (pixels in [0, 1]), gaussian-smoothed with sigma
    `smooth_seconds` (Bailando's 5 frames at 30 fps); motion beats = its strict local minima
    (movement pauses); score = mean over music beats (seconds, within the video) of
    exp(-d^2 / (2 sigma^2)), d = distance to the nearest motion beat, sigma = `sigma_seconds`
    (Bailando's 3 frames at 30 fps). Stated in seconds so it means the same at any fps.
    NaN when the video has no movement pause or no music beat falls inside it.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import argrelextrema

    f = to_numpy(frames, "frames").astype(np.float32) / 255.0
    if f.ndim != 4 or f.shape[0] < 3:
        raise ValueError(f"video_beat_alignment: frames must be [F >= 3, H, W, C], got {f.shape}")
    energy = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))  # [F - 1]
    energy = gaussian_filter1d(energy.astype(np.float64), smooth_seconds * fps)
    pauses = (argrelextrema(energy, np.less)[0] + 0.5) / fps  # seconds; e_t lies between frames t and t+1
    beats = to_numpy(music_beats, "music_beats", dtype=np.float64).reshape(-1)
    beats = beats[beats < len(energy) / fps]
    if not len(pauses) or not len(beats):
        return NAN
    d = np.min(np.abs(beats[:, None] - pauses[None, :]), axis=1)
    return float(np.mean(np.exp(-(d**2) / (2 * sigma_seconds**2))))


def linear_blend(ref: Any, mask: Any) -> np.ndarray:
    """Baseline for interpolation: each run of masked frames of `ref` [T, ...] replaced by the
    straight line between the unmasked frames around it (the one present at the clip ends is held;
    `mmgen.core.blend.blend_runs`).

        ref    r0  r1  r2  r3  r4       mask  F T T F F
        blend  r0  r0 + (r3 - r0)/3  r0 + 2 (r3 - r0)/3  r3  r4
    """
    x = to_numpy(ref, "ref", dtype=np.float64)
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if m.shape[0] != x.shape[0]:
        raise ValueError(f"linear_blend: mask has {m.shape[0]} frames, ref has {x.shape[0]}")
    if m.all():
        raise ValueError("linear_blend: every frame is masked; nothing to blend between")
    return blend_runs(torch.from_numpy(x), torch.from_numpy(m)).numpy()


def _frame_distance(diff: np.ndarray, batched: bool) -> np.ndarray:
    """Per-frame distance: |d| for scalar frames, else the L2 norm over the last axis averaged over the rest."""
    frame_ndim = diff.ndim - (2 if batched else 1)
    if frame_ndim == 0:
        return np.abs(diff)
    d = np.linalg.norm(diff, axis=-1)
    axes = tuple(range(2 if batched else 1, d.ndim))
    return d.mean(axis=axes) if axes else d


def interpolation_error(gen: Any, ref: Any, mask: Any) -> dict[str, Any]:
    """Error of generated frames against the reference on the masked (generated) frames.

    `gen`, `ref`: [T, ...] with `mask` [T], or batches [B, T, ...] with `mask` [B, T]; True marks
    the frames to score. For joints [T, J, 3] `error` is the mean per-joint position error (MPJPE,
    in the joints' units); for frames with a last axis of size D it is the mean L2 distance over it;
    for scalar frames (a waveform [S]) the mean absolute difference. Also returned: `rmse` over all
    masked elements, the same two numbers for `linear_blend` of the reference (`blend_error`,
    `blend_rmse`) and `ratio` = error / blend_error (the issue's target: <= 0.5). Batches also get
    `item_error`: each item's `error` (NaN where its mask selects no frame), from the same distances.
    """
    g = to_numpy(gen, "gen", dtype=np.float64)
    r = to_numpy(ref, "ref", dtype=np.float64)
    m = np.asarray(to_numpy(mask, "mask")).astype(bool)
    if g.shape != r.shape:
        raise ValueError(f"interpolation_error: gen {g.shape} and ref {r.shape} differ")
    if m.ndim not in (1, 2) or g.shape[: m.ndim] != m.shape:
        raise ValueError(
            f"interpolation_error: mask {m.shape} must be the leading [T] or [B, T] of {g.shape}"
        )
    if not m.any():
        raise ValueError("interpolation_error: the mask selects no frame")
    batched = m.ndim == 2
    blend = (
        np.stack([linear_blend(x, mk) for x, mk in zip(r, m, strict=True)]) if batched else linear_blend(r, m)
    )

    def scores(x: np.ndarray) -> tuple[float, float, np.ndarray]:
        diff = x - r
        dist = _frame_distance(diff, batched)  # [T] or [B, T]
        return float(dist[m].mean()), float(np.sqrt(np.mean(diff[m] ** 2))), dist

    err, rmse, dist = scores(g)
    blend_err, blend_rmse, _ = scores(blend)
    ratio = err / blend_err if blend_err > 0 else (0.0 if err == 0 else math.inf)
    out: dict[str, Any] = {
        "error": err, "rmse": rmse, "blend_error": blend_err, "blend_rmse": blend_rmse, "ratio": ratio,
    }
    if batched:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["item_error"] = ((dist * m).sum(1) / m.sum(1)).tolist()
    return out

