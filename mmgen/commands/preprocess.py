"""`mmgen preprocess aistpp|av-folder|loris --root ... --out ...`: real data -> manifest + features.

Writes the folder format of `mmgen.data.manifest` (manifest.jsonl, audio/*.wav, motion/*.npz,
video/*.mp4) that the DataModules read. Resumable: an item whose record exists is not redone, so
an interrupted run continues where it stopped. Inputs that cannot be used are reported (path and
reason) in skipped.jsonl and in the summary printed at the end.

    mmgen preprocess aistpp --root aist_plusplus_final --music-dir music --smpl-dir smpl --out data/aist
    mmgen preprocess av-folder --root my_videos --out data/videos --fps 15 --size 64 64 --sample-rate 16000
    mmgen preprocess loris --root LORIS/dance --seconds 25 --out data/loris_dance
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mmgen.core.errors import MmgenError
from mmgen.core.fileio import MARKER, check_apart, mark_own, read_marker
from mmgen.data.manifest import ManifestWriter, base_record, safe_id

ITEM_ERRORS = (ValueError, FileNotFoundError, MmgenError, OSError)


EXAMPLES = """\
mmgen preprocess aistpp --root aist_plusplus_final --music-dir music --smpl-dir smpl --out data/aist
mmgen preprocess av-folder --root my_videos --out data/videos --fps 15 --size 64 64 --sample-rate 16000
mmgen preprocess loris --root LORIS/dance --seconds 25 --out data/loris_dance
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", required=True, help="the data set's folder")
    common.add_argument(
        "--out", required=True, help="output folder: new, empty, or an earlier run's (resumed)"
    )
    common.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an --out an earlier run with other settings wrote (its files are removed)",
    )
    common.add_argument("--no-progress", action="store_true", help="no progress bar")
    common.add_argument(
        "--workers", type=int, default=1, help="processes reading and writing items (default 1; same files out)"
    )

    a = sub.add_parser("aistpp", parents=[common], help="AIST++ annotations + AIST music -> joints npz + wav")
    a.add_argument("--music-dir", required=True, help="folder of the AIST music wavs (mBR0.wav, ...)")
    a.add_argument(
        "--smpl-dir", required=True, help="SMPL model folder (SMPL_MALE.pkl or smpl/SMPL_MALE.pkl)"
    )
    a.add_argument("--gender", default="male", choices=("male", "female", "neutral"))
    a.add_argument("--split", default="all", choices=("all", "train", "val", "test"), help="crossmodal split")
    a.add_argument("--keep-ignored", action="store_true", help="keep sequences of ignore_list.txt")
    a.add_argument("--fps", type=float, default=30.0, help="motion frame rate (60 = native)")
    a.add_argument("--sample-rate", type=int, default=22050)
    a.add_argument("--device", default="cpu", help="where SMPL forward kinematics runs")

    v = sub.add_parser(
        "av-folder", parents=[common], help="a folder of videos with sound -> mp4 frames + wav"
    )
    v.add_argument("--fps", type=float, default=15.0)
    v.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"), help="even frame size")
    v.add_argument("--sample-rate", type=int, default=16000)
    v.add_argument("--stretch", action="store_true", help="resize without keeping the aspect ratio (no crop)")
    v.add_argument("--allow-no-audio", action="store_true", help="keep videos without a sound track")

    p = sub.add_parser("loris", parents=[common], help="LORIS-style 2-D pose + audio -> keypoints npz + wav")
    p.add_argument("--seconds", type=int, default=25, choices=(25, 50), help="the release's clip length")
    p.add_argument("--segment-list", default=None, help="a LORIS *_segment.txt restricting the clips")
    p.add_argument(
        "--fps", type=float, default=None, help="resample the pose (default: keep each file's rate)"
    )
    p.add_argument("--sample-rate", type=int, default=22050)


def _trim(seconds: float, fps: float, sr: int) -> tuple[float, int, int]:
    """(seconds, frames, samples) of the longest span both streams cover, on the frame grid."""
    frames = math.floor(seconds * fps + 1e-6)
    return frames / fps, frames, round(frames / fps * sr)


def _fit(audio: np.ndarray, samples: int) -> np.ndarray:
    out = np.zeros(samples, np.float32)
    out[: min(samples, audio.size)] = audio[:samples]
    return out


