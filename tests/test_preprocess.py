"""`mmgen preprocess` on test-made AIST++ / video / LORIS folders: manifest, features, resume, skips;
the manifest reader serves preprocessed folders and ToyDance folders alike."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_aistpp import SEQS, write_aistpp_tree, write_fake_smpl
from test_aistpp_pose2d import NAMES, write_loris_set
from test_av_folder import make_folder

from mmgen.cli import main
from mmgen.data.aistpp import AISTPP
from mmgen.data.manifest import ManifestDataset, read_manifest_records
from mmgen.io.export import load_motion_npz


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("smpl")
    write_fake_smpl(d)
    return d


def records(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_manifest_records(out)}


def test_aistpp_manifest_features_resume_and_skips(tmp_path, smpl_dir, capsys):
    root = tmp_path / "aist"
    write_aistpp_tree(root)
    out = tmp_path / "out"
    argv = [
        "preprocess",
        "aistpp",
        "--root",
        str(root),
        "--music-dir",
        str(tmp_path / "music"),
        "--smpl-dir",
        str(smpl_dir),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    recs = records(out)
    assert sorted(recs) == sorted([SEQS["train"][0], SEQS["val"][0], SEQS["test"][0]])  # ignore list applied
    r = recs[SEQS["train"][0]]
    assert (r["split"], r["bpm"], r["style"], r["fps"], r["sample_rate"]) == (
        "train",
        80.0,
        "break",
        30.0,
        22050,
    )
    assert r["seconds"] == pytest.approx(1.5) and r["caption"] == "a basic break dance at 80 bpm"
    motion = load_motion_npz(out / r["files"]["motion"])
    expected = AISTPP(root, smpl_dir=smpl_dir, fps=30).joints(SEQS["train"][0])
    np.testing.assert_array_equal(motion["joints"], expected)  # 90 frames at 60 fps -> 45 at 30 fps
    assert motion["smpl_poses"].shape == (45, 72) and str(motion["skeleton"]) == "smpl24"
    assert sf.info(str(out / r["files"]["audio"])).frames == 33075  # 1.5 s at 22,050 Hz
    assert "left out 1 sequences of ignore_list.txt" in capsys.readouterr().out

    # resume: nothing redone; a removed record is redone; a broken input is skipped with its path
    assert main(argv) == 0
    assert "(0 new, 3 already done)" in capsys.readouterr().out
    (out / "records" / f"{SEQS['val'][0]}.json").unlink()
    bad = root / "motions" / f"{SEQS['test'][0]}.pkl"
    data = pickle.loads(bad.read_bytes())
    data["smpl_poses"][4, 2] = np.nan
    bad.write_bytes(pickle.dumps(data))
    (out / "records" / f"{SEQS['test'][0]}.json").unlink()
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "(1 new, 1 already done)" in text and f"{bad}: smpl_poses holds NaN" in text
    assert json.loads((out / "skipped.jsonl").read_text().splitlines()[0])["path"] == str(bad)
    assert sorted(records(out)) == sorted([SEQS["train"][0], SEQS["val"][0]])

    # EDGE-style windows from the manifest
    ds = ManifestDataset(out, ("audio", "motion"), seconds=1.0, stride=0.5)
    assert len(ds) == 2 * 2  # 1.5 s items: windows at 0 and 0.5 s
    item = ds[1]
    assert item["motion"].shape == (30, 24, 3) and item["audio"].shape == (22050,) and item["start"] == 0.5
    np.testing.assert_array_equal(item["motion"].numpy(), motion["joints"][15:45])

    # other settings into the same folder: one clear line, exit code 2
    assert main(argv[:-1] + ["--fps", "60", "--no-progress"]) == 2
    assert "preprocessed with other settings" in capsys.readouterr().err


def test_aistpp_setup_errors_are_one_line(tmp_path, capsys):
    root = tmp_path / "aist"
    write_aistpp_tree(root)
    argv = [
        "preprocess",
        "aistpp",
        "--root",
        str(root),
        "--music-dir",
        str(tmp_path / "music"),
        "--smpl-dir",
        str(tmp_path / "nosmpl"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SMPL model path does not exist" in err


def test_av_folder_manifest(tmp_path, capsys):
    root = tmp_path / "videos"
    make_folder(root)
    (root / "a.txt").write_text("a red and grey test clip\n")
    out = tmp_path / "out"
    argv = [
        "preprocess",
        "av-folder",
        "--root",
        str(root),
        "--out",
        str(out),
        "--fps",
        "10",
        "--size",
        "32",
        "32",
        "--sample-rate",
        "8000",
        "--no-progress",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert (
        "2 items" in text
        and "skipped 2" in text
        and "silent.mp4: no audio track" in text
        and "corrupt.mp4" in text
    )
    recs = records(out)
    assert sorted(recs) == ["a", "sub__b"] and recs["a"]["caption"] == "a red and grey test clip"
    assert recs["sub__b"]["seconds"] == pytest.approx(1.5) and recs["a"]["original"] == "a.mp4"
    ds = ManifestDataset(out, ("audio", "video"))
    item = ds[[r["id"] for r in read_manifest_records(out)].index("a")]
    assert item["video"].shape == (20, 32, 32, 3) and item["audio"].shape == (16000,)
    gray = item["video"][:, :, 20:].float().mean(dim=(1, 2, 3))  # re-encoded frames keep their content
    np.testing.assert_allclose(gray.numpy(), 4 * np.floor(2.5 * np.arange(20)), atol=3.0)
    assert (
        main(
            [
                "preprocess",
                "av-folder",
                "--root",
                str(root),
                "--out",
                str(tmp_path / "o2"),
                "--size",
                "31",
                "32",
            ]
        )
        == 2
    )
    assert "--size must be even" in capsys.readouterr().err


def test_loris_manifest(tmp_path, capsys):
    root = tmp_path / "dance"
    poses = write_loris_set(root)
    out = tmp_path / "out"
    assert main(["preprocess", "loris", "--root", str(root), "--out", str(out), "--no-progress"]) == 0
    assert "orphan.npy: no matching audio" in capsys.readouterr().out
    recs = records(out)
    assert sorted(recs) == sorted(NAMES)
    r = recs[NAMES[1]]
    assert (r["bpm"], r["style"], r["skeleton"], r["fps"]) == (90.0, "krump", "coco17", pytest.approx(20.0))
    motion = load_motion_npz(out / r["files"]["motion"])
    np.testing.assert_array_equal(motion["joints"], poses[NAMES[1]])
    item = ManifestDataset(out, ("audio", "motion"), seconds=1.0)[0]
    assert item["motion"].shape == (20, 17, 3) and item["audio"].shape == (22050,)


def test_manifest_reader_serves_toydance_folders(tmp_path):
    toydance_io = pytest.importorskip("mmgen.data.toydance.io")
    toydance_io.make_dataset(tmp_path / "toy", clips=1, seconds=2.0, seed=0, progress=False)
    item = ManifestDataset(tmp_path / "toy", ("audio", "motion", "video"), seconds=1.0)[1]
    assert (
        item["audio"].shape == (22050,)
        and item["motion"].shape == (30, 24, 3)
        and item["video"].shape[0] == 15
    )


def test_bad_manifests(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest"):
        read_manifest_records(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"manifest.jsonl:1: record lacks \['files'"):
        read_manifest_records(tmp_path)
    rec = {
        "id": "x",
        "files": {"audio": "a.wav"},
        "seconds": 1,
        "caption": "",
        "bpm": None,
        "style": "",
        "structure": [],
        "seed": None,
    }
    (tmp_path / "manifest.jsonl").write_text("\n" + json.dumps(rec) + "\n{oops\n")
    with pytest.raises(ValueError, match="manifest.jsonl:3: not valid JSON"):
        read_manifest_records(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(ValueError, match="no record has files for \\('video',\\)"):
        read_manifest_records(tmp_path, ("video",))
