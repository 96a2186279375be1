import os
import stat

import pytest

from mmgen.core.fileio import atomic_dir, atomic_path


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
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError
    assert (target / "a").read_text() == "1"
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask


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
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((target / "model.safetensors").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((target / "sub" / "x").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((target / "sub").stat().st_mode) == 0o777 & ~umask