def _attempt(make: Callable[[str], dict[str, Any]], item_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) or (None, reason): a worker hands an item's failure back instead of raising."""
    try:
        return make(item_id), None
    except ITEM_ERRORS as err:
        return None, str(err)


def _loop(
    writer: ManifestWriter,
    names: Iterable[str],
    make: Callable[[str], dict[str, Any]],
    path_of: Callable[[str], str],
    progress: bool,
    what: str,
    workers: int = 1,
) -> tuple[int, int]:
    """Run `make(id)` for every id not finished yet, on `workers` processes (`mmgen.core.parallel`:
    records come back in id order, so the manifest is the same whatever the worker count); a
    failing item is skipped with its input path and the reason. Returns (written, already done)."""
    from tqdm.auto import tqdm

    from mmgen.core.parallel import ordered_map

    names = list(names)
    todo = [item_id for item_id in names if not writer.done(item_id)]
    failed = set()
    results = ordered_map(functools.partial(_attempt, make), todo, workers)
    bar = tqdm(zip(todo, results), total=len(todo), desc=f"preprocess {what}", unit="item", disable=not progress)
    for item_id, (record, reason) in bar:
        if record is None:
            failed.add(item_id)
            path = path_of(item_id)
            writer.skip(path, str(reason).removeprefix(f"{path}: "))
        else:
            writer.add(record)
    writer.order.extend(item_id for item_id in names if item_id not in failed)
    return len(todo) - len(failed), len(names) - len(todo)


def _aistpp(args: argparse.Namespace) -> tuple[ManifestWriter, int, int, list[str]]:
    from mmgen.data.aistpp import AIST_FPS, AISTPP, SPLITS, SeqName, read_ignore_list, read_split
    from mmgen.data.smpl_fk import find_smpl_model
    from mmgen.io.export import save_motion_npz, save_wav

    find_smpl_model(args.smpl_dir, args.gender)  # a missing model is a setup error, not a per-item skip
    if not Path(args.music_dir).is_dir():
        raise FileNotFoundError(f"--music-dir {args.music_dir}: music folder not found")
    reader = AISTPP(
        args.root,
        music_dir=args.music_dir,
        smpl_dir=args.smpl_dir,
        gender=args.gender,
        fps=args.fps,
        device=args.device,
    )
    reader.kinematics()  # the SMPL model is read once, now: a bad file stops the run before any item
    settings = {"fps": args.fps, "sample_rate": args.sample_rate, "gender": args.gender}
    writer = ManifestWriter(args.out, "aistpp", settings)
    split_of = {}
    if (Path(args.root) / "splits").is_dir():
        split_of = {
            n: s
            for s in SPLITS
            if (Path(args.root) / "splits" / f"crossmodal_{s}.txt").is_file()
            for n in read_split(args.root, s)
        }
    names = reader.sequences(None if args.split == "all" else args.split, drop_ignored=not args.keep_ignored)
    notes = []
    if not args.keep_ignored:
        ignored = read_ignore_list(args.root)
        if ignored:
            notes.append(
                f"left out {len(ignored)} sequences of ignore_list.txt (keep them with --keep-ignored)"
            )
    out, sr, ratio = Path(args.out), args.sample_rate, AIST_FPS / args.fps

    def make(seq: str) -> dict[str, Any]:
        motion = reader.load_motion(seq)
        joints = reader.joints_from_motion(motion)  # [T, 24, 3]
        audio = reader.audio(seq, sr)
        seconds, frames, samples = _trim(min(joints.shape[0] / args.fps, audio.size / sr), args.fps, sr)
        if frames < 2:
            raise ValueError(f"{reader.music_path(seq)}: the music is shorter than two motion frames")
        extra = {}
        if abs(ratio - round(ratio)) < 1e-9:  # SMPL parameters on the same frames as the joints
            step = round(ratio)
            extra = {
                "smpl_poses": motion.poses[::step][:frames],
                "smpl_transl": motion.transl[::step][:frames],
            }
        name = SeqName.parse(seq)
        files = {"audio": f"audio/{seq}.wav", "motion": f"motion/{seq}.npz"}
        save_motion_npz(out / files["motion"], joints[:frames], args.fps, skeleton="smpl24", **extra)
        save_wav(out / files["audio"], _fit(audio, samples), sr)
        return base_record(
            seq,
            files,
            seconds,
            caption=reader.caption(seq),
            bpm=reader.bpm(seq),
            style=name.genre_name,
            sample_rate=sr,
            fps=args.fps,
            source="aistpp",
            skeleton="smpl24",
            split=split_of.get(seq),
            music=name.music,
        )

    written, reused = _loop(
        writer, names, make, lambda seq: str(reader.motion_path(seq)), not args.no_progress, "aistpp", args.workers
    )
    return writer, written, reused, notes


