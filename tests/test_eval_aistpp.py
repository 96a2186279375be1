"""`mmgen eval --protocol aistpp` on a test-made AIST++ tree and generated dances in the mmgen, Bailando,
EDGE, SMPL-parameter and plain-array layouts; every number against an independent numpy computation
(numpy SMPL FK, np.interp resampling, eigh-based Fréchet distance, Bailando's BAS written out)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.ndimage import gaussian_filter
from scipy.signal import argrelextrema
from test_aistpp import fake_motion, find_smpl_model, numpy_fk, write_fake_smpl
from test_metrics_frechet import psd_sqrt, published_fid

from mmgen.cli import main
from mmgen.io.export import save_motion_npz
from mmgen.metrics import geometric_features, kinetic_features

SPLITS = {
    "train": ["gBR_sBM_cAll_d04_mBR0_ch01", "gHO_sFM_cAll_d20_mHO5_ch13", "gPO_sBM_cAll_d10_mPO3_ch04"],
    "val": ["gPO_sBM_cAll_d10_mPO1_ch02"],
    "test": ["gLO_sBM_cAll_d13_mLO2_ch03", "gLO_sFM_cAll_d14_mLO2_ch09", "gKR_sBM_cAll_d28_mKR1_ch05"],
}
IGNORED = "gHO_sFM_cAll_d20_mHO5_ch13"
FRAMES = {"gLO_sBM_cAll_d13_mLO2_ch03": 1320}  # one 22-s sequence: the reference keeps all of it
SR = 8000


def click_track(seconds: float, bpm: float) -> np.ndarray:
    y = np.zeros(int(seconds * SR), np.float32)
    for t in np.arange(0, seconds, 60 / bpm):
        i = int(t * SR)
        y[i : i + 200] += np.hanning(400)[200:] * np.sin(2 * np.pi * 1000 * np.arange(200) / SR)
    return y + 0.05 * np.sin(2 * np.pi * 220 * np.arange(len(y)) / SR)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aist")
    root, smpl, music = tmp / "aist_plusplus_final", tmp / "smpl", tmp / "music"
    write_fake_smpl(smpl)
    for d in (root / "motions", root / "splits", music):
        d.mkdir(parents=True)
    motions = {}
    for i, seq in enumerate(n for names in SPLITS.values() for n in names):
        motions[seq] = fake_motion(FRAMES.get(seq, 300 + 30 * i), seed=i)
        (root / "motions" / f"{seq}.pkl").write_bytes(pickle.dumps(motions[seq]))
        bpm = {"mLO2": 120.0, "mKR1": 100.0}.get(seq.split("_")[4], 90.0)
        sf.write(music / f"{seq.split('_')[4]}.wav", click_track(12.0, bpm), SR)
    for split, names in SPLITS.items():
        (root / "splits" / f"crossmodal_{split}.txt").write_text("\n".join(names) + "\n")
    (root / "ignore_list.txt").write_text(IGNORED + "\n")
    return root, smpl, music, motions


_FK: dict[int, np.ndarray] = {}


def gt_joints(smpl: Path, m: dict) -> np.ndarray:
    if id(m) not in _FK:
        _FK[id(m)] = numpy_fk(find_smpl_model(smpl), m["smpl_poses"], m["smpl_trans"] / m["smpl_scaling"][0])
    return _FK[id(m)]


def upsample_30_to_60(x: np.ndarray) -> np.ndarray:
    t_out = np.arange(2 * len(x) - 1) / 2.0  # 60-fps frame times in 30-fps frames
    flat = x.reshape(len(x), -1)
    return np.stack([np.interp(t_out, np.arange(len(x)), flat[:, c]) for c in range(flat.shape[1])], 1).reshape(
        -1, *x.shape[1:]
    )


def feats(joints: np.ndarray, frames: int | None) -> tuple[np.ndarray, np.ndarray]:
    p = joints[:frames] - joints[:1, :1]
    return kinetic_features(p).astype(np.float64), geometric_features(p).astype(np.float64)


_BEATS: dict[int, np.ndarray] = {}


def bailando_bas(joints: np.ndarray, music: np.ndarray) -> float:
    """utils/beat_align_score.py written out, music beats as _prepro_aistpp.py makes them."""
    import librosa

    speed = np.mean(np.sqrt(np.sum((joints[1:] - joints[:-1]) ** 2, axis=2)), axis=1)
    dance_beats = argrelextrema(gaussian_filter(speed, 5), np.less)[0]
    if id(music) not in _BEATS:
        y = librosa.resample(music, orig_sr=SR, target_sr=30720, res_type="soxr_hq")
        env = librosa.onset.onset_strength(y=librosa.effects.hpss(y)[1], sr=30720, aggregate=np.median)
        _BEATS[id(music)] = librosa.beat.beat_track(onset_envelope=env, sr=30720)[1]  # 60-fps frames
    music_beats = _BEATS[id(music)][_BEATS[id(music)] < len(speed)]
    return float(np.mean([np.exp(-np.min((dance_beats - b) ** 2) / 2 / 9) for b in music_beats]))


def diversity(f: np.ndarray, ref: np.ndarray) -> float:
    g = (f - ref.mean(0)) / (ref.std(0) + 1e-10)
    n = len(g)
    return sum(np.linalg.norm(g[i] - g[j]) for i in range(n) for j in range(i + 1, n)) / (n * (n - 1) / 2)


def audio_stats(y, sr):
    """Toy FAD embedder: [mean, std, max |y|] of 0.1-s frames -> [n, 3]."""
    n = int(0.1 * sr)
    frames = np.asarray(y)[: len(y) // n * n].reshape(-1, n)
    return np.stack([frames.mean(1), frames.std(1), np.abs(frames).max(1)], axis=1)


def video_stats(frames):
    """Toy FVD embedder: mean colour and brightness spread of a clip -> [4]."""
    f = np.asarray(frames, dtype=np.float64)
    return np.concatenate([f.mean(axis=(0, 1, 2)), [f.mean(-1).std()]])


def frechet(a, b):
    mu = a.mean(0) - b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    r1 = psd_sqrt(s1)
    return mu @ mu + np.trace(s1) + np.trace(s2) - 2 * np.trace(psd_sqrt(r1 @ s2 @ r1))


@pytest.mark.slow
def test_aistpp_protocol_matches_independent_computation(tree, tmp_path, capsys):
    root, smpl, music_dir, motions = tree
    test = SPLITS["test"]
    rng = np.random.default_rng(0)
    gen = tmp_path / "gen"
    gen.mkdir()
    expected_60 = {}  # file -> the 60-fps y-up joints the runner should see

    # mmgen npz at 30 fps (y-up); 21 s, so the 20-s cut matters
    long = gt_joints(smpl, fake_motion(1260, seed=40))
    j30 = long[::2] + rng.normal(0, 0.01, long[::2].shape)
    save_motion_npz(gen / f"{test[0]}.npz", j30, 30.0)
    expected_60[f"{test[0]}.npz"] = upsample_30_to_60(j30)
    # EDGE: pickle with full_pose z-up at 30 fps, named test_<seq>.pkl
    j = gt_joints(smpl, motions[test[1]])[::2]
    j = j + rng.normal(0, 0.02, j.shape)
    zup = np.stack([j[..., 0], -j[..., 2], j[..., 1]], axis=-1)
    edge = {"smpl_poses": np.zeros((len(j), 72), np.float32), "smpl_trans": zup[:, 0].astype(np.float32),
            "full_pose": zup.astype(np.float32)}
    (gen / f"test_{test[1]}.pkl").write_bytes(pickle.dumps(edge))
    expected_60[f"test_{test[1]}.pkl"] = upsample_30_to_60(zup.astype(np.float32).astype(np.float64)[..., [0, 2, 1]] * [1, 1, -1])
    # Bailando: np.save of {"pred_position": [T, 72]} at 60 fps -> <seq>.pkl.npy
    j = gt_joints(smpl, motions[test[2]]) + rng.normal(0, 0.02, (len(motions[test[2]]["smpl_poses"]), 24, 3))
    np.save(gen / f"{test[2]}.pkl", {"pred_position": j.reshape(len(j), 72)}, allow_pickle=True)
    expected_60[f"{test[2]}.pkl.npy"] = j
    # SMPL parameters (the AIST++ motions layout) -> FK with the ground truth's model
    m = fake_motion(400, seed=41)
    (gen / f"{test[0]}_smpl.pkl").write_bytes(pickle.dumps(m))
    expected_60[f"{test[0]}_smpl.pkl"] = gt_joints(smpl, m)
    # a plain [T, 24, 3] array at 60 fps, named by its music id only
    j = gt_joints(smpl, fake_motion(360, seed=42))
    np.save(gen / "dance_mKR1.npy", j.astype(np.float32))
    expected_60["dance_mKR1.npy"] = j.astype(np.float32).astype(np.float64)

    # dance2music outputs for FAD (a user embedder), videos for FVD against a folder of real ones
    for k, name in enumerate((test[0], test[2])):
        sf.write(gen / f"{name}.wav", 0.6 * click_track(6.0, 90 + 50 * k)[: int(5.5 * SR)], SR)
    from mmgen.io.export import save_video

    real_videos = tmp_path / "real_videos"
    for k in range(3):
        save_video(gen / f"clip{k}.mp4", np.full((8, 16, 16, 3), 40 * k + 10, np.uint8), 15.0)
        save_video(real_videos / f"real{k}.mp4", np.full((8, 16, 16, 3), 30 * k + 60, np.uint8), 15.0)
    args = ["eval", "--protocol", "aistpp", str(gen), "--gt", str(root), "--smpl-dir", str(smpl),
            "--music-dir", str(music_dir), "--no-progress", "--fad-embedder", "test_eval_aistpp:audio_stats",
            "--fad-sample-rate", str(SR), "--fvd-embedder", "test_eval_aistpp:video_stats",
            "--real-videos", str(real_videos)]
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| Generated |" in printed and "| Ground truth |" in printed
    result = json.loads((gen / "aistpp_metrics.json").read_text())
    assert (gen / "aistpp_metrics.md").read_text().startswith("# AIST++ music-to-dance evaluation")
    files = {f["file"]: f for f in result["files"]}
    assert {f: files[f]["layout"] for f in sorted(files)} == {
        "dance_mKR1.npy": "array", f"test_{test[1]}.pkl": "edge", f"{test[0]}.npz": "mmgen",
        f"{test[0]}_smpl.pkl": "smpl", f"{test[2]}.pkl.npy": "bailando"}  # fmt: skip

    # independent computation
    ref_names = [n for names in SPLITS.values() for n in names if n != IGNORED]
    ref = [feats(gt_joints(smpl, motions[n]), None) for n in ref_names]  # whole sequences
    ref_k, ref_g = np.stack([r[0] for r in ref]), np.stack([r[1] for r in ref])
    names = sorted(expected_60)
    gen_f = [feats(expected_60[n], 1200) for n in names]  # first 20 s at 60 fps
    gen_k, gen_g = np.stack([f[0] for f in gen_f]), np.stack([f[1] for f in gen_f])
    music = {mid: sf.read(music_dir / f"{mid}.wav", dtype="float32")[0] for mid in ("mLO2", "mKR1")}
    bas = [bailando_bas(expected_60[n], music[files[n]["music"]]) for n in names]
    got = result["generated"]
    assert result["protocol"]["reference_sequences"] == 6 and got["count"] == 5
    assert got["fid_k"] == pytest.approx(published_fid(gen_k, ref_k), rel=1e-6)
    assert got["fid_g"] == pytest.approx(published_fid(gen_g, ref_g), rel=1e-6)
    assert got["div_k"] == pytest.approx(diversity(gen_k, ref_k), rel=1e-6)
    assert got["div_g"] == pytest.approx(diversity(gen_g, ref_g), rel=1e-6)
    assert result["reference"]["div_k"] == pytest.approx(diversity(ref_k, ref_k), rel=1e-6)
    for n, b in zip(names, bas):
        assert files[n]["bas"] == pytest.approx(b, rel=1e-6), n
    assert got["bas"] == pytest.approx(np.mean(bas), rel=1e-6) and 0 < got["bas"] < 1
    assert files[f"{test[0]}.npz"]["frames_60fps"] == 1259  # 630 frames at 30 fps -> 2 x 630 - 1
    # ground-truth row: the test sequences themselves, 20-s cut for FID, whole for BAS
    gt_f = [feats(gt_joints(smpl, motions[n]), 1200) for n in test]
    truth = result["ground_truth"]
    assert truth["fid_k"] == pytest.approx(published_fid(np.stack([f[0] for f in gt_f]), ref_k), rel=1e-6)
    gt_bas = [bailando_bas(gt_joints(smpl, motions[n]), music[n.split("_")[4]]) for n in test]
    assert truth["bas"] == pytest.approx(np.mean(gt_bas), rel=1e-6)
    assert result["coverage"]["split_music_without_a_dance"] == []
    # FAD: each generated wav against the same span of its music, frames of all clips pooled
    gen_a = [sf.read(gen / f"{n}.wav", dtype="float32")[0] for n in (test[0], test[2])]
    real_a = [music[n.split("_")[4]][: len(y)] for n, y in zip((test[0], test[2]), gen_a)]
    expected_fad = frechet(np.concatenate([audio_stats(y, SR) for y in real_a]),
                           np.concatenate([audio_stats(y, SR) for y in gen_a]))
    assert result["fad"]["fad"] == pytest.approx(expected_fad, rel=1e-6) and result["fad"]["clips"] == 2
    assert expected_fad > 1e-4  # the two sets differ (louder, other tempi)
    from mmgen.modalities.video_codec import read_video

    gen_v = np.stack([video_stats(read_video(gen / f"clip{k}.mp4")[0]) for k in range(3)])
    real_v = np.stack([video_stats(read_video(real_videos / f"real{k}.mp4")[0]) for k in range(3)])
    assert result["fvd"]["fvd"] == pytest.approx(frechet(real_v, gen_v), rel=1e-6) and frechet(real_v, gen_v) > 1


def test_aistpp_protocol_bad_input(tree, tmp_path, capsys):
    root, smpl, _, _ = tree
    gen = tmp_path / "gen"
    gen.mkdir()
    np.save(gen / "a_mLO2.npy", np.zeros((100, 24, 3), np.float32))
    np.save(gen / "no_music_named.npy", np.zeros((100, 24, 3), np.float32))
    base = ["eval", "--protocol", "aistpp", str(gen), "--gt", str(root), "--smpl-dir", str(smpl), "--no-progress"]
    capsys.readouterr()
    assert main(base) == 2
    assert "no_music_named.npy: no AIST++ sequence name" in capsys.readouterr().err
    (gen / "no_music_named.npy").unlink()
    np.save(gen / "b_mLO2.npy", np.zeros((100, 17, 3), np.float32))
    assert main(base) == 2
    assert "b_mLO2.npy: array has shape (100, 17, 3)" in capsys.readouterr().err
    (gen / "b_mLO2.npy").unlink()
    (gen / "c_mLO2.pkl").write_bytes(pickle.dumps({"joints": np.zeros((5, 24, 3))}))
    assert main(base) == 2
    assert "no pred_position (Bailando), full_pose (EDGE)" in capsys.readouterr().err
    assert main(["eval", "--protocol", "aistpp", str(gen)]) == 2
    assert "needs --gt AIST_ROOT and --smpl-dir" in capsys.readouterr().err
    assert main(["eval", str(gen)]) == 2
    assert "REF_DIR is missing" in capsys.readouterr().err
    assert not (gen / "aistpp_metrics.json").exists()


def test_reference_features_cache(tmp_path):
    from mmgen.core.skeleton import SMPL24_REST
    from mmgen.evaluation.aistpp import ReferenceSet

    class Reader:
        calls = 0

        def joints(self, name):
            Reader.calls += 1
            t = np.arange(90)[:, None, None] / 60
            return SMPL24_REST[None] + 0.05 * np.sin(2 * np.pi * (1 + len(name)) * t) + np.zeros((1, 24, 3))

    cache = tmp_path / "ref.npz"
    first = ReferenceSet(Reader(), ["a", "bb"], True, cache, progress=False)
    assert Reader.calls == 2 and cache.is_file()
    again = ReferenceSet(Reader(), ["a", "bb"], True, cache, progress=False)
    assert Reader.calls == 2  # read from the cache
    np.testing.assert_array_equal(again.kinetic, first.kinetic)
    expected = kinetic_features(Reader().joints("bb") - Reader().joints("bb")[:1, :1])
    np.testing.assert_allclose(first.kinetic[1], expected, rtol=1e-6)
    ReferenceSet(Reader(), ["a", "ccc"], True, cache, progress=False)
    assert Reader.calls == 6  # another list: recomputed (2 sequences + the 2 reads above)
