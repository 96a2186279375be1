"""FID_k / FID_g and Div_k / Div_g on AIST++ API motion features (Bailando's evaluation convention).

Bailando `utils/metrics_new.py` + `extract_aist_features.py`:
* generated sequences: the first 20 s (`pred_position[:1200]` at **60 fps**), "zero start" (the
  first frame's root position is subtracted from every joint of every frame), then
  `kinetic_features` (72-d) and `geometric_features` (32-d);
* ground truth: the **whole** sequence, zero start, the same features (`extract_aist_features.py`
  writes `aist_features_zero_start` from every AIST++ motion, uncut; `calc_and_save_feats`, the only
  place with the `[:1200]` cut, runs on the generated folder). FACT/mint's `extract_aist_features.py`
  also extracts ground truth from whole sequences. So `fid_k` / `fid_g` / `motion_quality` cut only
  the generated set by default (`generated_seconds=20`, `real_seconds=None`); pass `real_seconds=20`
  to cut both sets alike (not what the papers report; on 25-s ground truth the features differ by
  up to ~20 %);
* both sets are normalised with the **real** set's mean and std (std + 1e-10, numpy ddof 0);
* FID = Fréchet distance of the normalised sets (np.cov ddof 1, eps 1e-5 retry);
* Div = mean pairwise Euclidean distance between the normalised feature vectors of one set.
FACT/mint does the same normalisation (without zero start or the 20-s cut, Fréchet eps 1e-6) and
reports Dist on the normalised generated set.

The features assume 60 fps (frame_time 1/60, velocity tests at 1/120 s). Joints at another rate are
processed with `fps` (frame_time = 1/fps) but numbers are only comparable with the papers at 60 fps.
Inputs of `fid_k` / `fid_g` are lists (or batches) of joint sequences `[T, 24, 3]` (y-up, metres) or
already computed feature matrices `[N, 72]` / `[N, 32]` (used as given: no cut applies to them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmgen.metrics._checks import (
    SMPL_NUM_JOINTS,
    check_finite,
    check_positive,
    joints_array,
    sequence_list,
    to_numpy,
)
from mmgen.metrics.aist_features import GEOMETRIC_DIM, KINETIC_DIM, geometric_features, kinetic_features
from mmgen.metrics.frechet import frechet_distance

BAILANDO_SECONDS = 20.0  # the cut of generated motion (`pred_position[:1200]` at 60 fps)
BAILANDO_EPS = 1e-5
NORM_EPS = 1e-10


def prepare_sequence(
    joints: Any, fps: float = 60.0, max_seconds: float | None = BAILANDO_SECONDS, zero_start: bool = True
) -> np.ndarray:
    """Bailando's per-sequence preparation: keep the first `max_seconds` and subtract the first root."""
    fps = check_positive(fps, "fps")
    p = joints_array(joints, num_joints=SMPL_NUM_JOINTS, min_frames=3, dtype=np.float64)
    if max_seconds is not None:
        p = p[: round(max_seconds * fps)]
    if zero_start:
        p = p - p[:1, :1]  # [T, 24, 3] minus the first frame's root
    return p


def motion_feature_set(
    sequences: Any,
    kind: str,
    fps: float = 60.0,
    max_seconds: float | None = BAILANDO_SECONDS,
    zero_start: bool = True,
) -> np.ndarray:
    """Feature matrix `[N, 72]` ("kinetic") or `[N, 32]` ("geometric") of a list of joint sequences."""
    extract = {"kinetic": kinetic_features, "geometric": geometric_features}.get(kind)
    if extract is None:
        raise ValueError(f"motion_feature_set: kind must be 'kinetic' or 'geometric', got {kind!r}")
    feats = []
    for i, seq in enumerate(sequence_list(sequences, "sequences")):
        try:
            feats.append(extract(prepare_sequence(seq, fps, max_seconds, zero_start), fps=fps))
        except ValueError as err:
            raise ValueError(f"sequence {i}: {err}") from None
    return np.stack(feats)


def _features(x: Any, kind: str, dim: int, fps: float, what: str, max_seconds: float | None) -> np.ndarray:
    if hasattr(x, "shape") and len(x.shape) == 2:  # precomputed features
        f = to_numpy(x, what, dtype=np.float64)
        if f.shape[1] != dim:
            raise ValueError(f"{what}: {kind} features must be [N, {dim}], got {f.shape}")
        check_finite(f, what)
        return f
    try:
        return motion_feature_set(x, kind, fps, max_seconds=max_seconds).astype(np.float64)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None