def _av_folder(args: argparse.Namespace) -> tuple[ManifestWriter, int, int, list[str]]:
    from mmgen.data.av_folder import read_av, scan_folder
    from mmgen.io.export import save_video, save_wav

    h, w = args.size
    if h <= 0 or w <= 0 or h % 2 or w % 2:
        raise ValueError(f"--size must be even and positive (H.264 yuv420p), got {h} {w}")
    settings = {"fps": args.fps, "size": [h, w], "sample_rate": args.sample_rate, "crop": not args.stretch}
    writer = ManifestWriter(args.out, "av-folder", settings)
    items, skipped = scan_folder(args.root, require_audio=not args.allow_no_audio)
    for s in skipped:
        writer.skip(s.path, s.reason)
    root, out = Path(args.root), Path(args.out)
    by_id = {}
    for info in items:
        item_id = safe_id(str(Path(info.path).relative_to(root)))
        if item_id in by_id:
            writer.skip(info.path, f"same id {item_id!r} as {by_id[item_id].path}")
            continue
        by_id[item_id] = info

    def make(item_id: str) -> dict[str, Any]:
        info = by_id[item_id]
        with_audio = info.audio_rate is not None
        clip = read_av(info, args.fps, args.sample_rate, (h, w), crop=not args.stretch, with_audio=with_audio)
        files = {"video": f"video/{item_id}.mp4"}
        save_video(out / files["video"], clip.frames, args.fps)
        if with_audio:
            files["audio"] = f"audio/{item_id}.wav"
            save_wav(out / files["audio"], clip.audio, args.sample_rate)
        sidecar = Path(info.path).with_suffix(".txt")
        caption = sidecar.read_text().strip() if sidecar.is_file() else ""
        return base_record(
            item_id,
            files,
            clip.frames.shape[0] / args.fps,
            caption=caption,
            sample_rate=args.sample_rate,
            video_fps=args.fps,
            source="av-folder",
            original=str(Path(info.path).relative_to(root)),
        )

    written, reused = _loop(writer, by_id, make, lambda i: by_id[i].path, not args.no_progress, "av-folder", args.workers)
    return writer, written, reused, []


def _loris(args: argparse.Namespace) -> tuple[ManifestWriter, int, int, list[str]]:
    from mmgen.data.aistpp import SeqName, music_bpm
    from mmgen.data.pose2d import Pose2DSet
    from mmgen.io.export import save_motion_npz, save_wav

    data = Pose2DSet(args.root, args.seconds, args.segment_list, args.sample_rate, args.fps)
    settings = {"seconds": args.seconds, "fps": args.fps, "sample_rate": args.sample_rate}
    writer = ManifestWriter(args.out, "loris", settings)
    for s in data.skipped:
        writer.skip(s.path, s.reason)
    index = {safe_id(it.name): i for i, it in enumerate(data.items)}
    out, sr = Path(args.out), args.sample_rate

    def make(item_id: str) -> dict[str, Any]:
        name = data.items[index[item_id]].name
        kp, audio, fps = data.read(index[item_id])
        seconds, frames, samples = _trim(min(kp.shape[0] / fps, audio.size / sr), fps, sr)
        files = {"audio": f"audio/{item_id}.wav", "motion": f"motion/{item_id}.npz"}
        save_motion_npz(out / files["motion"], kp[:frames], fps, skeleton="coco17", dims=2)
        save_wav(out / files["audio"], _fit(audio, samples), sr)
        extra: dict[str, Any] = {}
        try:  # LORIS's dance set uses AIST names: genre and tempo come with them
            seq = SeqName.parse(name)
            extra = {"bpm": music_bpm(seq.music), "style": seq.genre_name}
        except ValueError:
            pass
        return base_record(
            item_id, files, seconds, sample_rate=sr, fps=fps, source="loris", skeleton="coco17", **extra
        )

    written, reused = _loop(
        writer, index, make, lambda i: str(data.items[index[i]].pose_path), not args.no_progress, "loris", args.workers
    )
    return writer, written, reused, []


