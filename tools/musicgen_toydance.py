"""Train and evaluate the codebook-LM baseline (MusicGen) on ToyDance, beside the shipped DiT.

    python tools/musicgen_toydance.py --work /work/runs/musicgen                 # every stage
    python tools/musicgen_toydance.py --work W --stages lm,assemble,evaluate     # from a stage
    python tools/musicgen_toydance.py --work W --lm-steps 40 --eval-clips 4      # a smoke run

Stages (each an ordinary `mmgen` command where one exists, so it can be rerun by hand):
    data      mmgen toydance make: 960 training clips (seed 2; the DiT's 240 of seed 1 overfit the
              LM within 250 steps), 72 held-out clips (seed 20000), 8 s
    cache     mmgen cache of both sets' audio and motion with the shipped VAEs (checkpoints/toydance)
    rvq       mmgen fit -c configs/toydance/rvq.yaml      -> checkpoints/toydance_lm/rvq
    lm        mmgen fit -c configs/toydance/lm.yaml       -> checkpoints/toydance_lm/lm
    assemble  checkpoints/toydance_lm/pipeline.yaml (kind: lm, base: ../toydance)
    evaluate  RVQ usage / round trip on the held-out cache; LM and DiT dance2music on every
              held-out clip, scored by `mmgen.evaluation.evaluate_folder` (what `mmgen eval` runs)
              against the true dances and against a derangement of them (the shuffled-dance
              baseline); results.json and results.md in --work.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "toydance"
DIT = ROOT / "checkpoints" / "toydance"
OUT = ROOT / "checkpoints" / "toydance_lm"
STAGES = ("data", "cache", "rvq", "lm", "assemble", "evaluate")


def mmgen(*args: str) -> None:
    cmd = [sys.executable, "-m", "mmgen.cli", *args]
    print("$ mmgen " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def fit(config: str, work: Path, steps: int, name: str, extra: tuple[str, ...] = ()) -> None:
    mmgen("fit", "-c", str(CONFIGS / "trainer_cpu.yaml"), "-c", str(CONFIGS / config),
          f"--data.init_args.root={work / 'cache_train'}", f"--trainer.max_steps={steps}",
          f"--trainer.logger.init_args.save_dir={work / 'logs'}", f"--trainer.logger.init_args.name={name}",
          "--model.init_args.overwrite_export=true", *extra)  # fmt: skip


def run_stage(stage: str, args: argparse.Namespace, record: dict) -> None:
    work = args.work
    if stage == "data":
        mmgen("toydance", "make", "--out", str(work / "data_train"), "--clips", "960", "--seconds", "8", "--seed", "2", "--overwrite")
        mmgen("toydance", "make", "--out", str(work / "data_held"), "--clips", "72", "--seconds", "8", "--seed", "20000", "--overwrite")
    elif stage == "cache":
        vaes = [a for m in ("audio", "motion") for a in ("--vae", f"{m}={DIT / m}")]
        for part in ("train", "held"):
            mmgen("cache", "--data", str(work / f"data_{part}"), "--out", str(work / f"cache_{part}"), *vaes,
                  "--workers", "2", "--overwrite")  # fmt: skip
    elif stage == "rvq":
        fit("rvq.yaml", work, args.rvq_steps, "rvq")
    elif stage == "lm":
        fit("lm.yaml", work, args.lm_steps, "lm", ("--trainer.max_time", f"00:00:{args.lm_minutes:02d}:00"))
    elif stage == "assemble":
        from mmgen.lm.pipeline import LMDefaults, LMPipeline
        from mmgen.modalities.audio_mel import MelVAE

        fingerprint = MelVAE.from_pretrained(DIT / "audio" / "vae").fingerprint()
        # CFG 6: held-out beat F over the shuffled-dance baseline was +0.07 / +0.12 / +0.17 / +0.17
        # at cfg 1 / 3 / 6 / 10 (docs/musicgen.md)
        defaults = LMDefaults(cfg_scale=6.0)
        LMPipeline.write_config(OUT, "../toydance", fingerprint, defaults, {"training": record.get("stages", {})})
    elif stage == "evaluate":
        from musicgen_eval import evaluate  # tools/musicgen_eval.py

        kinds = tuple(k for k in args.eval_kinds.split(",") if k)
        record["evaluation"] = evaluate(work, OUT, DIT, args.eval_clips, args.batch, kinds, args.eval_seed)
    else:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for data, caches, logs and results")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--rvq-steps", type=int, default=600)
    parser.add_argument("--lm-steps", type=int, default=1200)
    parser.add_argument("--lm-minutes", type=int, default=25, help="wall-clock cap of the LM stage (Lightning max_time)")
    parser.add_argument("--eval-clips", type=int, default=72, help="held-out clips to evaluate (default all 72)")
    parser.add_argument("--eval-kinds", default="lm,dit", help="models to (re)evaluate; the others keep their earlier rows")
    parser.add_argument("--batch", type=int, default=24, help="clips generated per batch")
    parser.add_argument("--eval-seed", type=int, default=0, help="sampling seed offset of the evaluation (another draw)")
    args = parser.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if any(s not in STAGES for s in stages):
        parser.error(f"--stages: choose from {', '.join(STAGES)}")
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "tools"))
    path = args.work / "record.json"
    record = json.loads(path.read_text()) if path.is_file() else {"stages": {}}
    for stage in stages:
        start = time.perf_counter()
        run_stage(stage, args, record)
        record["stages"][stage] = {"seconds": round(time.perf_counter() - start, 1)}
        print(f"== {stage}: {record['stages'][stage]['seconds']} s", flush=True)
        path.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
