"""The app's own temp folder: one sub-folder per request, the oldest removed past a limit, all on close.

    <tmp>/mmgen-app-XXXX/            created by Workspace(); removed by close()
        gradio/                      Gradio's upload / served-file cache (GRADIO_TEMP_DIR, set by `mmgen app`)
        run-000001/                  one Generate press: mmgen_<task>.wav / .npz / .mp4 / _mel.png
        run-000002/ ...              only the newest `keep` runs stay

The app writes nowhere else: uploads are read where Gradio put them, never written beside.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path


class Workspace:
    """A folder the app creates and owns; `new_run()` hands out per-request folders.

    Args:
        keep: newest run folders kept; older ones are removed when a new one is made (Gradio has
            copied what it serves into its own cache by then, so pages already shown keep working).
        parent: where the folder is made (default: the system temp folder).
    """

    def __init__(self, keep: int = 16, parent: str | os.PathLike | None = None) -> None:
        if keep < 1:
            raise ValueError(f"Workspace: keep must be >= 1, got {keep}")
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="mmgen-app-", dir=parent))
        self._count = 0
        self._lock = threading.Lock()

    def new_run(self) -> Path:
        """A fresh empty folder for one request; the oldest run folders beyond `keep` are removed."""
        with self._lock:
            if not self.root.is_dir():
                raise RuntimeError(f"{self.root}: the app's workspace was closed")
            self._count += 1
            path = self.root / f"run-{self._count:06d}"
            path.mkdir()
            runs = sorted(p for p in self.root.iterdir() if p.name.startswith("run-"))
            for old in runs[: max(0, len(runs) - self.keep)]:
                shutil.rmtree(old, ignore_errors=True)
            return path

    def close(self) -> None:
        """Remove the whole folder (it holds nothing but what the app wrote)."""
        shutil.rmtree(self.root, ignore_errors=True)
