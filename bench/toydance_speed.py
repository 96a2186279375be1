"""ToyDance generation speed: one clip per stage (music, dance, video render, file writing) and a set.

Targets from the ToyDance issue: one 4-s clip with video in < 0.3 s; 50 clips of 10 s (with wav,
npz and mp4 writing) well under a minute. CPU time is reported next to wall time because the
machine may be shared (wall time then overstates the cost).

    python bench/toydance_speed.py             # ~1 minute
    python bench/toydance_speed.py --clips 10  # quicker
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, reps: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `fn()` over `reps` runs (after one warm-up)."""
    fn()
    wall, cpu = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    from mmgen.data.toydance import generate_clip
    from mmgen.data.toydance.io import make_dataset, write_clip
    from mmgen.io.render import render_stick_figure

    clip = generate_clip(1, 4.0)
    rows = [
        ("generate_clip 4 s, video", lambda: generate_clip(1, 4.0)),
        ("generate_clip 4 s, no video", lambda: generate_clip(1, 4.0, render_video=False)),
        ("render 4 s (60 frames 64x64)", lambda: render_stick_figure(clip.joints, 30.0, 64, out_fps=15.0)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("write wav+npz+mp4 4 s", lambda: write_clip(Path(tmp), "x", clip)))
        for name, fn in rows:
            wall, cpu = timed(fn, args.reps)
            print(f"{name:32s} wall {wall * 1e3:8.1f} ms   cpu {cpu * 1e3:8.1f} ms")
        w, c = time.perf_counter(), time.process_time()
        make_dataset(Path(tmp) / "set", args.clips, args.seconds, seed=0, progress=False)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        size = sum(p.stat().st_size for p in (Path(tmp) / "set").rglob("*") if p.is_file())
    print(
        f"make_dataset {args.clips} x {args.seconds:g} s: wall {wall:.1f} s, cpu {cpu:.1f} s, "
        f"{size / 2**20:.0f} MiB ({np.round(cpu / args.clips, 3)} s cpu per clip)"
    )


if __name__ == "__main__":
    main()
