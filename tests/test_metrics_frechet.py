"""Fréchet distance vs closed forms; FID_k / FID_g / diversity conventions; FAD / FVD with toy embedders."""

import numpy as np
import pytest
from scipy.linalg import hadamard

import mmgen.metrics.frechet as fr
from mmgen.core.skeleton import SMPL24_REST
from mmgen.metrics import (
    diversity,
    fad,
    fid_g,
    fid_k,
    frechet_distance,
    frechet_from_stats,
    fvd,
    geometric_features,
    kinetic_features,
    motion_feature_set,
    motion_quality,
)


def orthogonal_design(n=128, d=72):
    """±1 columns, zero mean, mutually orthogonal: np.cov = n/(n-1) I exactly, np.std = 1."""
    return hadamard(n)[:, 1 : d + 1].astype(np.float64)


def test_frechet_1d_and_diagonal_closed_forms():
    assert frechet_from_stats(1.0, 4.0, -2.0, 9.0) == pytest.approx((1 + 2) ** 2 + (2 - 3) ** 2)
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])  # commuting diagonal covariances
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_from_stats(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)


def test_frechet_full_covariance_matches_symmetric_formula():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(5), m2 @ m2.T + 0.1 * np.eye(5)

    def psd_sqrt(s):
        w, v = np.linalg.eigh(s)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    r1 = psd_sqrt(s1)
    expected = 1.0 + np.trace(s1 + s2 - 2 * psd_sqrt(r1 @ s2 @ r1))  # ||mu1 - mu2||^2 = 1
    assert frechet_from_stats(np.zeros(5), s1, np.eye(5)[0], s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_exact_feature_sets():
    x = orthogonal_design(n=16, d=8)
    c = 16 / 15
    for scale, shift in ((1.0, 0.0), (2.0, 0.5), (0.5, -1.0)):
        expected = 8 * shift**2 + 8 * c * (1 - scale) ** 2
        assert frechet_distance(x, scale * x + shift) == pytest.approx(expected, abs=1e-9)


def test_eps_retry_and_imaginary_handling(monkeypatch):
    calls = []
    real_sqrtm = fr._sqrtm

    def flaky(a):
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(fr, "_sqrtm", flaky)
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    got = frechet_from_stats(np.zeros(2), s1, np.zeros(2), s2, eps=0.5)
    np.testing.assert_allclose(calls[1], (s1 + 0.5 * np.eye(2)) @ (s2 + 0.5 * np.eye(2)))
    assert got == pytest.approx(5 + 5 - 2 * 2 * np.sqrt(1.5 * 4.5))

    monkeypatch.setattr(fr, "_sqrtm", lambda a: real_sqrtm(a) + 0.1j * np.eye(2))
    assert frechet_from_stats(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(2.0)  # real part: 10 - 2 * 4
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_from_stats(np.zeros(2), s1, np.zeros(2), s2, strict=True)


def test_frechet_bad_input():
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(np.ones((4, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"\[N >= 2, D\]"):
        frechet_distance(np.ones((1, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((4, 3), np.nan), np.ones((4, 3)))
    with pytest.raises(ValueError, match="shapes do not match"):
        frechet_from_stats(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


def test_fid_normalises_with_the_real_set():
    real = orthogonal_design()  # mean 0, std 1 per column (ddof 0)
    c = 128 / 127
    for scale, shift in ((1.0, 0.0), (3.0, 0.2)):
        gen = scale * real + shift
        assert fid_k(gen, real) == pytest.approx(72 * shift**2 + 72 * c * (1 - scale) ** 2, abs=1e-7)
    # normalisation uses the REAL statistics: rescaling both sets together leaves FID unchanged
    gen = 3.0 * real + 0.2
    assert fid_k(10 * gen + 7, 10 * real + 7) == pytest.approx(fid_k(gen, real), rel=1e-9)
    g_real = orthogonal_design(d=32)
    assert fid_g(2.0 * g_real, g_real) == pytest.approx(32 * c, abs=1e-7)
    with pytest.raises(ValueError, match=r"\[N, 72\]"):
        fid_k(np.ones((5, 32)), real)


def test_diversity_hand_computed():
    reference = np.array([[1.0, 1.0], [-1.0, -1.0]])  # mean 0, std 1
    feats = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])  # pairwise distances 5, 3, 4
    assert diversity(feats, reference) == pytest.approx(4.0)
    assert diversity(reference) == pytest.approx(np.sqrt(8))  # normalised by itself
    with pytest.raises(ValueError, match="N >= 2"):
        diversity(np.ones((1, 4)))


def dance(seed, frames):
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 30
    wobble = 0.05 * np.sin(2 * np.pi * rng.uniform(1, 3, (1, 24, 3)) * t + rng.uniform(0, 6, (1, 24, 3)))
    return SMPL24_REST[None] + wobble + np.array([1.0, 0.0, -2.0])  # offset root start


def test_fid_from_joints_uses_bailando_preparation():
    seq = dance(0, 700)
    feats = motion_feature_set([seq], "kinetic", fps=30)
    zero_start = seq[:600] - seq[:1, :1]  # first 20 s at 30 fps, first root subtracted
    np.testing.assert_allclose(feats[0], kinetic_features(zero_start, fps=30), rtol=1e-6)
    real = [dance(s, 120) for s in range(4)]
    gen = [dance(s + 10, 120) for s in range(3)]
    q = motion_quality(gen, real, fps=30)
    assert set(q) == {"fid_k", "fid_g", "div_k", "div_g", "div_k_gt", "div_g_gt"}
    assert q["fid_k"] == pytest.approx(fid_k(gen, real, fps=30))
    assert all(np.isfinite(v) for v in q.values())
    with pytest.raises(ValueError, match="real: sequence 1"):
        fid_k(gen, [real[0], real[1][:, :20]], fps=30)


def dance60(seed, frames):
    """60-fps dance that drifts and doubles its amplitude after 20 s (so a 20-s cut changes features)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 60
    amplitude = 0.05 * np.where(t > 20, 3.0, 1.0)
    wobble = amplitude * np.sin(2 * np.pi * rng.uniform(0.5, 2, (1, 24, 3)) * t + rng.uniform(0, 6, (1, 24, 3)))
    drift = np.stack([0.3 * np.sin(0.5 * t[:, 0, 0]), 0 * t[:, 0, 0], 0.2 * t[:, 0, 0]], axis=-1)[:, None]
    return SMPL24_REST[None] + wobble + drift + np.array([1.0, 0.0, -2.0])


def psd_sqrt(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def published_fid(gen_feats, real_feats):
    """metrics_new.py's normalise + calc_fid, with the matrix root through eigh (no scipy.sqrtm):
    tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2)."""
    mean, std = real_feats.mean(0), real_feats.std(0) + 1e-10
    g, r = (gen_feats - mean) / std, (real_feats - mean) / std
    s1, s2 = np.cov(g, rowvar=False), np.cov(r, rowvar=False)
    root1 = psd_sqrt(s1)
    diff = g.mean(0) - r.mean(0)
    return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(psd_sqrt(root1 @ s2 @ root1))


def test_ground_truth_is_not_cut_to_20_seconds():
    # Bailando: generated `pred_position[:1200]` (20 s at 60 fps), ground truth whole
    # (`extract_aist_features.py`), both zero-started. Ground truth here: 25 s = 1500 frames.
    real = [dance60(s, 1500) for s in range(6)]
    gen = [dance60(s + 10, 1300) for s in range(5)]

    def feats(extract, seqs, frames):
        return np.stack([extract(x[:frames] - x[:1, :1]) for x in seqs]).astype(np.float64)

    q, q_cut = motion_quality(gen, real), motion_quality(gen, real, real_seconds=20)
    for extract, tag in ((kinetic_features, "k"), (geometric_features, "g")):
        real_whole, real_cut, gen_cut = feats(extract, real, None), feats(extract, real, 1200), feats(extract, gen, 1200)
        # the 25-s ground truth enters with the features of the whole sequence
        assert q[f"fid_{tag}"] == pytest.approx(published_fid(gen_cut, real_whole), rel=1e-6)
        assert q[f"div_{tag}_gt"] == pytest.approx(diversity(real_whole), rel=1e-9)
        assert q[f"div_{tag}"] == pytest.approx(diversity(gen_cut, real_whole), rel=1e-9)
        # the old behaviour stays available on request, and differs (the cut drops the last 5 s)
        assert q_cut[f"fid_{tag}"] == pytest.approx(published_fid(gen_cut, real_cut), rel=1e-6)
        assert abs(q[f"fid_{tag}"] - q_cut[f"fid_{tag}"]) > 0.1 * q_cut[f"fid_{tag}"]
    assert fid_k(gen, real) == pytest.approx(q["fid_k"], rel=1e-12)
    assert fid_g(gen, real) == pytest.approx(q["fid_g"], rel=1e-12)
    # generated motion is still cut: frames after 20 s do not matter
    longer = [np.concatenate([g[:1200], 5 + g[1200:]]) for g in gen]
    assert fid_k(longer, real) == pytest.approx(q["fid_k"], rel=1e-12)
    with pytest.raises(ValueError, match="real_seconds"):
        fid_k(gen, real, real_seconds=0)


def frame_embedder(y, sr):
    """Toy embedder: [mean, std, max] of 100-sample frames -> [n_frames, 3]."""
    frames = np.asarray(y)[: len(y) // 100 * 100].reshape(-1, 100)
    return np.stack([frames.mean(1), frames.std(1), frames.max(1)], axis=1)


def test_fad_pools_frames_of_all_clips():
    rng = np.random.default_rng(0)
    real = [rng.normal(0, 1, 1000) for _ in range(3)]
    gen = [rng.normal(0.5, 2, 800) for _ in range(2)]
    pooled_real = np.concatenate([frame_embedder(y, 16000) for y in real])
    pooled_gen = np.concatenate([frame_embedder(y, 16000) for y in gen])
    assert fad(real, gen, frame_embedder, sr=16000) == pytest.approx(
        frechet_distance(pooled_real, pooled_gen)
    )
    assert fad(real, real, frame_embedder, sr=16000) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="must return"):
        fad(real, gen, lambda y, sr: np.zeros((2, 2, 2)), sr=16000)
    with pytest.raises(ValueError, match="no clips"):
        fad([], gen, frame_embedder, sr=16000)


def test_fvd_one_embedding_per_clip():
    rng = np.random.default_rng(1)
    real = [rng.uniform(0, 255, (4, 8, 8, 3)) for _ in range(6)]
    gen = [v * 0.5 for v in real]

    def embed(video):
        return np.asarray(video).mean(axis=(0, 1, 2))  # [3]

    expected = frechet_distance(np.stack([embed(v) for v in real]), np.stack([embed(v) for v in gen]))
    assert fvd(real, gen, embed) == pytest.approx(expected)
