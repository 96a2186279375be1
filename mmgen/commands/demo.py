"""`mmgen demo`: run every task of the shipped ToyDance checkpoint and write examples + metrics."""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

EXAMPLES = """\
mmgen demo                                   every task of the shipped checkpoint -> demo_out/
mmgen demo --out my_demo --clips 2 --steps 12
mmgen demo --pipeline owner/mmgen-dance      a pipeline from the Hugging Face Hub (or a folder)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", type=Path, default=None, help="pipeline folder, \"toydance\" or a Hugging Face Hub id owner/name (default: the shipped ToyDance checkpoint)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo's --out folder")
    parser.add_argument("--clips", type=int, default=8, help="held-out clips per task")
    parser.add_argument("--steps", type=int, default=25, help="sampler steps")
    parser.add_argument("--first-seed", type=int, default=10_000,
                        help="seed of the first clip (default 10000); another value scores other held-out clips")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="length of the long-form dance->music")
    parser.add_argument("--device", default=None, help="cpu / cuda / mps (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: cores, at most 4)")


def run(args: argparse.Namespace) -> int:
    import torch

    from mmgen.core.fileio import check_output_dir
    from mmgen.core.limits import MAX_CLIPS, check_int, check_seconds, check_seed, check_steps
    from mmgen.demo import DemoSettings, format_table, load_demo_pipeline, run_demo
    from mmgen.pipeline.checks import check_device

    check_int("--clips", args.clips, 2, MAX_CLIPS)
    check_steps("--steps", args.steps)
    check_seed("--first-seed", args.first_seed)
    check_seconds("--long-seconds", args.long_seconds)
    if args.threads is not None:
        check_int("--threads", args.threads, 1, 1024)
    if args.device is not None:
        check_device(args.device)
    check_output_dir(args.out, "demo", overwrite=args.overwrite)  # before the pipeline loads
    torch.set_num_threads(args.threads or max(1, min(4, os.cpu_count() or 1)))
    logging.getLogger("mmgen").setLevel(logging.WARNING)
    start = time.perf_counter()
    pipe = load_demo_pipeline(args.pipeline, args.device)
    settings = DemoSettings(clips=args.clips, steps=args.steps, long_seconds=args.long_seconds,
                            first_seed=args.first_seed)
    rows = run_demo(pipe, args.out, settings, overwrite=args.overwrite)
    print(format_table(rows))
    failed = [f"{r.task}: {r.metric}" for r in rows if r.passed is False]
    print(f"\nwrote examples, metrics.md and metrics.json to {args.out}/ in {time.perf_counter() - start:.0f} s")
    if failed:
        print(f"{len(failed)} target(s) not met: " + "; ".join(failed))
    return 0
