"""AIST++ reader: exact on-disk format, smplx FK against an independent numpy FK, fps/units/axis/splits.

The helpers at the top write a structurally valid SMPL model pickle (6890 vertices, the real
kinematic tree, random blend shapes, a sparse J_regressor like the official files) and a tiny
AIST++ annotation tree; `test_preprocess.py` reuses them.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import soundfile as sf
import torch

from mmgen.core.errors import MmgenError
from mmgen.core.skeleton import SMPL24, SMPL24_REST
from mmgen.data.aistpp import (
    AISTPP,
    SeqName,
    clip_starts,
    load_keypoints3d,
    load_motion,
    music_bpm,
    music_id,
    read_ignore_list,
    read_split,
    resample_frames,
)
from mmgen.data.smpl_fk import SMPLForwardKinematics, find_smpl_model

NUM_VERTS = 6890
SEQS = {
    "train": ["gBR_sBM_cAll_d04_mBR0_ch01", "gHO_sFM_cAll_d20_mHO5_ch13"],
    "val": ["gPO_sBM_cAll_d10_mPO1_ch02"],
    "test": ["gLO_sBM_cAll_d13_mLO2_ch03"],
}
IGNORED = "gHO_sFM_cAll_d20_mHO5_ch13"


# ----------------------------------------------------------------------------- writers
def write_fake_smpl(model_dir: Path, gender: str = "male", seed: int = 0) -> Path:
    """A structurally valid SMPL model at `<model_dir>/smpl/SMPL_<GENDER>.pkl`."""
    rng = np.random.default_rng(seed)
    owner = np.arange(NUM_VERTS) % 24  # the joint each vertex belongs to
    v_template = (SMPL24_REST[owner] + 0.03 * rng.standard_normal((NUM_VERTS, 3))).astype(np.float64)
    regressor = np.zeros((24, NUM_VERTS))
    for j in range(24):
        idx = np.flatnonzero(owner == j)[:20]
        regressor[j, idx] = rng.random(idx.size)
        regressor[j] /= regressor[j].sum()
    parents = np.array(SMPL24.parents, dtype=np.int64)
    weights = np.zeros((NUM_VERTS, 24))
    weights[np.arange(NUM_VERTS), owner] = 0.7
    weights[np.arange(NUM_VERTS), np.maximum(parents[owner], 0)] += 0.3
    data = {
        "v_template": v_template,
        "shapedirs": 0.01 * rng.standard_normal((NUM_VERTS, 3, 10)),
        "posedirs": (0.01 * rng.standard_normal((NUM_VERTS, 3, 207))).astype(np.float32),
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "weights": weights,
        "kintree_table": np.stack([np.where(parents < 0, 4294967295, parents), np.arange(24)]).astype(
            np.int64
        ),
        "f": rng.integers(0, NUM_VERTS, size=(13776, 3)).astype(np.uint32),
    }
    path = model_dir / "smpl" / f"SMPL_{gender.upper()}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def fake_motion(num_frames: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None] / 60.0
    poses = 0.4 * np.sin(2 * np.pi * (0.5 + rng.random((1, 72))) * t + rng.random((1, 72)) * 6)
    scaling = np.array([93.77886], dtype=np.float32)
    trans = np.stack(
        [30 * np.sin(t[:, 0]), 160 + 5 * np.cos(3 * t[:, 0]), -20 * t[:, 0]], axis=1
    ) + rng.normal(0, 1, 3)
    return {
        "smpl_poses": poses.astype(np.float32),
        "smpl_trans": trans.astype(np.float32),
        "smpl_scaling": scaling,
        "smpl_loss": 0.0123,
    }


def write_aistpp_tree(root: Path, num_frames: int = 90, music_seconds: float = 2.0, sr: int = 8000) -> dict:
    """Annotation tree + music folder in the release's format. Returns {seq: motion dict}."""
    (root / "motions").mkdir(parents=True)
    (root / "keypoints3d").mkdir()
    (root / "splits").mkdir()
    music = root.parent / "music"
    music.mkdir(exist_ok=True)
    motions = {}
    for i, seq in enumerate(s for names in SEQS.values() for s in names):
        m = fake_motion(num_frames + 6 * i, seed=i)
        motions[seq] = m
        (root / "motions" / f"{seq}.pkl").write_bytes(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL))
        kp = np.random.default_rng(i).normal(0, 50, (m["smpl_poses"].shape[0], 17, 3)).astype(np.float32)
        kp_data = {"keypoints3d": kp, "keypoints3d_optim": kp + 1.0}
        (root / "keypoints3d" / f"{seq}.pkl").write_bytes(
            pickle.dumps(kp_data, protocol=pickle.HIGHEST_PROTOCOL)
        )
        wav = music / f"{music_id(seq)}.wav"
        if not wav.exists():
            tt = np.arange(int(music_seconds * sr)) / sr
            sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * (i + 1) * tt)).astype(np.float32), sr)
    for split, names in SEQS.items():
        (root / "splits" / f"crossmodal_{split}.txt").write_text("\n".join(names) + "\n")
    (root / "ignore_list.txt").write_text(f"{IGNORED}\n")
    return motions


