"""Interpolation error per clip: which clips carry the mean, and is it bias or sampling noise?

Runs the interpolation task (1 s given at each end of 4 s) on held-out ToyDance clips (the sets of
`tools/eval_tasks.py`) or on the first 4 s of training clips, once per sampling seed, and prints
each clip's MPJPE on the generated middle per seed, the error of the seeds' mean dance, and the
linear blend's, sorted by error, then the means by style. If the mean of the seeds scores about
as the seeds do, the model is biased rather than unsure (docs/experiments.md, 2026-12-08).

    python tools/interpolation_by_clip.py --pipeline checkpoints/toydance --clips 12 --seeds 0,1,2
    python tools/interpolation_by_clip.py --training 24 --seeds 0   # training clips (data seed 1)
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from eval_tasks import SETS, clips_of, media_of

from mmgen.data.toydance import generate_clip
from mmgen.data.toydance.io import clip_plan
from mmgen.evaluation.measures import interpolation_error, linear_blend
from mmgen.pipeline import Pipeline

SECONDS = 4.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, default=Path("checkpoints/toydance"))
    parser.add_argument("--clips", type=int, default=12, help="held-out clips per validation set (2 sets)")
    parser.add_argument("--training", type=int, default=0, help="score this many training clips instead")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=None, help="write the per-clip rows as JSON here")
    args = parser.parse_args()
    pipe = Pipeline.from_pretrained(args.pipeline)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.training:  # the set `mmgen toydance make --seed 1` writes: 8 s clips, scored on their first 4 s
        plans = [clip_plan(1, i) for i in range(args.training)]
        clips = [generate_clip(seed, 8.0, style=style) for seed, style in plans]
    else:
        clips = [c for first in SETS for c in clips_of(first, args.clips, SECONDS)]
    given = media_of(clips, SECONDS)
    dances, mask = [], None
    for seed in seeds:
        gen = pipe.generate("interpolate", given, seconds=SECONDS, seed=seed, progress=False,
                            task_kwargs={"head": 1.0, "tail": 1.0})  # fmt: skip
        dances.append(gen.joints)
        mask = np.broadcast_to(gen.generated["motion"], gen.joints.shape[:2])
    ref = np.stack([c.joints[: dances[0].shape[1]] for c in clips])
    per_seed = [interpolation_error(d, ref, mask) for d in dances]
    of_mean = interpolation_error(np.mean(dances, axis=0), ref, mask)
    blend_items = [interpolation_error(linear_blend(r, m), r, m)["error"] for r, m in zip(ref, mask, strict=True)]
    rows = [
        {"seed": c.seed, "style": c.style, "bpm": round(float(c.bpm), 1),
         "error": [p["item_error"][i] for p in per_seed], "error_of_mean": of_mean["item_error"][i], "blend": blend_items[i]}
        for i, c in enumerate(clips)
    ]  # fmt: skip
    print("| clip | style | bpm | MPJPE per seed (m) | of the seeds' mean | linear blend |")
    print("|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: float(np.mean(r["error"]))):
        seeds_text = " / ".join(f"{e:.3f}" for e in r["error"])
        print(f"| {r['seed']} | {r['style']} | {r['bpm']:g} | {seeds_text} | {r['error_of_mean']:.3f} | {r['blend']:.3f} |")
    by_style = defaultdict(list)
    for r in rows:
        by_style[r["style"]].append(float(np.mean(r["error"])))
    print("by style:", ", ".join(f"{s} {np.mean(v):.3f} ({len(v)})" for s, v in sorted(by_style.items())))
    seed_means = " / ".join(f"{p['error']:.4f}" for p in per_seed)
    print(f"per seed {seed_means}; the seeds' mean dance {of_mean['error']:.4f}; blend {per_seed[0]['blend_error']:.4f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pipeline": str(args.pipeline), "seeds": seeds, "rows": rows}, indent=1))
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
