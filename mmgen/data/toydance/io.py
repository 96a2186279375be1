"""ToyDance on disk (make_dataset / ToyDanceDataset) and in memory (InMemoryToyDance).

Layout written by `make_dataset` (atomically: a temporary folder renamed into place):

    <out>/info.json                 {"source": "mmgen.toydance", "settings": {version, clips, seconds, seed}}
    <out>/manifest.jsonl            one JSON object per clip: id, style, bpm, caption, structure,
                                    seconds, seed, sample_rate, fps, video_fps, files
    <out>/clips/<id>.wav            float32 mono, 22,050 Hz
    <out>/clips/<id>.npz            joints [T, 24, 3], fps, beat_times, bpm, seed, style, caption
    <out>/clips/<id>.mp4            stick figure, H.264 yuv420p, 15 fps, with the music as AAC

Clip i of a set made with seed s uses `clip_plan(s, i)` (its own seed and a style cycling over
STYLES), so `InMemoryToyDance(n, seconds, s)` yields the same clips as `make_dataset(.., n, seconds, s)`.
Records carry every key of the shared preprocessed-data schema (`mmgen.data.manifest`), so
`ManifestDataset` reads a ToyDance folder too.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mmgen.core.fileio import atomic_dir, atomic_path
from mmgen.data.manifest import read_manifest_records
from mmgen.data.toydance import MAX_SECONDS, STYLES, ToyDanceClip, generate_clip
from mmgen.io.export import load_motion_npz, save_motion_npz, save_video, save_wav

logger = logging.getLogger(__name__)

SOURCE = "mmgen.toydance"
GENERATOR_VERSION = 1
MODALITIES = ("audio", "motion", "video")


def clip_plan(seed: int, index: int) -> tuple[int, str]:
    """(clip seed, style) of clip `index` of a set made with `seed`; styles cycle so sets are balanced."""
    clip_seed = int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])
    return clip_seed, STYLES[(int(seed) + int(index)) % len(STYLES)]


def _check_make_args(clips: int, seconds: float, seed: int) -> None:
    if isinstance(clips, bool) or not isinstance(clips, (int, np.integer)) or clips < 1:
        raise ValueError(f"ToyDance clips must be a positive integer, got {clips!r}")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise ValueError(f"ToyDance seconds must be in (0, {MAX_SECONDS:g}], got {seconds!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"ToyDance seed must be a non-negative integer, got {seed!r}")


def write_clip(folder: Path, clip_id: str, clip: ToyDanceClip) -> dict[str, Any]:
    """Write one clip's wav / npz / mp4 into `folder`/clips and return its manifest record."""
    files = {
        "audio": f"clips/{clip_id}.wav",
        "motion": f"clips/{clip_id}.npz",
        "video": f"clips/{clip_id}.mp4",
    }
    save_wav(folder / files["audio"], clip.audio, clip.sample_rate)
    save_motion_npz(
        folder / files["motion"],
        clip.joints,
        clip.fps,
        beat_times=clip.beat_times,
        bpm=clip.bpm,
        seed=clip.seed,
        style=clip.style,
        caption=clip.caption,
    )
    if clip.video is None:
        raise ValueError(f"clip {clip_id}: no video rendered (generate with render_video=True)")
    save_video(folder / files["video"], clip.video, clip.video_fps, audio=clip.audio, sr=clip.sample_rate)
    return {
        "id": clip_id,
        "style": clip.style,
        "bpm": clip.bpm,
        "caption": clip.caption,
        "structure": clip.structure,
        "seconds": clip.seconds,
        "seed": clip.seed,
        "sample_rate": clip.sample_rate,
        "fps": clip.fps,
        "video_fps": clip.video_fps,
        "source": SOURCE,
        "skeleton": "smpl24",
        "key": clip.key,
        "files": files,
    }