# ----------------------------------------------------------------------------- reference FK
def rodrigues(r: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(r)
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def numpy_fk(model_file: Path, poses: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """SMPL joints from the model file's J_regressor / v_template / kintree (betas = 0)."""
    with open(model_file, "rb") as f:
        model = pickle.load(f)  # the test's own file
    rest = np.asarray(model["J_regressor"].todense()) @ model["v_template"]  # [24, 3]
    parents = model["kintree_table"][0].astype(np.int64)
    out = np.zeros((poses.shape[0], 24, 3))
    for n in range(poses.shape[0]):
        g = [None] * 24
        for j in range(24):
            local = np.eye(4)
            local[:3, :3] = rodrigues(poses[n, 3 * j : 3 * j + 3].astype(np.float64))
            if j == 0:
                local[:3, 3] = rest[0]
                g[0] = local
            else:
                p = int(parents[j])
                local[:3, 3] = rest[j] - rest[p]
                g[j] = g[p] @ local
            out[n, j] = g[j][:3, 3] + transl[n]
    return out


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("smpl")
    write_fake_smpl(d)
    return d


@pytest.fixture()
def tree(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "aist_plusplus_final"
    return root, write_aistpp_tree(root)


# ----------------------------------------------------------------------------- tests
def test_round_trip_joints_match_independent_fk(smpl_dir, tree):
    root, motions = tree
    seq = SEQS["train"][0]
    reader = AISTPP(root, smpl_dir=smpl_dir, fps=60)
    joints = reader.joints(seq)
    m = motions[seq]
    expected = numpy_fk(find_smpl_model(smpl_dir), m["smpl_poses"], m["smpl_trans"] / m["smpl_scaling"][0])
    assert joints.shape == (90, 24, 3) and joints.dtype == np.float32
    np.testing.assert_allclose(joints, expected, atol=2e-5)
    # the motion really moves and is translated (not a trivial pass of the rest pose)
    assert np.abs(np.diff(joints, axis=0)).max() > 1e-3
    assert np.linalg.norm(joints[:, 0].mean(0)) > 1.0


def test_fps_units_and_axis(smpl_dir, tree):
    root, motions = tree
    seq = SEQS["train"][0]
    m = motions[seq]
    j60 = AISTPP(root, smpl_dir=smpl_dir, fps=60).joints(seq)
    j30 = AISTPP(root, smpl_dir=smpl_dir, fps=30).joints(seq)
    np.testing.assert_allclose(j30, j60[::2], atol=1e-6)  # EDGE: every 2nd frame
    assert j30.shape[0] == 45
    j24 = AISTPP(root, smpl_dir=smpl_dir, fps=24).joints(seq)  # 2.5 frames per output frame: interpolated
    assert j24.shape[0] == 36
    np.testing.assert_allclose(j24[1], 0.5 * (j60[2] + j60[3]), atol=1e-6)
    # units: translation divided by smpl_scaling -> the root moves by Δtrans / scaling (metres)
    zero = dict(m, smpl_poses=np.zeros_like(m["smpl_poses"]))
    (root / "motions" / "gBR_sBM_cAll_d04_mBR0_ch02.pkl").write_bytes(pickle.dumps(zero))
    j = AISTPP(root, smpl_dir=smpl_dir, fps=60).joints("gBR_sBM_cAll_d04_mBR0_ch02")
    np.testing.assert_allclose(
        j[:, 0] - j[0, 0], (m["smpl_trans"] - m["smpl_trans"][0]) / 93.77886, atol=1e-5
    )
    # y-up, not rotated: in the zero pose the head is above the pelvis by the template's height
    assert np.all(j[:, 15, 1] - j[:, 0, 1] > 0.4)
    np.testing.assert_allclose(j[:, 15, 2] - j[:, 0, 2], j[0, 15, 2] - j[0, 0, 2], atol=1e-6)


def test_fk_chain_equals_full_smplx_forward_and_chunks(smpl_dir):
    poses = torch.randn(7, 72) * 0.5
    transl = torch.randn(7, 3)
    fk = SMPLForwardKinematics(smpl_dir, chunk_size=100)
    whole = fk(poses, transl)
    full = SMPLForwardKinematics(smpl_dir, full_forward=True)(poses, transl)  # SMPL.forward().joints[:, :24]
    torch.testing.assert_close(whole, full, atol=1e-5, rtol=0)
    fk.chunk_size = 3
    torch.testing.assert_close(fk(poses, transl), whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(whole - transl[:, None], fk(poses), atol=1e-5, rtol=0)


def test_splits_ignore_list_names_and_tempo(tree):
    root, _ = tree
    reader = AISTPP(root, music_dir=root.parent / "music")
    assert reader.sequences("train") == [SEQS["train"][0]]  # the ignored one is dropped
    assert reader.sequences("train", drop_ignored=False) == SEQS["train"]
    assert read_split(root, "val") == SEQS["val"] and read_ignore_list(root) == {IGNORED}
    assert len(reader.sequences()) == 3
    assert music_id("gBR_sBM_cAll_d04_mBR0_ch01") == "mBR0"
    assert SeqName.parse("gJB_sFM_c07_d09_mJB5_ch21").camera == "c07"
    assert [music_bpm(f"mBR{i}") for i in range(6)] == [80, 90, 100, 110, 120, 130]
    assert [music_bpm(f"mHO{i}") for i in range(6)] == [110, 115, 120, 125, 130, 135]
    assert reader.music_path(SEQS["test"][0]).name == "mLO2.wav"
    assert reader.bpm(SEQS["test"][0]) == 100
    assert reader.caption(SEQS["train"][0]) == "a basic break dance at 80 bpm"
    y = reader.audio(SEQS["train"][0], sample_rate=16000)
    assert y.dtype == np.float32 and abs(y.shape[0] - 32000) <= 1


def test_keypoints3d_frame_and_scale(tree):
    root, motions = tree
    seq = SEQS["val"][0]
    raw = load_keypoints3d(root / "keypoints3d" / f"{seq}.pkl")
    kp = AISTPP(root, fps=30).keypoints3d(seq)
    np.testing.assert_allclose(kp, raw[::2] / motions[seq]["smpl_scaling"][0], rtol=1e-6)
    raw_cm = AISTPP(root, fps=60).keypoints3d(seq, key="keypoints3d", smpl_scale=False)
    np.testing.assert_allclose(raw_cm + 1.0, raw, rtol=1e-6)


def test_resample_and_clip_slicing():
    x = np.arange(10, dtype=np.float32)[:, None]
    assert resample_frames(x, 60, 30)[:, 0].tolist() == [0, 2, 4, 6, 8]
    np.testing.assert_allclose(resample_frames(x, 60, 24)[:, 0], [0, 2.5, 5, 7.5])
    assert clip_starts(6.0, 5.0, 0.5) == [0.0, 0.5, 1.0]
    assert clip_starts(4.9, 5.0, 0.5) == []
    assert len(clip_starts(20.0, 5.0, 0.5)) == 31


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("smpl_trans"), "missing key 'smpl_trans'"),
        (lambda d: d.update(smpl_poses=d["smpl_poses"][:, :71]), "smpl_poses has shape"),
        (lambda d: d.update(smpl_trans=d["smpl_trans"][:-1]), "smpl_trans has shape"),
        (lambda d: d["smpl_poses"].__setitem__((3, 5), np.nan), "smpl_poses holds NaN"),
        (lambda d: d.update(smpl_scaling=np.array([0.0], np.float32)), "smpl_scaling must be one positive"),
        (lambda d: d.update(smpl_poses=np.array(["a"] * 72)), "smpl_poses must be numeric"),
    ],
)
def test_bad_motion_files_raise_one_clear_line(tmp_path, edit, message):
    data = fake_motion(10, seed=1)
    edit(data)
    path = tmp_path / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        load_motion(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unreadable_and_unsafe_pickles(tmp_path):
    bad = tmp_path / "truncated.pkl"
    bad.write_bytes(pickle.dumps(fake_motion(5, 0))[:50])
    with pytest.raises(ValueError, match="not a readable annotation pickle"):
        load_motion(bad)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"smpl_poses": Path("x")}))  # references a non-numpy class
    with pytest.raises(ValueError, match="refusing to load"):
        load_motion(evil)
    with pytest.raises(FileNotFoundError):
        load_motion(tmp_path / "missing.pkl")
    kp = tmp_path / "kp.pkl"
    kp.write_bytes(pickle.dumps({"keypoints3d_optim": np.zeros((4, 24, 3), np.float32)}))
    with pytest.raises(ValueError, match=r"expected \(N, 17, 3\)"):
        load_keypoints3d(kp)


