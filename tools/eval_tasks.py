"""Score a pipeline's tasks on held-out ToyDance clips over several sampling seeds.

The demo scores 8 clips with one seed; a design choice is judged here instead: `--clips` per
validation set (seeds 20000 and 30000, never the demo's 10000), tempi spread over the range, each
task run with every `--seeds` value, and each row averaged over clips and seeds. The rows are the
demo's own (`mmgen.demo.tasks`): dance / video -> music beat F and tempo, music -> dance BAS and
PFC, audio -> video beat alignment against the shuffled pairing and the VAE round trip, joint
BAS between the generated dance and music (with and without cross-guidance), interpolation MPJPE
against the linear blend. Sampler settings (`--sampler`, `--grid`, `--steps`) compare step counts.

    python tools/eval_tasks.py --pipeline checkpoints/toydance --clips 36 --seeds 0,1,2 \
        --out work/eval_video.json [--set video2audio.via=] [--tasks dance2music,music2dance]
    python tools/eval_tasks.py --tasks dance2music,music2dance --steps 12 --sampler unipc2 --grid log_snr
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from mmgen.data.toydance import generate_clip
from mmgen.demo.tasks import (
    Row,
    conditional_rows,
    joint_sync,
    run_generation,
    shuffled_pairs,
)
from mmgen.diffusion.guidance import CrossGuidance
from mmgen.pipeline import Pipeline

SETS = (20000, 30000)
TASKS = ("dance2music", "music2dance", "video2audio", "audio2video", "joint", "interpolate")
GIVEN = {  # what each task is given of a clip
    "dance2music": ("motion",),
    "music2dance": ("audio",),
    "video2audio": ("video",),
    "audio2video": ("audio",),
    "joint": (),
    "interpolate": ("motion", "audio", "video"),  # the ends of each
}
TASK_ARGS = {"joint": {"modalities": ("audio", "motion")}, "interpolate": {"head": 1.0, "tail": 1.0}}


def clips_of(first_seed: int, count: int, seconds: float) -> list:
    return [
        generate_clip(first_seed + i, seconds=seconds, tempo_position=i / (count - 1)) for i in range(count)
    ]


def media_of(clips: list, seconds: float) -> dict[str, np.ndarray]:
    """The clips' first `seconds` of joints, audio and frames, stacked per modality."""
    return {
        "motion": np.stack([c.joints[: round(seconds * c.fps)] for c in clips]),
        "audio": np.stack([c.audio[: round(seconds * c.sample_rate)] for c in clips]),
        "video": np.stack([c.video[: round(seconds * c.video_fps)] for c in clips]),
    }


def score_set(
    pipe: Pipeline,
    clips: list,
    seed: int,
    steps: int,
    seconds: float,
    tasks: list[str],
    task_kwargs: dict[str, dict],
    sampling: dict,
    cross: CrossGuidance,
) -> list:
    stack = media_of(clips, seconds)
    perm = shuffled_pairs(clips)
    rows = []
    for task in tasks:
        given = {m: stack[m] for m in GIVEN[task]}
        kw = {k: v for k, v in sampling.items() if k != "guidance"}
        kw["task_kwargs"] = {**TASK_ARGS.get(task, {}), **task_kwargs.get(task, {})}
        if "guidance" in sampling:  # only the groups this task is given; the others have no condition
            kw["guidance"] = {g: v for g, v in sampling["guidance"].items() if g in given}
        if task == "joint":
            kw["batch_size"] = len(clips)
            crossed = joint_sync(task, run_generation(pipe, task, given, seconds, steps, seed, cross_guidance=cross, **kw))
            plain = joint_sync(task, run_generation(pipe, task, given, seconds, steps, seed, cross_guidance=False, **kw))
            rows.append(Row(task, "BAS between generated dance and generated music (cross-guided)", crossed, None, plain,
                            "> without cross-guidance", crossed > plain))  # fmt: skip
            continue
        gen = run_generation(pipe, task, given, seconds, steps, seed, **kw)
        rows += conditional_rows(pipe, task, gen, clips, perm, stack)
    return rows


def parse_sets(items: list[str]) -> dict[str, dict]:
    """`video2audio.via=motion` / `video2audio.via=` (empty: no bridge) -> task_kwargs."""
    out: dict[str, dict] = defaultdict(dict)
    for item in items:
        key, _, value = item.partition("=")
        task, _, name = key.partition(".")
        out[task][name] = [v for v in value.split(",") if v] if name == "via" else float(value)
    return dict(out)


