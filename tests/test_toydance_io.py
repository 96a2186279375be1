"""ToyDance on disk: make_dataset is deterministic and atomic, readers return what was generated,
bad folders fail naming the file, and the CLI makes and reports."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmgen.cli import main
from mmgen.core.errors import MmgenError
from mmgen.data import InMemoryToyDance, ToyDanceDataset, collate_toydance, make_dataset, read_manifest
from mmgen.data.toydance import STYLES

CLIPS, SECONDS, SEED = 3, 2.0, 5


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("td") / "set", CLIPS, SECONDS, SEED, progress=False)


def _digests(root):
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_manifest_and_determinism(made, tmp_path):
    records = read_manifest(made)
    assert [r["id"] for r in records] == ["00000", "00001", "00002"]
    assert [r["style"] for r in records] == [STYLES[(SEED + i) % len(STYLES)] for i in range(CLIPS)]
    for r in records:
        assert r["seconds"] == SECONDS and f"{int(r['bpm'])} bpm" in r["caption"] and r["key"]
        assert all((made / f).is_file() for f in r["files"].values())
    info = json.loads((made / "info.json").read_text())
    assert (
        info["source"] == "mmgen.toydance"
        and info["settings"]["clips"] == CLIPS
        and info["settings"]["seed"] == SEED
    )
    again = make_dataset(tmp_path / "again", CLIPS, SECONDS, SEED, progress=False)
    assert _digests(again) == _digests(made)  # byte-identical, mp4 included
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_another_process_makes_the_same_bytes(made, tmp_path):
    # memory layout differs between processes (x264's mb-tree once made the mp4s differ there)
    out = tmp_path / "other"
    args = ["toydance", "make", "--out", str(out), "--clips", str(CLIPS), "--seconds", str(SECONDS)]
    code = "import sys; from mmgen.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, *args, "--seed", str(SEED), "--no-progress"], check=True)
    assert _digests(out) == _digests(made)


def test_disk_items_equal_the_in_memory_items(made):
    disk = ToyDanceDataset(made)
    memory = InMemoryToyDance(CLIPS, SECONDS, SEED)
    assert len(disk) == len(memory) == CLIPS
    for i in range(CLIPS):
        a, b = disk[i], memory[i]
        assert torch.equal(a["audio"], b["audio"]) and a["audio"].dtype == torch.float32
        assert torch.equal(a["motion"], b["motion"]) and a["motion"].shape == (60, 24, 3)
        assert a["video"].shape == b["video"].shape == (30, 64, 64, 3) and a["video"].dtype == torch.uint8
        assert (a["video"].int() - b["video"].int()).abs().float().mean() < 8  # H.264 is lossy
        assert torch.equal(a["beat_times"], b["beat_times"]) and a["beat_times"].dtype == torch.float64
        for key in ("caption", "style", "bpm", "id", "structure"):
            assert a[key] == b[key], key


def test_the_shared_manifest_reader_reads_toydance(made):
    from mmgen.data.manifest import ManifestDataset

    shared = ManifestDataset(made, modalities=("audio", "motion"), seconds=1.0)
    ours = ToyDanceDataset(made, modalities=("audio", "motion"), seconds=1.0)
    assert len(shared) == len(ours)
    assert torch.equal(shared[3]["audio"], ours[3]["audio"]) and torch.equal(
        shared[3]["motion"], ours[3]["motion"]
    )


def test_windows_split_clips(made):
    whole = ToyDanceDataset(made, modalities=("audio", "motion"))[1]
    windows = ToyDanceDataset(made, modalities=("audio", "motion"), seconds=1.0)
    assert len(windows) == 2 * CLIPS
    second = windows[3]  # clip 1, window 1
    assert second["id"] == "00001" and second["start"] == 1.0 and "video" not in second
    assert torch.equal(second["audio"], whole["audio"][22050:44100])
    assert torch.equal(second["motion"], whole["motion"][30:60])
    expected = whole["beat_times"][whole["beat_times"] >= 1.0] - 1.0
    assert torch.allclose(second["beat_times"], expected)
    batch = collate_toydance([windows[0], windows[3]])
    assert batch["audio"].shape == (2, 22050) and batch["motion"].shape == (2, 30, 24, 3)
    assert batch["bpm"].shape == (2,) and len(batch["beat_times"]) == 2
    with pytest.raises(ValueError, match="shorter than the requested window"):
        ToyDanceDataset(made, seconds=3.0)


def test_collate_refuses_unequal_lengths(made):
    data = ToyDanceDataset(made, modalities=("audio",), seconds=1.0)
    item = dict(data[0])
    item["audio"] = item["audio"][:100]
    with pytest.raises(ValueError, match="audio shapes differ"):
        collate_toydance([data[1], item])


def test_bad_folders_name_the_file(made, tmp_path):
    import shutil

    with pytest.raises(FileNotFoundError, match="manifest.jsonl"):
        ToyDanceDataset(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(made, broken)
    lines = (broken / "manifest.jsonl").read_text().splitlines()
    (broken / "manifest.jsonl").write_text("\n".join([lines[0], "{not json", *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=r"manifest.jsonl:2"):
        ToyDanceDataset(broken)
    (broken / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (broken / "clips" / "00002.mp4").unlink()
    with pytest.raises(FileNotFoundError, match="00002.mp4"):
        ToyDanceDataset(broken)
    assert len(ToyDanceDataset(broken, modalities=("audio", "motion"))) == CLIPS  # video not needed
    (broken / "clips" / "00002.mp4").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="00002.mp4"):
        ToyDanceDataset(broken)[2]
    with pytest.raises(ValueError, match="modalities"):
        ToyDanceDataset(made, modalities=("smell",))


def test_make_refuses_to_replace_other_folders(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(MmgenError, match="not empty and was not written by mmgen"):
        make_dataset(tmp_path, 1, 1.0, 0, progress=False, overwrite=True)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    made = make_dataset(tmp_path / "set", 1, 1.0, 0, progress=False)
    with pytest.raises(MmgenError, match="holds an earlier ToyDance set; pass --overwrite"):
        make_dataset(made, 1, 1.0, 1, progress=False)
    assert make_dataset(made, 1, 1.0, 1, progress=False, overwrite=True) == made
    for bad in ({"clips": 0}, {"seconds": -1.0}, {"seed": -3}):
        args = {"out_dir": tmp_path / "x", "clips": 1, "seconds": 1.0, "seed": 0, **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_dataset(**args, progress=False)


def test_cli_make_and_report(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "toydance",
                "make",
                "--out",
                str(out),
                "--clips",
                "4",
                "--seconds",
                "4",
                "--seed",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(read_manifest(out)) == 4
    code = main(["toydance", "report", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert code == (0 if all(report["summary"]["pass"].values()) else 1)
    assert (
        "| tempo accuracy |" in printed
        and (out / "report.md").is_file()
        and (out / "preview_mel.png").is_file()
    )
    clips = report["clips"]
    assert [c["id"] for c in clips] == ["00000", "00001", "00002", "00003"]
    for c, rec in zip(clips, read_manifest(out)):
        assert c["bpm"] == rec["bpm"] and 0.0 <= c["bas_own"] <= 1.0 and 0.0 <= c["bas_mismatched"] <= 1.0
    s = report["summary"]
    assert s["tempo_accuracy"] == pytest.approx(np.mean([c["tempo_ok"] for c in clips]))
    assert s["bas_own"] == pytest.approx(np.mean([c["bas_own"] for c in clips]), abs=1e-3)
    assert s["bas_own"] - s["bas_mismatched"] > 0.2  # even on four 4-s clips the own beats fit far better
    assert main(["toydance", "report", str(tmp_path / "nothing")]) == 2
    assert "manifest.jsonl" in capsys.readouterr().err
    assert main(["toydance", "report", str(out), "--no-progress", "--no-preview"]) == 2  # before any work
    assert "report.json is already there (an earlier mmgen output); pass --overwrite" in capsys.readouterr().err
    assert main(["toydance", "report", str(out), "--no-progress", "--no-preview", "--overwrite"]) in (0, 1)


def edge_pfc(joints_yup, dt=1 / 30):
    """EDGE eval_pfc.py on one y-up sequence, written out (z-up: (x, y, z) -> (x, -z, y))."""
    p = np.stack([joints_yup[..., 0], -joints_yup[..., 2], joints_yup[..., 1]], axis=-1).astype(np.float64)
    root_v = (p[1:, 0] - p[:-1, 0]) / dt
    root_a = (root_v[1:] - root_v[:-1]) / dt
    root_a[:, 2] = np.maximum(root_a[:, 2], 0)
    root_a = np.linalg.norm(root_a, axis=-1)
    root_a /= root_a.max()
    feet = p[:, [7, 10, 8, 11]]
    foot_v = np.linalg.norm(feet[2:, :, :2] - feet[1:-1, :, :2], axis=-1)
    return 1e4 * np.mean(np.minimum(foot_v[:, 0], foot_v[:, 1]) * np.minimum(foot_v[:, 2], foot_v[:, 3]) * root_a)


def test_report_marks_undefined_pfc_as_missing_not_zero(tmp_path):
    from mmgen.data.toydance import generate_clip
    from mmgen.data.toydance.report import report_markdown, toydance_report, write_report
    from mmgen.io.export import load_motion_npz, save_motion_npz, save_wav

    out = tmp_path / "set"  # two 3-s clips written as `toydance make` does, without the video
    records = []
    for i, seed in enumerate((20001, 20002)):
        clip = generate_clip(seed, 3.0, render_video=False)
        files = {"audio": f"clips/{i}.wav", "motion": f"clips/{i}.npz", "video": f"clips/{i}.mp4"}
        save_wav(out / files["audio"], clip.audio, clip.sample_rate)
        # clip 0: feet that slide (ToyDance pins them: PFC exactly 0); clip 1: stands still
        slide = 0.01 * np.sin(np.arange(len(clip.joints)) / 3.0)[:, None, None] * np.ones((1, 24, 3))
        joints = clip.joints + slide if i == 0 else np.repeat(clip.joints[:1], len(clip.joints), axis=0)
        save_motion_npz(out / files["motion"], joints, clip.fps, beat_times=clip.beat_times)
        records.append({"id": f"0000{i}", "style": clip.style, "bpm": clip.bpm, "caption": clip.caption,
                        "seconds": clip.seconds, "structure": clip.structure, "seed": seed, "files": files})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    recs = read_manifest(out)
    m = load_motion_npz(out / recs[1]["files"]["motion"])  # clip 1 stands still: PFC is 0/0
    report = toydance_report(out, progress=False)
    first, second = report["clips"]
    expected = edge_pfc(load_motion_npz(out / recs[0]["files"]["motion"])["joints"], 1 / float(m["fps"]))
    assert expected > 0.05 and first["pfc"] == pytest.approx(expected, abs=1e-4) and first["pfc_missing"] is None
    assert np.isnan(second["pfc"]) and "root acceleration is zero" in second["pfc_missing"]
    assert report["summary"]["pfc"] == pytest.approx(expected, abs=1e-4)  # the mean leaves it out ...
    assert report["summary"]["pfc_missing"] == 1  # ... and counts it
    md = report_markdown(report)
    assert f"| {recs[1]['id']} |" in md and "| missing |" in md and "PFC missing: pfc: the clamped root" in md
    write_report(out, report, preview=False)
    saved = json.loads((out / "report.json").read_text())  # strict JSON: NaN becomes null
    assert saved["clips"][1]["pfc"] is None and saved["clips"][1]["pfc_missing"] == second["pfc_missing"]
