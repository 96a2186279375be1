"""The preprocessed-data format shared by `mmgen preprocess` and `mmgen toydance make`, and its reader.

    <out>/info.json          {"source": "aistpp" | "av-folder" | "loris" | "mmgen.toydance", "settings": {...}}
    <out>/manifest.jsonl     one JSON object per item (a whole sequence / file / clip), in a stable order
    <out>/skipped.jsonl      {"path", "reason"} per input that was left out (preprocess only)
    <out>/records/<id>.json  one finished item each (what makes preprocessing resumable)
    <out>/audio/<id>.wav     float32 mono at `sample_rate`
    <out>/motion/<id>.npz    `mmgen.io.export.save_motion_npz`: joints [T, J, 3] float32 + fps (+ extras)
    <out>/video/<id>.mp4     H.264 frames at `video_fps`, even H and W, no sound (the sound is the wav)

A manifest record (keys marked * are always present; ToyDance sets all of them):

    id*          str    unique, file-name safe
    files*       dict   modality -> path relative to <out>: any non-empty subset of
                        {"audio", "motion", "video"}
    seconds*     float  duration covered by every file of the item
    caption*     str    text condition ("" when unknown)
    bpm*         float | null   tempo (AIST++: from the music id; ToyDance: exact)
    style*       str    genre / style label ("" when unknown)
    structure*   list   [{"instrument", "start", "end"}] (ToyDance; [] otherwise)
    seed*        int | null
    sample_rate  int    of the wav            fps        float  of the motion npz
    video_fps    float  of the mp4            source     str    reader that made it
    skeleton     str    "smpl24" (joints in metres, y-up) or "coco17" (2-D: joints[..., :2] are
                        pixel x, y and joints[..., 2] the detector confidence)
    split        str | null    the release's split (AIST++ crossmodal train / val / test)
    quality      float  a quality score of the item (e.g. a MOS 1-5), read by QualityConditioner
                        through `mmgen cache --condition` (QA-MDT); absent when unknown

Items are whole sequences; cut training windows when reading (`ManifestDataset(seconds=...)`,
or EDGE-style overlapping windows with `mmgen.data.aistpp.clip_starts`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mmgen.core.errors import MmgenError
from mmgen.core.fileio import atomic_path

logger = logging.getLogger(__name__)

MODALITIES = ("audio", "motion", "video")
REQUIRED_KEYS = ("id", "files", "seconds", "caption", "bpm", "style", "structure", "seed")


def safe_id(text: str) -> str:
    """A file-name safe id from a relative path or name ("a/b c.mp4" -> "a__b_c")."""
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", text).replace(os.sep, "__").replace("/", "__")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "item"


def base_record(item_id: str, files: dict[str, str], seconds: float, **extra: Any) -> dict[str, Any]:
    """A record with every required key (defaults for the optional ones), plus `extra`."""
    record = {
        "id": item_id,
        "files": files,
        "seconds": float(seconds),
        "caption": "",
        "bpm": None,
        "style": "",
        "structure": [],
        "seed": None,
    }
    record.update(extra)
    return record


class ManifestWriter:
    """Resumable writing of a preprocessed folder.

    `done(id)` tells whether an item was finished by an earlier run (its record exists);
    `add(record)` marks it finished; `skip(path, reason)` reports an input; `finish()` writes
    manifest.jsonl (records in `order`) and skipped.jsonl. Settings differing from those of an
    earlier run into the same folder raise instead of mixing two kinds of items.
    """

    def __init__(self, out: str | os.PathLike, source: str, settings: dict[str, Any]) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        info = {"source": source, "settings": settings}
        info_path = self.out / "info.json"
        if info_path.is_file():
            old = json.loads(info_path.read_text())
            if old != json.loads(json.dumps(info)):
                raise MmgenError(
                    f"{self.out}: was preprocessed with other settings ({old}); use another --out or delete it"
                )
        else:
            with atomic_path(info_path) as tmp:
                tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        (self.out / "records").mkdir(exist_ok=True)
        self.skipped: list[dict[str, str]] = []
        self.order: list[str] = []

    def record_path(self, item_id: str) -> Path:
        return self.out / "records" / f"{item_id}.json"

    def done(self, item_id: str) -> bool:
        return self.record_path(item_id).is_file()

    def add(self, record: dict[str, Any]) -> None:
        missing = [k for k in REQUIRED_KEYS if k not in record]
        if missing:
            raise ValueError(f"manifest record {record.get('id')!r} lacks {missing}")
        with atomic_path(self.record_path(record["id"])) as tmp:
            tmp.write_text(json.dumps(record, sort_keys=True))

    def skip(self, path: str | os.PathLike, reason: str) -> None:
        self.skipped.append({"path": str(path), "reason": reason})
        logger.info("skipping %s: %s", path, reason)

    def finish(self) -> Path:
        lines = []
        for item_id in self.order:
            if self.done(item_id):
                lines.append(self.record_path(item_id).read_text().strip() + "\n")
        with atomic_path(self.out / "manifest.jsonl") as tmp:
            tmp.write_text("".join(lines))
        with atomic_path(self.out / "skipped.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(s, sort_keys=True) + "\n" for s in self.skipped))
        return self.out / "manifest.jsonl"


def read_manifest_records(root: str | os.PathLike, modalities: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Records of <root>/manifest.jsonl that have files for all of `modalities`; errors name file:line."""
    path = Path(root) / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no manifest (make one with `mmgen preprocess` or `mmgen toydance make`)"
        )
    bad = [m for m in modalities if m not in MODALITIES]
    if bad:
        raise ValueError(f"unknown modalities {bad}; known: {MODALITIES}")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        missing = [k for k in REQUIRED_KEYS if not isinstance(rec, dict) or k not in rec]
        if missing:
            raise ValueError(f"{path}:{n}: record lacks {missing}")
        if not isinstance(rec["files"], dict) or not rec["files"] or set(rec["files"]) - set(MODALITIES):
            raise ValueError(f"{path}:{n}: 'files' must map a subset of {MODALITIES} to paths")
        if all(m in rec["files"] for m in modalities):
            records.append(rec)
    if not records:
        raise ValueError(f"{path}: no record has files for {tuple(modalities)}")
    return records