def normalize_by(reference: np.ndarray, *sets: np.ndarray) -> list[np.ndarray]:
    """Normalise every set with the reference set's mean and std (+1e-10), as FACT and Bailando do."""
    mean, std = reference.mean(axis=0), reference.std(axis=0) + NORM_EPS
    return [(s - mean) / std for s in sets]


def diversity(features: Any, reference: Any | None = None) -> float:
    """Mean pairwise Euclidean distance of `features` `[N, D]` (N >= 2) after normalising with the
    `reference` set's mean/std (the real set for Div of generated motion; itself when None)."""
    f = to_numpy(features, "features", dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"diversity: expected features [N >= 2, D], got shape {f.shape}")
    check_finite(f, "features")
    ref = f if reference is None else to_numpy(reference, "reference", dtype=np.float64)
    if ref.ndim != 2 or ref.shape[1] != f.shape[1]:
        raise ValueError(f"diversity: reference must be [M, {f.shape[1]}], got {ref.shape}")
    (f,) = normalize_by(ref, f)
    n = f.shape[0]
    dist = np.linalg.norm(f[:, None, :] - f[None, :, :], axis=-1)  # [N, N]
    return float(dist[np.triu_indices(n, k=1)].mean())


def _check_seconds(value: float | None, what: str) -> float | None:
    return None if value is None else check_positive(value, what)


def _feature_pair(
    generated: Any,
    real: Any,
    kind: str,
    dim: int,
    fps: float,
    generated_seconds: float | None,
    real_seconds: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    gen_cut = _check_seconds(generated_seconds, "generated_seconds")
    real_cut = _check_seconds(real_seconds, "real_seconds")
    return (
        _features(generated, kind, dim, fps, "generated", gen_cut),
        _features(real, kind, dim, fps, "real", real_cut),
    )


def _fid_of_features(gen: np.ndarray, ref: np.ndarray, eps: float) -> float:
    if ref.shape[0] < 2 or gen.shape[0] < 2:
        raise ValueError(
            f"fid: needs at least 2 sequences per set, got {gen.shape[0]} generated, {ref.shape[0]} real"
        )
    ref_n, gen_n = normalize_by(ref, ref, gen)
    return frechet_distance(gen_n, ref_n, eps=eps)


def fid_k(
    generated: Any,
    real: Any,
    fps: float = 60.0,
    eps: float = BAILANDO_EPS,
    generated_seconds: float | None = BAILANDO_SECONDS,
    real_seconds: float | None = None,
) -> float:
    """FID_k: Fréchet distance of real-normalised 72-d kinetic features (Bailando convention:
    generated motion cut to `generated_seconds`, ground truth whole unless `real_seconds` is given)."""
    gen, ref = _feature_pair(generated, real, "kinetic", KINETIC_DIM, fps, generated_seconds, real_seconds)
    return _fid_of_features(gen, ref, eps)


def fid_g(
    generated: Any,
    real: Any,
    fps: float = 60.0,
    eps: float = BAILANDO_EPS,
    generated_seconds: float | None = BAILANDO_SECONDS,
    real_seconds: float | None = None,
) -> float:
    """FID_g: Fréchet distance of real-normalised 32-d geometric features (Bailando convention:
    generated motion cut to `generated_seconds`, ground truth whole unless `real_seconds` is given)."""
    gen, ref = _feature_pair(generated, real, "geometric", GEOMETRIC_DIM, fps, generated_seconds, real_seconds)
    return _fid_of_features(gen, ref, eps)


def motion_quality(
    generated: Any,
    real: Any,
    fps: float = 60.0,
    generated_seconds: float | None = BAILANDO_SECONDS,
    real_seconds: float | None = None,
) -> dict[str, float]:
    """Bailando's table in one call: fid_k, fid_g, div_k, div_g and the real set's div_k_gt, div_g_gt
    (generated motion cut to `generated_seconds`, ground truth whole unless `real_seconds` is given)."""
    out: dict[str, float] = {}
    for kind, dim, tag in (("kinetic", KINETIC_DIM, "k"), ("geometric", GEOMETRIC_DIM, "g")):
        gen, ref = _feature_pair(generated, real, kind, dim, fps, generated_seconds, real_seconds)
        out[f"fid_{tag}"] = _fid_of_features(gen, ref, BAILANDO_EPS)
        out[f"div_{tag}"] = diversity(gen, ref)
        out[f"div_{tag}_gt"] = diversity(ref, ref)
    return out