def test_bad_names_paths_and_models(tmp_path, smpl_dir):
    with pytest.raises(ValueError, match="not an AIST\\+\\+ sequence name"):
        music_id("dance_01")
    with pytest.raises(ValueError, match="not an AIST music id"):
        music_bpm("mXX")
    with pytest.raises(FileNotFoundError, match="no motions/ folder"):
        AISTPP(tmp_path)
    with pytest.raises(FileNotFoundError, match="SMPL_FEMALE.pkl"):
        find_smpl_model(smpl_dir, "female")
    chumpy_like = tmp_path / "SMPL_MALE.pkl"
    chumpy_like.write_bytes(b"\x80\x02cchumpy.ch\nCh\nq\x00.")  # the class alone, not a model
    with pytest.raises(MmgenError, match="expected a pickled dict"):
        SMPLForwardKinematics(chumpy_like)
    text = tmp_path / "text" / "SMPL_MALE.pkl"
    text.parent.mkdir()
    text.write_text("this is not a model\n")
    with pytest.raises(MmgenError, match=r"SMPL_MALE.pkl: not a readable SMPL model pickle"):
        SMPLForwardKinematics(text)
    with pytest.raises(ValueError, match=r"poses must be \[N, 72\]"):
        SMPLForwardKinematics(smpl_dir)(torch.zeros(3, 69))


