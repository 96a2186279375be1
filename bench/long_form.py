"""Long form in flat memory: peak RSS of `mmgen generate` at 1 min vs 10 min, and video -> audio speed.

Each run is one `mmgen generate` in a fresh subprocess (the shipped ToyDance checkpoint, few
steps: memory does not depend on them); the child reports its own peak RSS (ru_maxrss) and wall
time. Inputs are made here first: a ToyDance dance / song tiled to length, and a synthetic
variable-frame-rate 24 fps 322x180 mp4 without audio (`mmgen.io.synth_video`).

    python bench/long_form.py --out /work/runs/longform/bench            # 60 s vs 600 s, 3 tasks
    python bench/long_form.py --short 61 --long 600 --tasks video2audio --steps 2

Prints, per task, peak(long) / peak(short) (target <= 1.3) and, for video2audio, seconds of
wall and CPU time per second of clip (CPU time stays meaningful on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("dance2music", "music2dance", "video2audio")


def make_inputs(folder: Path, seconds: float, tasks: list[str]) -> dict[str, Path]:
    """motion .npz, audio .wav and video .mp4 of `seconds` (only those the tasks need)."""
    from mmgen.data.toydance.clip import generate_clip
    from mmgen.io.export import save_motion_npz, save_wav
    from mmgen.io.synth_video import write_test_video

    out: dict[str, Path] = {}
    clip = generate_clip(7, seconds=8.0, render_video=False)
    reps = int(np.ceil(seconds / 8.0))
    if "dance2music" in tasks:
        joints = np.concatenate([clip.joints] * reps)[: round(seconds * clip.fps)]
        out["motion"] = folder / f"dance_{seconds:g}.npz"
        save_motion_npz(out["motion"], joints, clip.fps)
    if "music2dance" in tasks:
        audio = np.concatenate([clip.audio] * reps)[: round(seconds * clip.sample_rate)]
        out["audio"] = folder / f"song_{seconds:g}.wav"
        save_wav(out["audio"], audio, clip.sample_rate)
    if "video2audio" in tasks:
        out["video"] = write_test_video(folder / f"clip_{seconds:g}.mp4", seconds, fps=24.0, size=(180, 322), jitter=0.3)
    return out


def save_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def child(args: list[str]) -> None:
    """Run the CLI in this process and print {"rss_mb", "seconds", "code"} as the last line."""
    from mmgen.cli import main

    start = time.perf_counter()
    code = main(args)
    wall = time.perf_counter() - start
    use = resource.getrusage(resource.RUSAGE_SELF)
    rss = use.ru_maxrss / 1024  # KiB -> MiB on Linux
    cpu = use.ru_utime + use.ru_stime  # what the run costs, whatever else shares the machine
    print(json.dumps({"rss_mb": round(rss, 1), "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "code": code}))


def run(task: str, inputs: dict[str, Path], out: Path, steps: int) -> dict:
    flag = {"dance2music": "motion", "music2dance": "audio", "video2audio": "video"}[task]
    args = ["generate", "--task", task, f"--{flag}", str(inputs[flag]), "--out", str(out), "--no-progress"]
    args += ["--steps", str(steps)] if steps else []  # 0: the checkpoint's own default
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="numba_"))
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{task} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench_long_form", help="folder for inputs, outputs and results.json")
    parser.add_argument("--short", type=float, default=60.0)
    parser.add_argument("--long", type=float, default=600.0)
    parser.add_argument("--steps", type=int, default=2, help="sampling steps; 0 = the checkpoint's default")
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for seconds in dict.fromkeys((args.short, args.long)):  # --short 61 --long 61: one size
        inputs = make_inputs(out, seconds, tasks)
        for task in tasks:
            res = run(task, inputs, out / f"{task}_{seconds:g}", args.steps)
            results[f"{task}@{seconds:g}"] = res
            save_json(out / "results.json", results)  # kept if a later (longer) run dies
            print(f"{task:12s} {seconds:6g} s  peak RSS {res['rss_mb']:8.1f} MB  wall {res['seconds']:7.1f} s  "
                  f"CPU {res['cpu_seconds']:7.1f} s", flush=True)
    print()
    for task in tasks if args.long != args.short else []:
        a, b = results[f"{task}@{args.short:g}"], results[f"{task}@{args.long:g}"]
        print(f"{task:12s} peak({args.long:g} s) / peak({args.short:g} s) = {b['rss_mb'] / a['rss_mb']:.2f}  (target <= 1.3)")
    if "video2audio" in tasks:
        for seconds in dict.fromkeys((args.short, args.long)):
            r = results[f"video2audio@{seconds:g}"]
            print(f"video2audio  {r['seconds'] / seconds:.2f} s of wall time, {r['cpu_seconds'] / seconds:.2f} s of CPU "
                  f"per s of clip at {seconds:g} s ({args.steps or 'default'} steps)")
    save_json(out / "results.json", results)


if __name__ == "__main__":
    main()
