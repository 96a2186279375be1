"""`mmgen demo`: every task of the shipped ToyDance checkpoint on held-out clips, with metrics.

Held-out clips come from seeds the training set never used (training: `toydance make --seed 1`;
here: `generate_clip(10_000 + i, tempo_position=i / (n - 1))`: the seed draws the style, and the
tempi run from slow to fast inside each style's own range), generated in memory. Each task's
numbers stand beside the ground truth and a shuffled-condition baseline (the same generations
scored against a clip of another tempo). Outputs: wav / mp4 (audio muxed) / mel PNG of the first examples per task,
`metrics.md` and `metrics.json`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mmgen.core.fileio import atomic_dir, atomic_path
from mmgen.data.toydance import generate_clip
from mmgen.demo.tasks import (
    Row,
    conditional_rows,
    joint_sync,
    long_form_rows,
    run_generation,
    shuffled_pairs,
)
from mmgen.pipeline import Pipeline
from mmgen.pipeline.hub import locate, toydance_dir

log = logging.getLogger(__name__)

HELD_OUT_SEED = 10_000


@dataclass(frozen=True)
class DemoSettings:
    """How much the demo runs (defaults fit in ~2 minutes on 2 CPU cores)."""

    clips: int = 8
    seconds: float = 8.0  # music <-> dance clips (long enough for tempo estimates)
    video_seconds: float = 4.0  # video tasks: one training window
    long_seconds: float = 60.0
    steps: int = 25
    save_examples: int = 2
    seed: int = 0  # sampling noise
    first_seed: int = HELD_OUT_SEED  # clip i is generate_clip(first_seed + i); another value, other clips

    def __post_init__(self) -> None:
        if self.clips < 2:
            raise ValueError(f"the demo needs at least 2 clips (for the shuffled baseline), got {self.clips}")
        if min(self.seconds, self.video_seconds, self.long_seconds) <= 0 or self.steps < 1:
            raise ValueError("demo seconds and steps must be positive")
        if isinstance(self.first_seed, bool) or not isinstance(self.first_seed, int) or self.first_seed < 0:
            raise ValueError(f"the demo's first clip seed must be a non-negative integer, got {self.first_seed!r}")


def _stack(clips, field: str, seconds: float, rate: float) -> np.ndarray:
    n = round(seconds * rate)
    return np.stack([getattr(c, field)[:n] for c in clips])


def _save(gen, directory: Path, count: int) -> None:
    if count <= 0:
        return
    part = replace(
        gen,
        audio=None if gen.audio is None else gen.audio[:count],
        joints=None if gen.joints is None else gen.joints[:count],
        frames=None if gen.frames is None else gen.frames[:count],
    )
    part.save(directory, prefix="example")


def run_demo(
    pipeline: Pipeline, out: str | Path, settings: DemoSettings = DemoSettings(), overwrite: bool = False
) -> list[Row]:
    """Run every task, write examples and the metrics table to `out`, return the rows.

    `out` appears whole when the demo finishes (`atomic_dir`); it must be new or empty, or with
    `overwrite` an earlier demo's folder."""
    with atomic_dir(out, "demo", overwrite=overwrite, arg="--out") as tmp:
        return _run_demo(pipeline, tmp, settings)


def _run_demo(pipeline: Pipeline, out: Path, settings: DemoSettings) -> list[Row]:
    s = settings
    # tempi spread from slow to fast (every clip has a partner of clearly different tempo), each
    # inside its style's training range: a 114-bpm ballet waltz was never seen (ballet is 80-100)
    spread = [i / (s.clips - 1) for i in range(s.clips)]
    clips = [generate_clip(s.first_seed + i, seconds=s.seconds, tempo_position=p) for i, p in enumerate(spread)]
    perm = shuffled_pairs(clips)
    fps, sr, vfps = clips[0].fps, clips[0].sample_rate, clips[0].video_fps
    motion = _stack(clips, "joints", s.seconds, fps)
    audio = _stack(clips, "audio", s.seconds, sr)
    video_clips = [
        generate_clip(s.first_seed + i, seconds=s.video_seconds, tempo_position=p) for i, p in enumerate(spread)
    ]
    short = {  # the video tasks' clips, stacked once: video2audio, audio2video and interpolate share them
        "motion": _stack(video_clips, "joints", s.video_seconds, fps),
        "audio": _stack(video_clips, "audio", s.video_seconds, sr),
        "video": _stack(video_clips, "video", s.video_seconds, vfps),
    }
    rows: list[Row] = []
    timings: dict[str, float] = {}
    steps = [
        "dance2music", "music2dance", "video2audio", "audio2video", "joint", "interpolate", "long_form",
    ]
    for task in tqdm(steps, desc="mmgen demo", unit="task"):
        start = time.perf_counter()
        if task == "dance2music":
            gen = run_generation(pipeline, task, {"motion": motion}, s.seconds, s.steps, s.seed)
            rows += conditional_rows(pipeline, task, gen, clips, perm, {"motion": motion})
        elif task == "music2dance":
            gen = run_generation(pipeline, task, {"audio": audio}, s.seconds, s.steps, s.seed)
            rows += conditional_rows(pipeline, task, gen, clips, perm, {"motion": motion})
        elif task == "video2audio":
            gen = run_generation(pipeline, task, {"video": short["video"]}, s.video_seconds, s.steps, s.seed)
            rows += conditional_rows(pipeline, task, gen, video_clips, perm, short)
        elif task == "audio2video":
            gen = run_generation(pipeline, task, {"audio": short["audio"]}, s.video_seconds, s.steps, s.seed)
            rows += conditional_rows(pipeline, task, gen, video_clips, perm, short)
        elif task == "joint":
            kw = {"task_kwargs": {"modalities": ("audio", "motion")}, "batch_size": s.clips}
            plain = run_generation(pipeline, task, {}, s.video_seconds, s.steps, s.seed, cross_guidance=False, **kw)
            # True: the pipeline's default cross-guidance, or CrossGuidance() where it has none
            gen = run_generation(pipeline, task, {}, s.video_seconds, s.steps, s.seed, cross_guidance=True, **kw)
            crossed, base = joint_sync(task, gen), joint_sync(task, plain)
            rows.append(Row(task, "BAS between generated dance and generated music (cross-guided)", crossed,
                            None, base, "> without cross-guidance", crossed > base))
        elif task == "interpolate":
            head = tail = 1.0
            gen = run_generation(pipeline, task, short, s.video_seconds, s.steps, s.seed,
                                 task_kwargs={"head": head, "tail": tail})
            rows += conditional_rows(pipeline, task, gen, video_clips, perm, short)
        else:
            long_clip = generate_clip(s.first_seed + 999, seconds=s.long_seconds, render_video=False)
            window = pipeline.defaults.window_seconds or s.video_seconds
            hop = pipeline.defaults.hop_seconds or window / 2
            gen = run_generation(pipeline, "dance2music", {"motion": long_clip.joints}, s.long_seconds, s.steps, s.seed)
            rows += long_form_rows("long_form", gen, long_clip, window, hop)
        timings[task] = round(time.perf_counter() - start, 1)
        _save(gen, out / task, s.save_examples if task != "long_form" else 1)
    labels = [{"seed": c.seed, "style": c.style, "bpm": c.bpm} for c in clips]
    write_report(rows, out, settings, timings, pipeline.defaults.task_args, labels)
    return rows


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return "nan" if isinstance(x, float) and math.isnan(x) else f"{x:.3f}"


