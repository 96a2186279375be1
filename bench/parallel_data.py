"""`mmgen preprocess` / `mmgen cache` with --workers 1 vs 2: wall time, speedup, and same bytes out.

A ToyDance set (--clips clips of --seconds) is made once. Then, in a fresh subprocess per run
(interleaved 1, 2, 1, 2, ... for --reps rounds; the time of `main()` only, imports excluded):

    preprocess  av-folder on the ToyDance mp4s (decode, resize, re-encode H.264)
    cache       the ToyDance set through the shipped checkpoints/toydance VAEs, 2 s windows

Printed per command: median wall seconds with 1 and 2 workers, their ratio (the speedup), the
best-of-reps ratio, and the CPU seconds the run used (its own plus its workers'). On a shared CPU
the wall ratio also measures the neighbours: with the machine's 2 cores busy elsewhere, 2 workers
cannot run 2x faster; the CPU seconds show the work did not grow. Each pair of outputs is compared
byte for byte.

    python bench/parallel_data.py --clips 16 --seconds 4 --reps 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys, time
from mmgen.cli import main
argv = json.loads(sys.argv[1])
t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
code = main(argv)
wall = time.perf_counter() - t0
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (me.ru_utime + me.ru_stime - c0.ru_utime - c0.ru_stime) + kids.ru_utime + kids.ru_stime
print(json.dumps({"code": code, "wall": wall, "cpu": cpu}))
"""


def run(argv: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(argv)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if out.returncode:
        raise SystemExit(f"{argv[0]} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["code"]:
        raise SystemExit(f"{argv} exited {result['code']}:\n{out.stderr[-2000:]}")
    return result


def same_bytes(a: Path, b: Path) -> bool:
    files_a = {p.relative_to(a): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    return files_a == files_b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--pipeline", default=str(ROOT / "checkpoints" / "toydance"))
    parser.add_argument("--only", choices=("preprocess", "cache"), help="one command only")
    args = parser.parse_args()

    from mmgen.data.toydance.io import make_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench-parallel-"))
    data = make_dataset(tmp / "toydance", args.clips, args.seconds, seed=0, progress=False)
    commands = {
        "preprocess": lambda out: ["preprocess", "av-folder", "--root", str(data / "clips"), "--out", str(out),
                                   "--allow-no-audio", "--size", "64", "64", "--no-progress"],
        "cache": lambda out: ["cache", "--data", str(data), "--pipeline", args.pipeline, "--out", str(out),
                              "--seconds", "2", "--no-progress"],
    }
    print(f"{args.clips} ToyDance clips of {args.seconds:g} s, {args.reps} rounds, data in {tmp}")
    print("| command | 1 worker (s) | 2 workers (s) | speedup (median) | speedup (best) | CPU s 1 / 2 | same bytes |")
    print("|---|---|---|---|---|---|---|")
    for name, argv in commands.items():
        if args.only and name != args.only:
            continue
        runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for rep in range(args.reps):
            for workers in (1, 2):
                out = tmp / f"{name}-{workers}-{rep}"
                runs[workers].append(run([*argv(out), "--workers", str(workers)]))
        walls = {w: [r["wall"] for r in rs] for w, rs in runs.items()}
        cpus = {w: statistics.median(r["cpu"] for r in rs) for w, rs in runs.items()}
        equal = all(same_bytes(tmp / f"{name}-1-{rep}", tmp / f"{name}-2-{rep}") for rep in range(args.reps))
        m1, m2 = statistics.median(walls[1]), statistics.median(walls[2])
        print(
            f"| {name} | {m1:.1f} | {m2:.1f} | {m1 / m2:.2f}x | {min(walls[1]) / min(walls[2]):.2f}x "
            f"| {cpus[1]:.0f} / {cpus[2]:.0f} | {equal} |"
        )
    print(f"(outputs left in {tmp})")


if __name__ == "__main__":
    main()