def write_chumpy_smpl(src: Path, dst: Path, protocol: int, terminal: bool = True) -> Path:
    """The official v1.0 layout: arrays wrapped in chumpy.ch.Ch objects (a stand-in module plays
    chumpy while pickling; the reader never imports it)."""
    import sys
    import types

    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:  # what chumpy pickles: the value under x, plus bookkeeping
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch, pkg.ch = Ch, mod
    sys.modules.update({"chumpy": pkg, "chumpy.ch": mod})
    try:
        data = pickle.loads(src.read_bytes())  # the test's own file
        for key in ("v_template", "shapedirs", "posedirs", "weights"):
            c = Ch()
            c.__dict__.update({"x": data[key], "_dirty_vars": set()} if terminal else {"a": None, "b": None})
            data[key] = c
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(pickle.dumps(data, protocol=protocol))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    return dst


@pytest.mark.parametrize("protocol", [0, 2])
def test_official_chumpy_files_load_without_chumpy(tmp_path, smpl_dir, protocol):
    import importlib.util

    assert importlib.util.find_spec("chumpy") is None  # the reader cannot be leaning on it
    plain = find_smpl_model(smpl_dir)
    official = write_chumpy_smpl(plain, tmp_path / "v1" / "SMPL_MALE.pkl", protocol)
    poses = torch.randn(5, 72) * 0.3
    transl = torch.randn(5, 3)
    expected = SMPLForwardKinematics(plain, full_forward=True)(poses, transl)
    torch.testing.assert_close(SMPLForwardKinematics(official, full_forward=True)(poses, transl), expected)
    expression = write_chumpy_smpl(plain, tmp_path / "expr" / "SMPL_MALE.pkl", protocol, terminal=False)
    with pytest.raises(MmgenError, match=r"v_template is a chumpy Ch expression.*clean_ch.py"):
        SMPLForwardKinematics(expression)


def test_smpl_npz_loads_without_pickle(tmp_path, smpl_dir):
    data = pickle.loads(find_smpl_model(smpl_dir).read_bytes())  # the test's own file
    data["J_regressor"] = np.asarray(data["J_regressor"].todense())
    npz = tmp_path / "SMPL_MALE.npz"
    np.savez(npz, **data)
    poses = torch.randn(4, 72) * 0.3
    torch.testing.assert_close(SMPLForwardKinematics(npz)(poses), SMPLForwardKinematics(smpl_dir)(poses))
    np.savez(tmp_path / "obj.npz", v_template=np.array([object()]))  # would need pickle to read
    with pytest.raises(MmgenError, match=r"obj.npz: not a readable SMPL .npz"):
        SMPLForwardKinematics(tmp_path / "obj.npz")


class _Payload:
    """A hostile 'model file': unpickling it would call os.system (writing a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_smpl_pickle_is_refused_and_never_runs(tmp_path, capsys):
    from mmgen.cli import main

    marker = tmp_path / "pwned"
    smpl = tmp_path / "smpl" / "SMPL_MALE.pkl"
    smpl.parent.mkdir()
    smpl.write_bytes(pickle.dumps({"v_template": _Payload(marker)}, protocol=2))
    with pytest.raises(MmgenError, match=r"SMPL_MALE.pkl: not a readable SMPL model pickle \(refusing to load posix.system"):
        SMPLForwardKinematics(smpl)
    root = tmp_path / "aist"
    write_aistpp_tree(root)
    argv = ["preprocess", "aistpp", "--root", str(root), "--music-dir", str(tmp_path / "music"),
            "--smpl-dir", str(smpl.parent), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SMPL_MALE.pkl: not a readable SMPL model pickle" in err
    assert not marker.exists()  # the payload never ran (not once per sequence either)
    assert not (tmp_path / "out").exists()  # and the failed run left nothing behind
