"""mmgen.core.fileio: nothing half-written, nothing mmgen did not write is replaced, temporaries cleaned."""

import json
import os
import signal
import stat
import subprocess
import sys

import pytest

from mmgen.core.errors import MmgenError
from mmgen.core.fileio import (
    MARKER,
    atomic_dir,
    atomic_files,
    atomic_path,
    check_output_dir,
    read_marker,
)


def _mode(kind: str) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if kind == "dir" else 0o666) & ~umask


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_path_keeps_nothing_on_failure_and_has_normal_mode(tmp_path):
    target = tmp_path / "out.wav"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.suffix == ".wav"
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    assert stat.S_IMODE(target.stat().st_mode) == _mode("file")


def test_atomic_dir_replaces_its_own_folder_only_on_success_and_with_overwrite(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target, "model") as tmp:
        (tmp / "a").write_text("1")
    assert read_marker(target) == {"written_by": "mmgen", "kind": "model", "files": ["a"]}
    with pytest.raises(MmgenError, match=r"ckpt: holds an earlier model; pass --overwrite"), atomic_dir(target, "model"):
        pass
    with pytest.raises(RuntimeError), atomic_dir(target, "model", overwrite=True) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError
    assert (target / "a").read_text() == "1"
    with atomic_dir(target, "model", overwrite=True) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporaries left
    assert stat.S_IMODE(target.stat().st_mode) == _mode("dir")


def test_a_folder_mmgen_did_not_write_is_never_replaced(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(MmgenError, match="not empty and was not written by mmgen"), atomic_dir(
            user, "model", overwrite=overwrite
        ):
            pass
    assert [p.name for p in user.iterdir()] == ["thesis.tex"]
    own = tmp_path / "own"
    with atomic_dir(own, "model") as tmp:
        (tmp / "w").write_text("1")
    (own / "notes.txt").write_text("added by the user later")
    with pytest.raises(MmgenError, match=r"holds 1 file\(s\) mmgen did not write \(e.g. notes.txt\)"):
        check_output_dir(own, "model", overwrite=True)
    with pytest.raises(MmgenError, match="holds a model written by mmgen, not a latent cache"):
        check_output_dir(tmp_path / "own", "latent cache", overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MmgenError, match="file: is a file, not a folder"):
        check_output_dir(tmp_path / "file", "model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_dir(empty, "model") as tmp:  # an empty folder is fine
        (tmp / "w").write_text("1")
    assert (empty / "w").read_text() == "1"


def test_outputs_may_not_be_inside_hold_or_equal_an_input(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for out, word in ((data, "is the input"), (data / "cache", "lies inside the input"), (tmp_path, "holds the input")):
        with pytest.raises(MmgenError, match=word):
            check_output_dir(out, "latent cache", inputs=[data], arg="--out")


def test_atomic_files_adds_a_set_of_files_or_none(tmp_path):
    out = tmp_path / "gen"
    with atomic_files(out, "generation") as tmp:
        (tmp / "a.wav").write_text("1")
        (tmp / "a.npz").write_text("1")
    assert read_marker(out)["files"] == ["a.npz", "a.wav"] and read_marker(out)["kind"] == "generation"
    already = r"a.wav is already there \(an earlier mmgen output\); pass --overwrite"
    with pytest.raises(MmgenError, match=already), atomic_files(out) as tmp:
        (tmp / "b.wav").write_text("2")
        (tmp / "a.wav").write_text("2")
    assert not (out / "b.wav").exists()  # all or nothing: b.wav did not move in either
    with atomic_files(out, overwrite=True) as tmp:
        (tmp / "a.wav").write_text("3")
    assert (out / "a.wav").read_text() == "3"
    (out / "mine.wav").write_text("user")
    foreign = "mine.wav is already there and was not written by mmgen"
    with pytest.raises(MmgenError, match=foreign), atomic_files(out, overwrite=True) as tmp:
        (tmp / "mine.wav").write_text("x")
    assert (out / "mine.wav").read_text() == "user"
    with pytest.raises(RuntimeError), atomic_files(tmp_path / "new") as tmp:
        (tmp / "x.wav").write_text("half")
        raise RuntimeError
    assert not (tmp_path / "new").exists()  # a folder this call created goes again
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "a.wav", "a.npz", "mine.wav"])


def test_temporaries_of_dead_processes_are_removed_on_the_next_start(tmp_path):
    pid = dead_pid()
    stale = [tmp_path / f".ckpt.mmgen-tmp-{pid}-abc", tmp_path / f".ckpt.mmgen-old-{pid}-def"]
    for s in stale:
        s.mkdir()
    live = tmp_path / f".ckpt.mmgen-tmp-{os.getppid()}-ghi"  # a process that is still running
    live.mkdir()
    foreign = tmp_path / ".ckpt.abcdefgh"  # not an mmgen name: left alone
    foreign.mkdir()
    with atomic_dir(tmp_path / "ckpt", "model") as tmp:
        (tmp / "a").write_text("1")
    assert not any(s.exists() for s in stale) and live.exists() and foreign.exists()


def test_a_killed_writer_leaves_a_temporary_that_the_next_writer_removes(tmp_path):
    """A real SIGKILL in the middle of atomic_dir: the target is untouched, the rerun cleans up."""
    script = (
        "import os, signal, sys\n"
        "from mmgen.core.fileio import atomic_dir\n"
        "with atomic_dir(sys.argv[1], 'model', overwrite=True) as tmp:\n"
        "    (tmp / 'a').write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    target = tmp_path / "ckpt"
    with atomic_dir(target, "model") as tmp:
        (tmp / "a").write_text("whole")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(target)], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".ckpt.mmgen-tmp-")]
    assert len(leftovers) == 1 and (target / "a").read_text() == "whole"
    with atomic_dir(target, "model", overwrite=True) as tmp:
        (tmp / "a").write_text("again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert json.loads((target / MARKER).read_text())["files"] == ["a"]


def test_atomic_dir_gives_files_written_inside_the_normal_mode(tmp_path):
    """safetensors creates its files 0600: a saved checkpoint would be unreadable to other users."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp / "model.safetensors"))
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x").write_text("1")
        os.chmod(tmp / "sub" / "x", 0o600)
    assert stat.S_IMODE((target / "model.safetensors").stat().st_mode) == _mode("file")
    assert stat.S_IMODE((target / "sub" / "x").stat().st_mode) == _mode("file")
    assert stat.S_IMODE((target / "sub").stat().st_mode) == _mode("dir")
