"""Where a pipeline folder is: a local folder, the shipped ToyDance checkpoint, or a Hugging Face Hub id.

    locate("runs/my_pipe")       a local folder (always wins when it exists)
    locate("toydance")           the shipped checkpoint (`toydance_dir`); "toydance_lm": its LM baseline
    locate("user/mmgen-dance")   huggingface_hub.snapshot_download: the local cache first; with
                                 HF_HUB_OFFLINE=1 only the cache (no network at all)

The ToyDance checkpoint is package data in a wheel (`mmgen/checkpoints/toydance`, copied there
by setup.py's build step from the repository's `checkpoints/toydance`) and is found in a source
checkout or editable install at `<repository>/checkpoints/toydance`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

TOYDANCE = "toydance"
SHIPPED = (TOYDANCE, "toydance_lm")  # the DiT pipeline and the codebook-LM baseline on it
_PACKAGE = Path(__file__).resolve().parents[1]  # .../mmgen
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")


def shipped_dir(name: str) -> Path:
    """A shipped pipeline (`SHIPPED`): package data (installed wheel), else the checkout's folder.

    Returns the checkout path even when it is missing, so that errors name where it was looked for."""
    packaged = _PACKAGE / "checkpoints" / name
    if (packaged / "pipeline.yaml").is_file():
        return packaged
    return _PACKAGE.parent / "checkpoints" / name


def toydance_dir() -> Path:
    """The shipped ToyDance pipeline (`shipped_dir("toydance")`)."""
    return shipped_dir(TOYDANCE)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in ("1", "ON", "YES", "TRUE")
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def locate(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """The local folder of a pipeline given as a folder, "toydance" or a hub id "owner/name".

    Anything else comes back as the path it names, for the loader to say what is missing there."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    text = str(name_or_path)
    if text in SHIPPED:
        found = shipped_dir(text)
        if not (found / "pipeline.yaml").is_file():
            raise FileNotFoundError(f"{found}: the {text} checkpoint is not there (neither installed nor checked out)")
        return found
    if not _HUB_ID.match(text) or path.exists():
        return path
    return _download(text, revision, cache_dir)


def _download(repo_id: str, revision: str | None, cache_dir: str | os.PathLike | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise FileNotFoundError(
            f"{repo_id}: not a local folder, and huggingface_hub (pip install huggingface_hub) is not installed"
        ) from None
    offline = hub_offline()
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=offline,
        )
    except LocalEntryNotFoundError:
        where = "offline (HF_HUB_OFFLINE=1) and" if offline else "the Hub cannot be reached and it is"
        raise FileNotFoundError(
            f"{repo_id}: not a local folder; {where} not in the Hugging Face cache"
            f"{f' {cache_dir}' if cache_dir else ''}"
        ) from None
    except HfHubHTTPError as err:
        raise FileNotFoundError(f"{repo_id}: not a local folder, and the Hub refused it ({str(err).splitlines()[0]})") from None
    return Path(folder)
