"""Fréchet distance between Gaussians fitted to feature sets, and FAD / FVD over pluggable embedders.

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

Implementation as the published FID-style code (pytorch-fid lineage, used by FACT/mint
`calculate_fid_scores.py`, Bailando `metrics_new.py`, google-research `frechet_audio_distance`):
float64, `np.cov(rowvar=False)` (ddof 1), `scipy.linalg.sqrtm` of the product (called without the
`disp` argument, deprecated in scipy 1.16); if the root is not finite, retry with eps*I added to both
covariances (FACT 1e-6, Bailando 1e-5, google FAD 1e-7); then take the real part.
On the imaginary part: FACT raises when the diagonal's imaginary part exceeds 1e-3; Bailando takes
`.real` only in that case and otherwise lets a tiny imaginary part leak into a complex result. Here
the real part is always taken; `strict=True` raises like FACT, otherwise a large imaginary part is
logged as a warning (it happens with fewer samples than dimensions, e.g. 20-40 AIST++ test
sequences against 72-d kinetic features, where the covariances are singular).

FAD / FVD: the published versions need weights that cannot be downloaded here, so the embedder is a
callable you pass in; the statistics pool the rows of every clip's embedding.
* FAD (google-research `frechet_audio_distance`): VGGish on 16 kHz mono, log-mel 64 bands, 25 ms /
  10 ms, non-overlapping 0.96-s examples, 128-d embedding per example, frames of all files pooled.
  gudgud96 `frechet_audio_distance` (torch VGGish, no final ReLU) lands a few % away from it;
  microsoft `fadtk` uses an eigendecomposition root; MM-Diffusion's "FAD" is AudioCLIP x 10^4.
* FVD (google-research `frechet_video_distance`): I3D Kinetics-400 logits (400-d) of 16-frame clips,
  frames resized to 224x224 and scaled to [-1, 1], one embedding per clip.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import linalg
from tqdm.auto import tqdm

from mmgen.metrics._checks import check_finite, to_numpy

log = logging.getLogger(__name__)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Matrix is singular": handled by the finite check + eps retry
        return linalg.sqrtm(a)


def frechet_from_stats(
    mu1: Any,
    sigma1: Any,
    mu2: Any,
    sigma2: Any,
    eps: float = 1e-6,
    imag_atol: float = 1e-3,
    strict: bool = False,
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (see the module docstring)."""
    mu1 = np.atleast_1d(to_numpy(mu1, "mu1", dtype=np.float64))
    mu2 = np.atleast_1d(to_numpy(mu2, "mu2", dtype=np.float64))
    s1 = np.atleast_2d(to_numpy(sigma1, "sigma1", dtype=np.float64))
    s2 = np.atleast_2d(to_numpy(sigma2, "sigma2", dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"frechet: shapes do not match: mu1 {mu1.shape}, mu2 {mu2.shape}, "
            f"sigma1 {s1.shape}, sigma2 {s2.shape}"
        )
    for arr, name in ((mu1, "mu1"), (mu2, "mu2"), (s1, "sigma1"), (s2, "sigma2")):
        check_finite(arr, name)
    covmean = _sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        log.info("frechet: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(d) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
        if not np.isfinite(covmean).all():
            raise ValueError(f"frechet: matrix square root is not finite even with eps={eps:g} added")
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > imag_atol:
            if strict:
                raise ValueError(f"frechet: imaginary component {imag:.3g} in the matrix square root")
            log.warning(
                "frechet: imaginary component %.3g in the matrix square root; taking the real part", imag
            )
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def feature_stats(features: Any, what: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance with ddof 1) of a feature set `[N, D]`, N >= 2, in float64."""
    f = to_numpy(features, what, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2 or f.shape[1] < 1:
        raise ValueError(f"{what}: expected a feature set [N >= 2, D], got shape {f.shape}")
    check_finite(f, what)
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(a: Any, b: Any, eps: float = 1e-6, strict: bool = False) -> float:
    """Fréchet distance between Gaussians fitted to feature sets `a` `[N, D]` and `b` `[M, D]`."""
    mu1, s1 = feature_stats(a, "a")
    mu2, s2 = feature_stats(b, "b")
    if mu1.shape != mu2.shape:
        raise ValueError(f"frechet_distance: feature sizes differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    return frechet_from_stats(mu1, s1, mu2, s2, eps=eps, strict=strict)


def embed_all(items: Sequence[Any], embedder: Callable[..., Any], what: str, **kwargs: Any) -> np.ndarray:
    """Stack the rows of `embedder(item, **kwargs)` over items: each call returns `[D]` or `[n, D]`."""
    if len(items) == 0:
        raise ValueError(f"{what}: no clips")
    rows = []
    for i, item in enumerate(tqdm(items, desc=f"embedding {what}", leave=False, disable=None)):
        e = to_numpy(embedder(item, **kwargs), f"{what}[{i}] embedding", dtype=np.float64)
        if e.ndim not in (1, 2) or e.size == 0:
            raise ValueError(f"{what}[{i}]: the embedder must return [D] or [n, D], got shape {e.shape}")
        rows.append(np.atleast_2d(e))
    if len({r.shape[1] for r in rows}) != 1:
        raise ValueError(
            f"{what}: the embedder returned different sizes {sorted({r.shape[1] for r in rows})}"
        )
    return np.concatenate(rows, axis=0)  # [sum n, D]


def fad(
    real_audio: Sequence[Any],
    gen_audio: Sequence[Any],
    embedder: Callable[..., Any],
    sr: int,
    eps: float = 1e-6,
) -> float:
    """Fréchet Audio Distance: `embedder(waveform, sr=sr) -> [n_frames, D]` per clip, frames pooled.

    With a VGGish embedder on 16 kHz mono this is the published FAD; any other embedder gives a
    Fréchet distance in that embedder's space (name it when reporting).
    """
    real = embed_all(real_audio, embedder, "real_audio", sr=sr)
    gen = embed_all(gen_audio, embedder, "gen_audio", sr=sr)
    return frechet_distance(real, gen, eps=eps)


def fvd(
    real_videos: Sequence[Any], gen_videos: Sequence[Any], embedder: Callable[..., Any], eps: float = 1e-6
) -> float:
    """Fréchet Video Distance: `embedder(video) -> [D]` (or `[n, D]`) per clip, rows pooled.

    With I3D-400 logits of 16x224x224 clips in [-1, 1] this is the published FVD.
    """
    real = embed_all(real_videos, embedder, "real_videos")
    gen = embed_all(gen_videos, embedder, "gen_videos")
    return frechet_distance(real, gen, eps=eps)
