"""`--workers N` for `mmgen preprocess` and `mmgen cache`: same bytes out as one worker, items in order."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from test_aistpp_pose2d import write_loris_set
from test_av_folder import make_folder
from test_pipeline import make_pipeline

from mmgen.cli import main
from mmgen.core.parallel import ordered_map
from mmgen.data.toydance.io import make_dataset


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _slow_square(k: int) -> tuple[int, int]:
    time.sleep(0.05 * (k % 3 == 0))  # every third item is slow: workers finish out of order
    return k, k * k


def test_ordered_map_keeps_the_item_order():
    got = list(ordered_map(_slow_square, list(range(12)), workers=2))
    assert got == [(k, k * k) for k in range(12)]
    assert list(ordered_map(_slow_square, [5], workers=2)) == [(5, 25)]


def _fails_on_three(k: int) -> int:
    if k == 3:
        raise ValueError("item 3 is bad")
    return k


def test_a_worker_error_reaches_the_caller():
    with pytest.raises(ValueError, match="item 3 is bad"):
        list(ordered_map(_fails_on_three, list(range(6)), workers=2))


@pytest.mark.parametrize("source", ["av-folder"])  # loris: same loop, but 40 s of librosa imports
def test_preprocess_with_two_workers_writes_the_same_bytes(tmp_path, source, capsys):
    root = tmp_path / "in"
    write_loris_set(root) if source == "loris" else make_folder(root)
    outs = {}
    for workers in (1, 2):
        outs[workers] = tmp_path / f"out{workers}"
        argv = ["preprocess", source, "--root", str(root), "--out", str(outs[workers]), "--no-progress"]
        assert main([*argv, "--workers", str(workers)]) == 0
    one, two = files_of(outs[1]), files_of(outs[2])
    assert sorted(one) == sorted(two) and len(one) > 4
    for name in one:
        assert one[name] == two[name], name
    assert (outs[1] / "skipped.jsonl").read_text()  # the bad inputs were skipped alike, in order


def test_cache_with_two_workers_writes_the_same_bytes(tmp_path):
    pipe = tmp_path / "pipe"
    make_pipeline(video=True).save_pretrained(pipe)
    data = make_dataset(tmp_path / "toydance", clips=2, seconds=4.0, seed=0, progress=False)
    outs = {}
    for workers in (1, 2):
        outs[workers] = tmp_path / f"cache{workers}"
        argv = ["cache", "--data", str(data), "--pipeline", str(pipe), "--out", str(outs[workers])]
        argv += ["--seconds", "2", "--shard-size", "3", "--no-progress", "--workers", str(workers)]
        assert main(argv) == 0
    one, two = files_of(outs[1]), files_of(outs[2])
    assert sorted(one) == sorted(two) and "shard-00001.safetensors" in one
    for name in one:
        assert one[name] == two[name], name


def _beats(seed: int) -> np.ndarray:
    import librosa

    sr = 22050
    t = np.arange(3 * sr) / sr
    clicks = (np.sin(2 * np.pi * 2.0 * t) > 0.995).astype(np.float32)  # 120 BPM clicks
    y = clicks + 0.01 * np.random.default_rng(seed).standard_normal(t.size).astype(np.float32)
    return librosa.beat.beat_track(y=y, sr=sr, units="time")[1]


def test_librosa_beat_tracking_in_workers_matches_one_process():
    import librosa  # noqa: F401  (imported in the parent: its numba cache locations are fixed here)

    serial = [_beats(s) for s in range(4)]
    parallel = list(ordered_map(_beats, list(range(4)), workers=2))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("command", ["preprocess", "cache"])
def test_bad_worker_counts_exit_2(tmp_path, command, capsys):
    (tmp_path / "in").mkdir()
    if command == "preprocess":
        argv = ["preprocess", "loris", "--root", str(tmp_path / "in"), "--out", str(tmp_path / "o")]
    else:
        argv = ["cache", "--data", str(tmp_path / "in"), "--pipeline", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*argv, "--workers", "0"]) == 2
    assert "--workers must be an integer in [1, 256], got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