def make_dataset(
    out_dir: str | os.PathLike,
    clips: int,
    seconds: float,
    seed: int,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Generate `clips` ToyDance clips of `seconds` into `out_dir` (see the module docstring).

    Deterministic: the same arguments reproduce byte-identical files. `out_dir` must be new or
    empty, or (with `overwrite`) a ToyDance set mmgen wrote (`mmgen.core.fileio`).
    """
    from tqdm.auto import tqdm

    _check_make_args(clips, seconds, seed)
    out = Path(out_dir)
    width = max(5, len(str(clips - 1)))
    with atomic_dir(out, "ToyDance set", overwrite=overwrite, arg="--out") as tmp:
        records = []
        for i in tqdm(range(clips), desc="toydance", unit="clip", disable=not progress):
            clip_seed, style = clip_plan(seed, i)
            clip = generate_clip(clip_seed, seconds, style=style)
            records.append(write_clip(tmp, f"{i:0{width}d}", clip))
        with atomic_path(tmp / "manifest.jsonl") as path:
            path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        settings = {"version": GENERATOR_VERSION, "clips": clips, "seconds": seconds, "seed": seed}
        info = {"source": SOURCE, "settings": settings}  # the schema of mmgen.data.manifest
        with atomic_path(tmp / "info.json") as path:
            path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    logger.info("wrote %d ToyDance clips to %s", clips, out)
    return out


def read_manifest(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Parse <root>/manifest.jsonl (the shared `mmgen.data.manifest` format with every modality
    present); errors name the file and line."""
    return read_manifest_records(root, MODALITIES)


def _check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    mods = tuple(modalities)
    bad = [m for m in mods if m not in MODALITIES]
    if bad or not mods:
        raise ValueError(f"ToyDance modalities must be a non-empty subset of {MODALITIES}, got {mods}")
    return mods


def _item(meta: dict[str, Any], start: float, seconds: float, beat_times: np.ndarray) -> dict[str, Any]:
    """The non-media part of an item; beats shifted to the window start."""
    beats = beat_times[(beat_times >= start) & (beat_times < start + seconds)] - start
    return {
        "caption": meta["caption"],
        "style": meta["style"],
        "bpm": float(meta["bpm"]),
        "beat_times": torch.from_numpy(np.ascontiguousarray(beats, dtype=np.float64)),
        "id": meta["id"],
        "start": float(start),
        "structure": meta["structure"],
    }


def _windows(seconds_per_clip: Sequence[float], seconds: float | None, what: str) -> list[tuple[int, float]]:
    """(clip index, start second) of every item: whole clips, or non-overlapping windows."""
    if seconds is None:
        return [(i, 0.0) for i in range(len(seconds_per_clip))]
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{what}: seconds must be positive, got {seconds!r}")
    out = []
    for i, length in enumerate(seconds_per_clip):
        count = int(math.floor(length / seconds + 1e-6))
        if count < 1:
            raise ValueError(
                f"{what}: clip {i} lasts {length:g} s, shorter than the requested window of {seconds:g} s"
            )
        out.extend((i, w * seconds) for w in range(count))
    return out


class ToyDanceDataset(Dataset):
    """A folder written by `make_dataset`, read with soundfile / numpy / decord (like real data).

    Items: {"audio": float32 [S], "motion": float32 [T, 24, 3], "video": uint8 [F, H, W, 3],
    "caption", "style", "bpm", "beat_times": float64 [K] (seconds from the item start), "id",
    "start" (seconds into the clip), "structure"}. With `seconds`, every clip is cut into
    non-overlapping windows of that length (S, T, F = round(seconds * rate)).
    """

    def __init__(
        self, root: str | os.PathLike, modalities: Sequence[str] = MODALITIES, seconds: float | None = None
    ) -> None:
        self.root = Path(root)
        self.modalities = _check_modalities(modalities)
        self.records = read_manifest(self.root)
        for rec in self.records:
            for m in self.modalities + ("motion",):
                path = self.root / rec["files"][m]
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: {m} file of clip {rec['id']} is missing")
        self.items = _windows(
            [float(r["seconds"]) for r in self.records], seconds, f"ToyDanceDataset({self.root})"
        )
        self.seconds = seconds

    def __len__(self) -> int:
        return len(self.items)

    def _read_audio(self, rec: dict[str, Any], start: float, length: float) -> torch.Tensor:
        import soundfile as sf

        path = self.root / rec["files"]["audio"]
        try:
            info = sf.info(str(path))
            a = int(round(start * info.samplerate))
            audio, _ = sf.read(
                str(path),
                start=a,
                frames=int(round(length * info.samplerate)),
                dtype="float32",
                always_2d=True,
            )
        except (RuntimeError, sf.LibsndfileError) as err:
            raise ValueError(f"{path}: unreadable audio ({err})") from None
        return torch.from_numpy(np.ascontiguousarray(audio.mean(axis=1)))

    def _read_video(self, rec: dict[str, Any], start: float, length: float) -> torch.Tensor:
        import decord

        path = self.root / rec["files"]["video"]
        fps = float(rec.get("video_fps", 15.0))
        try:
            reader = decord.VideoReader(str(path), num_threads=1)
            first = int(round(start * fps))
            count = min(int(round(length * fps)), len(reader) - first)
            frames = reader.get_batch(list(range(first, first + count))).asnumpy()
        except (decord.DECORDError, RuntimeError) as err:  # decord raises RuntimeError on open
            raise ValueError(f"{path}: unreadable video ({err})") from None
        return torch.from_numpy(frames)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index, start = self.items[i]
        rec = self.records[index]
        length = self.seconds if self.seconds is not None else float(rec["seconds"])
        motion = load_motion_npz(self.root / rec["files"]["motion"])
        item = _item(rec, start, length, np.asarray(motion["beat_times"], dtype=np.float64))
        if "audio" in self.modalities:
            item["audio"] = self._read_audio(rec, start, length)
        if "motion" in self.modalities:
            fps = float(motion["fps"])
            first = int(round(start * fps))
            joints = motion["joints"][first : first + int(round(length * fps))]
            item["motion"] = torch.from_numpy(np.ascontiguousarray(joints, dtype=np.float32))
        if "video" in self.modalities:
            item["video"] = self._read_video(rec, start, length)
        return item


class InMemoryToyDance(Dataset):
    """ToyDance clips generated on first access from seeds (no files); same items as a made folder.

    Clip i is `generate_clip(*clip_plan(seed, i))`; items are cached (pass cache=False to regenerate).
    """

    def __init__(
        self,
        num_clips: int,
        seconds: float = 4.0,
        seed: int = 0,
        modalities: Sequence[str] = MODALITIES,
        video_size: int = 64,
        cache: bool = True,
    ) -> None:
        _check_make_args(num_clips, seconds, seed)
        self.num_clips, self.seconds, self.seed = int(num_clips), float(seconds), int(seed)
        self.modalities = _check_modalities(modalities)
        self.video_size = video_size
        self._cache: dict[int, dict[str, Any]] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_clips

    def clip(self, i: int) -> ToyDanceClip:
        if not 0 <= i < self.num_clips:
            raise IndexError(f"InMemoryToyDance index {i} out of range [0, {self.num_clips})")
        clip_seed, style = clip_plan(self.seed, i)
        return generate_clip(
            clip_seed,
            self.seconds,
            style=style,
            render_video="video" in self.modalities,
            video_size=self.video_size,
        )

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        clip = self.clip(i)
        meta = {
            "caption": clip.caption,
            "style": clip.style,
            "bpm": clip.bpm,
            "id": f"{i:05d}",
            "structure": clip.structure,
        }
        item = _item(meta, 0.0, self.seconds, clip.beat_times)
        if "audio" in self.modalities:
            item["audio"] = torch.from_numpy(clip.audio)
        if "motion" in self.modalities:
            item["motion"] = torch.from_numpy(clip.joints)
        if "video" in self.modalities:
            item["video"] = torch.from_numpy(clip.video)
        if self._cache is not None:
            self._cache[i] = item
        return item


def collate_toydance(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack media tensors ([B, ...]; equal lengths needed, i.e. fixed `seconds`), keep the rest as lists."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        if key in MODALITIES:
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) != 1:
                raise ValueError(
                    f"collate_toydance: {key} shapes differ {sorted(shapes)}; use a fixed `seconds`"
                )
            out[key] = torch.stack(values)
        elif key == "bpm":
            out[key] = torch.tensor(values, dtype=torch.float32)
        else:
            out[key] = values
    return out