class ManifestDataset(Dataset):
    """Items of a preprocessed folder (or a ToyDance folder), optionally cut into windows.

    Args:
        root: folder with manifest.jsonl.
        modalities: which files to read; records lacking one are left out.
        seconds: window length (None = whole items); windows hop by `stride` (default: seconds).

    Items: {"audio": float32 [S], "motion": float32 [T, J, 3], "video": uint8 [F, H, W, 3], "id",
    "start", "caption", "bpm", "style"}; S, T, F = round(seconds x rate) for every window.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        modalities: Sequence[str] = ("audio", "motion"),
        seconds: float | None = None,
        stride: float | None = None,
    ) -> None:
        self.root, self.modalities = Path(root), tuple(modalities)
        self.records = read_manifest_records(self.root, self.modalities)
        self.seconds = seconds
        self.windows: list[tuple[int, float]] = []
        for i, rec in enumerate(self.records):
            length = float(rec["seconds"])
            if seconds is None:
                self.windows.append((i, 0.0))
                continue
            hop = stride or seconds
            count = math.floor((length - seconds) / hop + 1e-6) + 1 if length >= seconds - 1e-6 else 0
            self.windows.extend((i, k * hop) for k in range(count))
        if not self.windows:
            raise ValueError(f"{self.root}: no item is at least {seconds} s long")

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index, start = self.windows[i]
        rec = self.records[index]
        for name in self.modalities:
            path = self.root / rec["files"][name]
            if not path.is_file():
                raise ValueError(f"{path}: missing (record {rec['id']!r} of {self.root / 'manifest.jsonl'} names it)")
        try:
            return self._read(rec, start)
        except (RuntimeError, OSError) as err:  # soundfile / decord name the file in their message
            raise ValueError(f"{str(err).splitlines()[0][:300]} (record {rec['id']!r} of "
                             f"{self.root / 'manifest.jsonl'})") from None

    def _read(self, rec: dict[str, Any], start: float) -> dict[str, Any]:
        from mmgen.io.export import load_motion_npz

        length = self.seconds if self.seconds is not None else float(rec["seconds"])
        item: dict[str, Any] = {k: rec[k] for k in ("id", "caption", "bpm", "style")}
        item["start"] = start
        if "audio" in self.modalities:
            import soundfile as sf

            path = self.root / rec["files"]["audio"]
            sr = sf.info(str(path)).samplerate
            audio, _ = sf.read(
                str(path), start=round(start * sr), frames=round(length * sr), dtype="float32", always_2d=True
            )
            item["audio"] = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=1)))
        if "motion" in self.modalities:
            motion = load_motion_npz(self.root / rec["files"]["motion"])
            fps = float(motion["fps"])
            first = round(start * fps)
            joints = motion["joints"][first : first + round(length * fps)]
            item["motion"] = torch.from_numpy(np.ascontiguousarray(joints, dtype=np.float32))
            item["motion_fps"] = fps  # what frame-rate-aware conditioners read (pose maps)
        if "video" in self.modalities:
            import decord

            reader = decord.VideoReader(str(self.root / rec["files"]["video"]), num_threads=1)
            fps = float(rec.get("video_fps") or reader.get_avg_fps())
            first = round(start * fps)
            count = min(round(length * fps), len(reader) - first)
            item["video"] = torch.from_numpy(reader.get_batch(list(range(first, first + count))).asnumpy())
            item["video_fps"] = fps  # what frame-rate-aware conditioners read (sync features)
        return item
