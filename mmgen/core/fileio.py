"""Writing outputs so that mmgen never loses data: nothing half-written, nothing it did not write replaced.

Three rules hold for every writer (the commands, `save_pretrained`, `Generation.save`, reports):

1. An output folder must be new, empty, or mmgen's own: a folder mmgen made holds a marker file
   (`.mmgen-output.json`: its kind and the files mmgen wrote there). Replacing an own folder needs
   `overwrite=True` (`--overwrite`), the same kind, and no file in it that mmgen did not write.
   An output equal to, inside, or holding an input is refused.
2. A set of outputs is all or nothing: it is written under a temporary name in the same folder
   (so the final rename cannot cross file systems) and renamed into place only when complete.
3. Temporary names carry the writer's process id (`.<name>.mmgen-tmp-<pid>-<random>`); a failure
   removes them, and the next writer into the same place removes those of processes that are gone
   (after a kill -9). Names mmgen did not make are never touched.

    atomic_path(file)          one file                      (rename over the target)
    atomic_dir(folder, kind)   a whole folder                (the old own folder is swapped out)
    atomic_files(folder)       files added to a folder       (each name new, or mmgen's with overwrite)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mmgen.core.errors import MmgenError

MARKER = ".mmgen-output.json"
_TMP, _OLD, _STAGE = "mmgen-tmp", "mmgen-old", "mmgen-stage"
_PID = re.compile(r"-(\d+)-")
OVERWRITE_HINT = "pass --overwrite (overwrite=True) to replace it"


# ----------------------------------------------------------------------------- small helpers
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _chmod_default(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the result the mode a plain open()/mkdir() would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temps(parent: Path, prefix: str) -> list[Path]:
    """Remove mmgen temporaries `<prefix>mmgen-{tmp,old,stage}-<pid>-...` in `parent` whose
    process is gone (left by a crash or kill -9). Returns what was removed."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    tags = tuple(f"{prefix}{tag}-" for tag in (_TMP, _OLD, _STAGE))
    for entry in parent.iterdir():
        if not entry.name.startswith(tags):
            continue
        match = _PID.search(entry.name[len(prefix) :])
        if match and not _alive(int(match.group(1))):
            _remove(entry)
            removed.append(entry)
    return removed


def _temp_name(prefix: str, tag: str) -> str:
    return f"{prefix}{tag}-{os.getpid()}-"


# ----------------------------------------------------------------------------- ownership
def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The marker mmgen left in `folder` ({"kind": ..., "files": [...]}), or None."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "mmgen" or not isinstance(data.get("files"), list):
        return None
    return data


def _write_marker(folder: Path, kind: str | None, files: Iterable[str]) -> None:
    data = {"written_by": "mmgen", "kind": kind, "files": sorted(set(files))}
    with atomic_path(folder / MARKER) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


def mark_own(folder: str | os.PathLike, kind: str) -> None:
    """Mark a folder mmgen fills over time (a resumable `mmgen preprocess`) as its own `kind`."""
    marker = read_marker(folder)
    _write_marker(Path(folder), kind, marker["files"] if marker else [])


def _files_under(folder: Path) -> list[str]:
    """Relative paths of the files (and symlinks) under `folder`, the marker excepted."""
    out = []
    for p in folder.rglob("*"):
        if p.name != MARKER and (p.is_file() or p.is_symlink()):
            out.append(p.relative_to(folder).as_posix())
    return sorted(out)


def _foreign_files(folder: Path, marker: dict[str, Any]) -> list[str]:
    """Files under `folder` that neither its marker nor the marker of a sub-folder (an export
    written into it later, e.g. a training stage's into a pipeline folder) lists."""
    own = set(marker["files"])
    for sub in folder.rglob(MARKER):
        inner = read_marker(sub.parent)
        if inner is not None and sub.parent != folder:
            rel = sub.parent.relative_to(folder).as_posix()
            own |= {f"{rel}/{f}" for f in inner["files"]}
    return sorted(set(_files_under(folder)) - own)


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def check_apart(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], arg: str = "--out") -> None:
    """Refuse an output that is an input, lies inside an input folder, or holds an input."""
    o = _resolved(out)
    for given in inputs:
        if given is None:
            continue
        i = _resolved(given)
        if o == i:
            raise MmgenError(f"{arg} {out}: is the input {given}; write the output somewhere else")
        if i in o.parents:
            raise MmgenError(f"{arg} {out}: lies inside the input {given}; write the output somewhere else")
        if o in i.parents:
            raise MmgenError(f"{arg} {out}: holds the input {given}; write the output somewhere else")