SOURCES = {"aistpp": _aistpp, "av-folder": _av_folder, "loris": _loris}
KIND = "preprocessed data set"
OWN_LAYOUT = ("info.json", "manifest.jsonl", "skipped.jsonl", "records/", "audio/", "motion/", "video/")


def _settings_differ(out: Path, source: str) -> bool:
    try:
        info = json.loads((out / "info.json").read_text())
    except (OSError, ValueError):
        return True
    return not isinstance(info, dict) or info.get("source") != source


def prepare_out(args: argparse.Namespace) -> bool:
    """Check --out before any work: new, empty, or an earlier preprocess run's folder (resumed).
    With --overwrite an earlier run's folder of another source is emptied first (only files of
    the preprocess layout; anything else in it is refused). Returns True if --out starts empty."""
    out = Path(args.out)
    inputs = [args.root, getattr(args, "music_dir", None), getattr(args, "smpl_dir", None)]
    check_apart(out, inputs)
    if out.exists() and not out.is_dir():
        raise MmgenError(f"--out {out}: is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return True
    marker = read_marker(out)
    legacy = marker is None and (out / "info.json").is_file() and (out / "records").is_dir()
    if (marker is None or marker.get("kind") != KIND) and not legacy:
        raise MmgenError(
            f"--out {out}: is not empty and is not an earlier `mmgen preprocess` output; give a new or empty folder"
        )
    if not (args.overwrite and _settings_differ(out, args.source)):
        return False  # resumed; other settings of the same source are refused by ManifestWriter
    foreign = [p for p in out.iterdir() if p.name != MARKER and p.name + ("/" if p.is_dir() else "") not in OWN_LAYOUT]
    if foreign:
        raise MmgenError(f"--out {out}: holds {foreign[0].name}, which mmgen did not write; give another folder")
    for p in out.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return True


def _discard(out: Path, existed: bool) -> None:
    """Undo a run that finished no item: remove what it created (an existing --out is emptied)."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for p in out.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def check_arguments(args: argparse.Namespace) -> None:
    """The settings within `mmgen.core.limits` and the inputs present, before --out is touched."""
    from mmgen.core.limits import MAX_FRAME_SIDE, MOTION_FPS, SAMPLE_RATE, VIDEO_FPS, check_int, check_rate
    from mmgen.core.parallel import check_workers

    if not Path(args.root).is_dir():
        raise FileNotFoundError(f"--root {args.root}: no such folder")
    check_workers("--workers", args.workers)
    check_int("--sample-rate", args.sample_rate, *SAMPLE_RATE)
    if args.source == "aistpp":
        from mmgen.pipeline.checks import check_device

        check_device(args.device)
        if args.workers > 1 and args.device != "cpu":
            raise ValueError(f"--workers {args.workers} needs --device cpu (workers are forked processes)")
        check_rate("--fps", args.fps, (1.0, 60.0))
    elif args.source == "av-folder":
        check_rate("--fps", args.fps, VIDEO_FPS)
        for side, value in zip(("H", "W"), args.size):
            check_int(f"--size {side}", value, 2, MAX_FRAME_SIDE)
    elif args.fps is not None:
        check_rate("--fps", args.fps, MOTION_FPS)


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    out = Path(args.out)
    existed = out.exists()
    fresh = prepare_out(args)
    try:
        if fresh:
            out.mkdir(parents=True, exist_ok=True)
            mark_own(out, KIND)
        writer, written, reused, notes = SOURCES[args.source](args)
        total = written + reused
        manifest = writer.finish() if total else None
    except BaseException:
        if fresh and out.is_dir() and not any((out / "records").glob("*.json")):
            _discard(out, existed)  # nothing finished: leave no info.json / records/ behind
        raise
    if manifest is None:
        for s in writer.skipped:
            print(f"  skipped {s['path']}: {s['reason']}")
        if fresh:
            _discard(out, existed)
        raise MmgenError(f"--root {args.root}: no usable item ({len(writer.skipped)} skipped, listed above)")
    print(
        f"mmgen preprocess {args.source}: {total} items in {manifest} ({written} new, {reused} already done)"
    )
    for note in notes:
        print(f"  note: {note}")
    if writer.skipped:
        print(f"  skipped {len(writer.skipped)} (listed in {writer.out / 'skipped.jsonl'}):")
        for s in writer.skipped:
            print(f"    {s['path']}: {s['reason']}")
    return 0