def format_table(rows: list[Row]) -> str:
    lines = ["| task | metric | generated | ground truth | shuffled / baseline | target | pass |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        verdict = "" if r.passed is None else ("yes" if r.passed else "**no**")
        lines.append(f"| {r.task} | {r.metric} | {_fmt(r.generated)} | {_fmt(r.ground_truth)} | "
                     f"{_fmt(r.baseline)} | {r.target} | {verdict} |")
    return "\n".join(lines)


def format_per_clip(rows: list[Row], clips: list[dict]) -> str:
    """Rows that are means over the held-out clips, one column per clip (style and true tempo)."""
    head = " | ".join(f"{c['style']} {c['bpm']:g}" for c in clips)
    lines = [f"| task | metric | {head} |", "|---|---|" + "---|" * len(clips)]
    for r in rows:
        if r.per_clip is not None:
            if len(r.per_clip) != len(clips):
                raise ValueError(f"{r.task} / {r.metric}: {len(r.per_clip)} per-clip values for {len(clips)} clips")
            lines.append(f"| {r.task} | {r.metric} | " + " | ".join(_fmt(float(v)) for v in r.per_clip) + " |")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """NaN / inf (an undefined metric) become null: json.dumps would write the non-JSON token NaN."""
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_report(
    rows: list[Row], out: Path, settings: DemoSettings, timings: dict[str, float],
    task_args: dict[str, dict] | None = None, clips: list[dict] | None = None,
) -> None:
    """metrics.md (table, per-clip table, notes) and metrics.json; `clips` labels the per-clip
    values (seed, style, bpm of each held-out clip, in order)."""
    notes = (
        f"Held-out ToyDance clips: {settings.clips} (seeds {settings.first_seed}.., each style's tempo range spread from "
        f"slow to fast), {settings.seconds:.0f} s for music/dance "
        f"tasks, {settings.video_seconds:.0f} s for video tasks, {settings.long_seconds:.0f} s long form; "
        f"{settings.steps} sampler steps. The shuffled baseline scores each generation against another clip of a "
        "different tempo. LORIS BCS/BHS use 1-second bins and saturate on any music with a steady beat; "
        "beat F-measure (±70 ms) is the sharp measure."
    )
    if task_args:
        args = "; ".join(f"{t}: {json.dumps(a)}" for t, a in sorted(task_args.items()))
        notes += f" Preset arguments from the pipeline's defaults.task_args: {args}."
    table = format_table(rows)
    if clips:
        table += "\n\n## Per clip\n\n" + format_per_clip(rows, clips)
    with atomic_path(out / "metrics.md") as tmp:
        tmp.write_text(f"# mmgen demo\n\n{notes}\n\n{table}\n\nSeconds per task: {json.dumps(timings)}\n")
    finite = [{k: _json_safe(v) for k, v in asdict(r).items()} for r in rows]
    payload = {"settings": asdict(settings), "timings": timings, "clips": clips or [], "rows": finite}
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(payload, indent=1, allow_nan=False))


def default_pipeline_dir() -> Path:
    """The shipped ToyDance checkpoint: package data when installed, else the checkout's
    `checkpoints/toydance` (`mmgen.pipeline.hub.toydance_dir`)."""
    return toydance_dir()


def load_demo_pipeline(directory: str | Path | None = None, device: str | None = None) -> Pipeline:
    """A pipeline folder or hub id (default: the shipped ToyDance checkpoint) on `device`."""
    path = locate(directory) if directory else default_pipeline_dir()
    if not (path / "pipeline.yaml").is_file():
        raise FileNotFoundError(f"{path / 'pipeline.yaml'}: no pipeline there (pass --pipeline DIR)")
    return Pipeline.from_pretrained(path, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