def _check_parent(path: Path, arg: str) -> None:
    """The nearest existing ancestor must be a writable folder (so the error comes before any work)."""
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise MmgenError(f"{arg} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(f"{arg} {path}: cannot write into {parent} (permission denied)")
            return


def check_output_dir(
    path: str | os.PathLike,
    kind: str,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
    arg: str = "--out",
    hint: str = OVERWRITE_HINT,
) -> Path:
    """Refuse a folder mmgen may not (re)place with a `kind` output; call it before any work.

    Allowed: a new path, an empty folder, or (with `overwrite`) a folder mmgen made as the same
    kind holding only files mmgen wrote there.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise MmgenError(f"{arg} {p}: is a file, not a folder")
    check_apart(p, inputs, arg)
    _check_parent(p, arg)
    remove_stale_temps(p.parent, f".{p.name}.")
    if not p.is_dir():
        return p
    remove_stale_temps(p, ".")
    entries = [e for e in p.iterdir()]
    if not entries:
        return p
    marker = read_marker(p)
    if marker is None or marker.get("kind") is None:
        raise MmgenError(f"{arg} {p}: is not empty and was not written by mmgen; give a new or empty folder")
    if marker["kind"] != kind:
        raise MmgenError(f"{arg} {p}: holds a {marker['kind']} written by mmgen, not a {kind}; give another folder")
    if not overwrite:
        raise MmgenError(f"{arg} {p}: holds an earlier {kind}; {hint}")
    foreign = _foreign_files(p, marker)
    if foreign:
        raise MmgenError(
            f"{arg} {p}: holds {len(foreign)} file(s) mmgen did not write (e.g. {foreign[0]}); "
            "move them out or give another folder"
        )
    return p


# ----------------------------------------------------------------------------- writers
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the suffix of `path`, so writers that pick a format from the
    extension (soundfile, PyAV, matplotlib) still work. This is the low-level primitive: it
    replaces `path`; callers writing where a user's file may be check first (`atomic_files`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.stem}."
    remove_stale_temps(path.parent, prefix)
    fd, tmp = tempfile.mkstemp(prefix=_temp_name(prefix, _TMP), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _chmod_default(tmp_path, directory=False)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike,
    kind: str = "folder",
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
    arg: str = "output folder",
) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; it becomes `path` only if the block succeeds.

    `path` must pass `check_output_dir(path, kind, overwrite=..., inputs=...)` (checked on entry
    and again before the swap); the result holds a marker listing every file written.
    """
    path = Path(path)
    inputs = list(inputs)
    check_output_dir(path, kind, overwrite=overwrite, inputs=inputs, arg=arg)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    tmp = Path(tempfile.mkdtemp(prefix=_temp_name(prefix, _TMP), dir=path.parent))
    try:
        yield tmp
        _write_marker(tmp, kind, _files_under(tmp))
        for item in (tmp, *tmp.rglob("*")):  # writers such as safetensors create 0600 files
            if not item.is_symlink():
                _chmod_default(item, directory=item.is_dir())
        check_output_dir(path, kind, overwrite=overwrite, inputs=inputs, arg=arg)  # nothing new meanwhile
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_name(prefix, _OLD), dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def check_output_files(
    directory: str | os.PathLike,
    names: Iterable[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
    arg: str = "--out",
) -> Path:
    """Refuse to write `names` into `directory` where one exists that mmgen did not write there,
    or exists without `overwrite`, or is an input."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise MmgenError(f"{arg} {d}: is a file, not a folder")
    _check_parent(d, arg)
    names = list(names)
    for name in names:
        check_apart(d / name, inputs, arg)
    marker = read_marker(d) if d.is_dir() else None
    own = set(marker["files"]) if marker else set()
    for name in names:
        target = d / name
        if not (target.exists() or target.is_symlink()):
            continue
        if target.is_dir() or name not in own:
            raise MmgenError(f"{arg} {d}: {name} is already there and was not written by mmgen")
        if not overwrite:
            raise MmgenError(f"{arg} {d}: {name} is already there (an earlier mmgen output); {OVERWRITE_HINT}")
    return d


@contextlib.contextmanager
def atomic_files(
    directory: str | os.PathLike,
    kind: str = "files",
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
    arg: str = "--out",
) -> Iterator[Path]:
    """Yield a staging folder; what the block writes there moves into `directory` only if it succeeds.

    Every written name must be new in `directory`, or (with `overwrite`) a file mmgen wrote there
    earlier; the checks run on all names before the first one moves. The folder's marker records
    the names, so later runs know them as mmgen's. A `directory` this call created is removed
    again on failure.
    """
    d = Path(directory)
    inputs = list(inputs)
    check_output_files(d, (), overwrite=overwrite, inputs=inputs, arg=arg)
    created = not d.exists()
    d.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(d, ".")
    stage = Path(tempfile.mkdtemp(prefix=_temp_name(".", _STAGE), dir=d))
    try:
        yield stage
        names = _files_under(stage)
        check_output_files(d, names, overwrite=overwrite, inputs=inputs, arg=arg)
        marker = read_marker(d)
        if marker is None:
            marker = {"kind": kind if created or not any(e != stage for e in d.iterdir()) else None, "files": []}
        _write_marker(d, marker.get("kind"), [*marker["files"], *names])
        for name in names:
            src = stage / name
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            if not src.is_symlink():
                _chmod_default(src, directory=False)
            os.replace(src, d / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and d.is_dir() and not any(e.name != MARKER for e in d.iterdir()):
            shutil.rmtree(d, ignore_errors=True)
