"""Train a tiny mmgen end to end through the real CLI and Lightning path, then generate with it.

    python examples/train_tiny.py --out out/tiny                         # a few minutes on a CPU
    python examples/train_tiny.py --out /tmp/tiny --clips 3 --vae-steps 2 --dit-steps 4   # smoke run (CI)

Every stage is an ordinary `mmgen` command, run here in-process with `mmgen.cli.main` (the same
commands work in a shell), on the shipped ToyDance configs with a few values overridden:

    1. mmgen toydance make --out OUT/data                       the data (any `mmgen preprocess` output works)
    2. mmgen fit -c configs/toydance/vae_audio.yaml ...         the mel VAE      -> OUT/audio/vae
    3. mmgen fit -c configs/toydance/vae_motion.yaml ...        the motion VAE   -> OUT/motion/vae
    4. mmgen cache --data OUT/data --vae audio=... ...          the latent cache -> OUT/cache
    5. mmgen fit -c configs/toydance/dit.yaml ...               a small DiT      -> OUT/dit
    6. Pipeline(dit, modalities).save_pretrained(OUT/pipeline)  tie the parts into one folder
    7. mmgen generate --pipeline OUT/pipeline --task dance2music  -> OUT/generated

For real training drop the overrides (or raise the steps), use configs/trainer/gpu.yaml on a GPU,
and see `python tools/train_toydance.py`, which made the shipped checkpoint with these stages.
Training logs (CSV) go to OUT/logs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "toydance"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="work folder: data, logs, exports, pipeline, generated")
    p.add_argument("--clips", type=int, default=8, help="ToyDance clips (default 8)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per clip = the DiT window (default 4)")
    p.add_argument("--vae-steps", type=int, default=100, help="training steps of each VAE (default 100)")
    p.add_argument("--dit-steps", type=int, default=200, help="training steps of the DiT (default 200)")
    p.add_argument("--steps", type=int, default=10, help="sampling steps of the final generate (default 10)")
    p.add_argument("--overwrite", action="store_true", help="replace what an earlier run wrote in --out")
    return p.parse_args()


def mmgen(*args: object) -> None:
    from mmgen.cli import main

    argv = [str(a) for a in args]
    print("$ mmgen", " ".join(argv), flush=True)
    code = main(argv)
    if code != 0:
        raise SystemExit(f"mmgen {argv[0]} failed with exit code {code}")


def fit(out: Path, name: str, export: str, config: str, steps: int, overwrite: bool, *overrides: str) -> None:
    """`mmgen fit` on a shipped ToyDance config, exporting to OUT/<export> instead of checkpoints/;
    the command-line overrides come after the config files, so they win."""
    mmgen("fit", "-c", CONFIGS / "trainer_cpu.yaml", "-c", CONFIGS / config,
          f"--trainer.max_steps={steps}", f"--trainer.default_root_dir={out}",
          f"--trainer.logger.init_args.save_dir={out / 'logs'}", f"--trainer.logger.init_args.name={name}",
          "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
          "--trainer.log_every_n_steps=1", f"--model.init_args.export_dir={out / export}",
          f"--model.init_args.overwrite_export={str(overwrite).lower()}", *overrides)


def main() -> None:
    args = parse_args()
    out = Path(args.out).resolve()
    again = ["--overwrite"] if args.overwrite else []
    data = out / "data"
    mmgen("toydance", "make", "--out", data, "--clips", args.clips, "--seconds", args.seconds, "--seed", 5,
          "--no-progress", *again)
    small = [f"--data.init_args.root={data}", "--data.init_args.batch_size=2", "--model.init_args.warmup_steps=1"]
    fit(out, "vae_audio", "audio/vae", "vae_audio.yaml", args.vae_steps, args.overwrite, *small, "--model.init_args.stats_batches=2")
    fit(out, "vae_motion", "motion/vae", "vae_motion.yaml", args.vae_steps, args.overwrite, *small, "--model.init_args.stats_batches=2",
        f"--model.init_args.objective.init_args.music_vae={out / 'audio' / 'vae'}")
    mmgen("cache", "--data", data, "--out", out / "cache", "--vae", f"audio={out / 'audio'}",
          "--vae", f"motion={out / 'motion'}", "--no-progress", *again)
    vaes = json.dumps({m: str(out / m / "vae") for m in ("audio", "motion")})  # YAML flow style is JSON's superset
    fit(out, "dit", "dit", "dit.yaml", args.dit_steps, args.overwrite,
        f"--data.init_args.root={out / 'cache'}", f"--data.init_args.vaes={vaes}", "--data.init_args.batch_size=2",
        f"--data.init_args.window_seconds={args.seconds}", "--data.init_args.val_fraction=0.0",
        "--model.init_args.warmup_steps=1",
        # audio + motion only (the shipped config also has video), and a small DiT
        '--model.init_args.model.init_args.modalities={"audio": {"channels": 80, "rate_hz": 7.5}, '
        '"motion": {"channels": 16, "rate_hz": 7.5}}',
        "--model.init_args.model.init_args.d_model=32", "--model.init_args.model.init_args.depth=1",
        "--model.init_args.model.init_args.num_heads=2")

    from mmgen import Pipeline
    from mmgen.dit.model import MultimodalDiT
    from mmgen.modalities.media import AudioModality, MotionModality

    pipe = Pipeline(
        MultimodalDiT.from_pretrained(out / "dit"),
        {"audio": AudioModality.from_pretrained(out / "audio"), "motion": MotionModality.from_pretrained(out / "motion")},
        defaults={"steps": args.steps, "seconds": args.seconds, "window_seconds": args.seconds},
        info={"name": "tiny", "data": f"ToyDance, {args.clips} clips x {args.seconds:g} s"},
    )
    pipe.save_pretrained(out / "pipeline", overwrite=args.overwrite)
    print(f"pipeline: {out / 'pipeline'} ({pipe})")
    dance = min((data / "clips").glob("*.npz"))
    mmgen("generate", "--pipeline", out / "pipeline", "--task", "dance2music", "--motion", dance,
          "--out", out / "generated", "--no-progress", *again)
    print(f"done: data {data}, logs {out / 'logs'}, pipeline {out / 'pipeline'}, samples {out / 'generated'}")


if __name__ == "__main__":
    main()