def cross_guidance(pipe: Pipeline, text: str) -> CrossGuidance:
    """The pipeline's cross-guidance (MoMu's defaults where it has none) with `key=value,...` over it."""
    fields = dataclasses.asdict(pipe.defaults.cross or CrossGuidance())
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--cross: unknown field {key!r}; fields: {', '.join(fields)}")
        fields[key] = value if key == "estimate" else float(value)
    return CrossGuidance(**fields)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pipeline", type=Path, default=Path("checkpoints/toydance"))
    parser.add_argument("--clips", type=int, default=36, help="clips per validation set (2 sets)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the pipeline's)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--set", action="append", default=[], help="task keyword, e.g. video2audio.via=")
    parser.add_argument("--sampler", default=None, help="sampler (default: the pipeline's)")
    parser.add_argument(
        "--grid", default=None, help="time grid: uniform, log_snr, karras (default: the pipeline's)"
    )
    parser.add_argument(
        "--guidance",
        action="append",
        default=[],
        help="CFG scale per group, e.g. motion=3 (repeat; default: the pipeline's)",
    )
    parser.add_argument(
        "--cross",
        default="",
        help="joint: cross-guidance fields over the pipeline's, e.g. switch=0.5,estimate=current",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    pipe = Pipeline.from_pretrained(args.pipeline)
    steps = args.steps or pipe.defaults.steps
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = [t for t in args.tasks.split(",") if t]
    if any(t not in TASKS for t in tasks):
        parser.error(f"--tasks: choose from {', '.join(TASKS)}")
    task_kwargs = parse_sets(args.set)
    sampling: dict = {k: v for k, v in (("sampler", args.sampler), ("grid", args.grid)) if v is not None}
    if args.guidance:
        sampling["guidance"] = {
            **pipe.defaults.guidance,
            **{g: float(v) for g, v in (a.split("=") for a in args.guidance)},
        }
    cross = cross_guidance(pipe, args.cross)
    sums: dict[tuple[str, str], list[list[float]]] = defaultdict(lambda: [[], [], []])
    start = time.perf_counter()
    for first in SETS:
        clips = clips_of(first, args.clips, args.seconds)
        for seed in seeds:
            for r in score_set(pipe, clips, seed, steps, args.seconds, tasks, task_kwargs, sampling, cross):
                acc = sums[(r.task, r.metric)]
                for i, v in enumerate((r.generated, r.ground_truth, r.baseline)):
                    if v is not None and not (isinstance(v, float) and math.isnan(v)):
                        acc[i].append(float(v))
            print(f"set {first} seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    table = [
        {
            "task": t,
            "metric": m,
            **{
                k: (float(np.mean(v)) if v else None) for k, v in zip(("generated", "truth", "baseline"), acc)
            },
            # one mean per (validation set, sampling seed): their spread is the sampling noise
            "generated_groups": acc[0],
            "generated_sem": float(np.std(acc[0], ddof=1) / np.sqrt(len(acc[0])))
            if len(acc[0]) > 1
            else None,
        }
        for (t, m), acc in sums.items()
    ]
    print(
        f"{args.pipeline}: {2 * args.clips} clips x seeds {seeds}, {steps} steps, {sampling or 'default sampler'}, "
        f"{task_kwargs or 'pipeline task defaults'}"
    )
    print("| task | metric | generated (± s.e. over set x seed) | ground truth | shuffled / baseline |")
    print("|---|---|---|---|---|")
    for row in table:
        cells = [f"{row[k]:.3f}" if row[k] is not None else "" for k in ("generated", "truth", "baseline")]
        if row["generated_sem"] is not None:
            cells[0] += f" ± {row['generated_sem']:.3f}"
        print(f"| {row['task']} | {row['metric']} | " + " | ".join(cells) + " |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "pipeline": str(args.pipeline),
                    "clips": 2 * args.clips,
                    "seeds": seeds,
                    "steps": steps,
                    "sampling": {**sampling, "cross": dataclasses.asdict(cross)},
                    "task_kwargs": task_kwargs,
                    "rows": table,
                },
                indent=1,
            )
        )
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
