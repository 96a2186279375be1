"""Train the shipped ToyDance checkpoint from scratch on CPU: data -> VAEs, vocoder, sync encoder ->
latent cache (+ sync features, pose maps) -> DiT -> DiT tune -> DiT task -> DiT with the sync
stream -> DiT with the wide video head -> DiT with pose maps.

The motion and video VAEs train twice: whole (vae_motion, vae_video), then their decoders alone
(vae_motion_decoder, vae_video_decoder), which leaves the latents as they were and rebuilds joints
and frames from them more closely. The DiT trains three
times: on the full data (dit), resumed with one modality left out of half the batches (dit_tune),
and as a new run from dit_tune's EMA weights on mostly conditional examples (dit_task); then a
fourth time from dit_task's weights with the video sync stream added (dit_sync; the sync encoder
is pre-trained on its own by contrastive audio-visual sync, stage sync), and a fifth time from
dit_sync's weights with a wide read-out for the video tokens and per-patch partner streams
(dit_wide; docs/experiments.md), and a sixth time from dit_wide's weights with the video drawn
from pose maps of the given dance (dit_pose; docs/pose_maps.md).

    python tools/train_toydance.py                       # every stage (minutes: checkpoints/toydance/README.md)
    python tools/train_toydance.py --stages dit,assemble # resume from a stage
    python tools/train_toydance.py --scale 0.02          # a smoke run (2% of the steps)

Every stage is an ordinary `mmgen` command (`toydance make`, `fit -c configs/toydance/...`,
`cache`), so the same run is reproducible by hand; this script only chains them, times them and
records the times in `work/toydance/training.json` (copied into pipeline.yaml's info at assembly). Seeds: data seed 1, `seed_everything: 0`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "toydance"
WORK = Path("work/toydance")
CHECKPOINT = Path("checkpoints/toydance")

# stage -> (config files layered in order, default max_steps)
FIT_STAGES = {
    "vae_audio": (("vae_audio.yaml",), 1500),
    "vocoder": (("vocoder.yaml",), 1500),
    "vae_motion": (("vae_motion.yaml",), 1000),
    "vae_motion_decoder": (("vae_motion.yaml", "vae_motion_decoder.yaml"), 5000),  # same latents, better joints
    "vae_video": (("vae_video.yaml",), 1000),
    "vae_video_decoder": (("vae_video.yaml", "vae_video_decoder.yaml"), 1500),  # same latents, sharper frames
    "sync": (("sync.yaml",), 400),
    "dit": (("dit.yaml",), 10000),
    "dit_tune": (("dit.yaml", "dit_tune.yaml"), 6000),  # steps beyond the dit stage's
    "dit_task": (("dit.yaml", "dit_task.yaml"), 3000),  # a new run from dit_tune's export
    "dit_sync": (("dit.yaml", "dit_task.yaml", "dit_sync.yaml"), 3000),  # from dit_task's export
    "dit_wide": (("dit.yaml", "dit_task.yaml", "dit_sync.yaml", "dit_wide.yaml"), 3000),  # from dit_sync's export
    "dit_pose": (("dit.yaml", "dit_task.yaml", "dit_sync.yaml", "dit_wide.yaml", "dit_pose.yaml"), 2000),  # from dit_wide's
}
# stage -> the stage whose newest Lightning checkpoint it resumes (same run, new settings)
RESUMES = {"dit_tune": "dit"}
DIT_STAGES = ("dit", "dit_tune", "dit_task", "dit_sync", "dit_wide", "dit_pose")  # they read the latent cache
TRAINING_STAGES = (
    "data", "vae_audio", "vocoder", "vae_motion", "vae_motion_decoder", "vae_video", "vae_video_decoder", "sync",
    "cache",
    *DIT_STAGES,
)
STAGES = (*TRAINING_STAGES, "assemble", "report")  # only training stages are timed into training.json


def clips_read(stage: str) -> int | None:
    """How many clips `stage` trained on: the dataset's size for the data, VAE and cache stages, the
    latent cache's for the DiT stages (the DiT may see more clips than the VAEs were trained on)."""
    if stage in DIT_STAGES:
        manifest = ROOT / WORK / "cache" / "manifest.json"
        return len(json.loads(manifest.read_text())["items"]) if manifest.is_file() else None
    if stage in TRAINING_STAGES:
        from mmgen.data.manifest import read_manifest_records

        data = ROOT / WORK / "data"
        return len(read_manifest_records(data)) if (data / "manifest.jsonl").is_file() else None
    return None


def describe_data(stages: dict[str, dict]) -> str:
    """One line for the checkpoint: clip counts per part, from the training record."""
    def count(*names: str) -> str:
        seen = sorted({stages[n]["clips"] for n in names if n in stages and stages[n].get("clips")})
        return "/".join(str(c) for c in seen) or "?"

    vaes = count("vae_audio", "vocoder", "vae_motion", "vae_motion_decoder", "vae_video", "vae_video_decoder", "sync")
    dit = count(*DIT_STAGES)
    clips = f"{dit} clips" if vaes == dit != "?" else f"VAEs on {vaes} clips, DiT on {dit} clips"
    return f"ToyDance (`mmgen toydance make --seed 1`), {clips} x 8 s"


def mmgen(*args: str) -> None:
    command = [sys.executable, "-m", "mmgen.cli", *args]
    print("$", " ".join(shlex.quote(a) for a in command[2:]), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def assemble() -> None:
    """Tie the trained parts into one Pipeline folder (pipeline.yaml + the parts' folders), with
    parameters stored in float16 (half the download; loading casts back to float32)."""
    import torch

    from mmgen.conditioning.encoder import ConditionEncoder
    from mmgen.core.pretrained import configs_relative_to, from_yaml_value, load_weights
    from mmgen.dit.model import MultimodalDiT
    from mmgen.modalities.media import AudioModality, MotionModality, VideoModality
    from mmgen.pipeline import Pipeline

    ckpt = ROOT / CHECKPOINT
    modalities = {
        "audio": AudioModality.from_pretrained(ckpt / "audio"),
        "motion": MotionModality.from_pretrained(ckpt / "motion"),
        "video": VideoModality.from_pretrained(ckpt / "video"),
    }
    defaults = {
        "steps": 25, "sampler": "dpmpp2m", "guidance": {"motion": 2.0, "audio": 2.0, "video": 2.0},
        # cross-guidance through every step (not MoMu's half), from the previous step's partner
        # estimates (one model call per step, not two): on 3 seeds x 56 held-out clips it lifts
        # video->audio beat F 0.43 -> 0.56 (tempo right 0.43 -> 0.60) and joint BAS 0.62 -> 0.65
        # (0.60 without)
        "cross_guidance": {"switch": 1.0, "scale": 2.0, "estimate": "previous"},
        "seconds": 4.0, "window_seconds": 4.0, "hop_seconds": 2.0,
        # no via-motion bridge for video2audio: with the sync stream the music reads the video's
        # timing directly (24 held-out clips: beat F 0.81 direct, docs/video_vae.md)
        "task_args": {},
    }
    training = json.loads((ROOT / WORK / "training.json").read_text())
    # the trained condition encoder names its frozen sync encoder as the training config did
    # (checkpoints/toydance/sync); inside the pipeline it names it relative to its own folder
    trained = ROOT / WORK / "condition"
    spec = yaml.safe_load((trained / "config.yaml").read_text())
    spec["init_args"]["conditioners"]["sync"]["init_args"]["encoder"] = "../sync"
    with configs_relative_to(ckpt / "condition"):
        condition = from_yaml_value(spec)
    assert isinstance(condition, ConditionEncoder)
    load_weights(condition, trained)
    pipe = Pipeline(MultimodalDiT.from_pretrained(ckpt / "dit"), modalities, condition=condition.eval(), defaults=defaults,
                    info={"name": "toydance", "training": training, "data": describe_data(training["stages"])})
    pipe.save_pretrained(ckpt, dtype=torch.float16, overwrite=True)


def report() -> None:
    """Run the demo on the assembled checkpoint and write its README (training time + metrics)."""
    import time as clock

    from mmgen.demo import DemoSettings, format_per_clip, format_table, run_demo
    from mmgen.pipeline import Pipeline

    ckpt = ROOT / CHECKPOINT
    pipe = Pipeline.from_pretrained(ckpt)
    start = clock.perf_counter()
    rows = run_demo(pipe, ROOT / WORK / "demo", DemoSettings(), overwrite=True)
    demo_seconds = clock.perf_counter() - start
    training = json.loads((ROOT / WORK / "training.json").read_text())["stages"]
    times = "\n".join(
        f"| {k} | {v['seconds'] / 60:.1f} | {v.get('clips', '')} | {v.get('note', '')} |"
        for k, v in training.items()
    )
    decoder = (
        "a Vocos-style vocoder" if (ckpt / "audio" / "vocoder").is_dir()
        else f"Griffin-Lim ({pipe.modalities['audio'].codec.griffin_lim_iters} iterations; no vocoder stage was run)"
    )
    rates = {name: spec.rate_hz for name, spec in pipe.dit.specs.items()}
    size = sum(f.stat().st_size for f in ckpt.rglob("*.safetensors")) / 2**20
    readme = f"""# ToyDance checkpoint

One MultimodalDiT over audio (mel VAE, {rates['audio']:g} Hz), motion (kinematic VAE, {rates['motion']:g} Hz) and video (causal
video VAE, {rates['video']:g} Hz) latents, trained from scratch on CPU on synthetic data,
{describe_data(training)}, by `python tools/train_toydance.py` (stages below). {size:.1f} MB of safetensors
(parameters in float16). Mel spectrograms become audio through {decoder}.
Model card (intended use, limitations, license, how to load): `docs/model_card_toydance.md`.

## Training time (2 CPU cores, minutes; shared with other jobs during the session that made it)

| stage | minutes | clips | note |
|---|---|---|---|
{times}

## `mmgen demo` on held-out clips ({demo_seconds:.0f} s for the whole demo)

{format_table(rows)}

Per held-out clip (style, true tempo):

{format_per_clip(rows, json.loads((ROOT / WORK / "demo" / "metrics.json").read_text())["clips"])}
"""
    from mmgen.core.fileio import atomic_files

    with atomic_files(ckpt, overwrite=True) as tmp:  # recorded as mmgen's, so the next assemble may replace it
        (tmp / "README.md").write_text(readme)


def newest_checkpoint(stage: str) -> Path:
    found = sorted((ROOT / WORK / "logs" / stage).glob("version_*/checkpoints/*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"no checkpoint of stage {stage!r} under {WORK / 'logs' / stage}; run that stage first")
    return found[-1]


def run_stage(stage: str, args: argparse.Namespace) -> None:
    if stage == "data":
        mmgen("toydance", "make", "--out", str(WORK / "data"), "--clips", str(args.clips), "--seconds", "8", "--seed", "1",
              "--overwrite")
    elif stage in FIT_STAGES:
        configs, steps = FIT_STAGES[stage]
        steps = args.steps.get(stage, steps)
        if stage in RESUMES:  # the resumed run's max_steps counts from its first stage's start
            steps += args.steps.get(RESUMES[stage], FIT_STAGES[RESUMES[stage]][1])
        files = [a for c in ("trainer_cpu.yaml", *configs) for a in ("-c", str(CONFIGS / c))]
        resume = ["--ckpt_path", str(newest_checkpoint(RESUMES[stage]))] if stage in RESUMES else []
        mmgen(  # the stages' exports replace what an earlier run of this script wrote (never other folders)
            "fit", *files, f"--trainer.max_steps={max(2, round(steps * args.scale))}",
            f"--trainer.logger.init_args.name={stage}", "--model.init_args.overwrite_export=true", *resume,
        )
    elif stage == "cache":
        mmgen(
            "cache", "--data", str(WORK / "data"), "--out", str(WORK / "cache"),
            "--vae", f"audio={CHECKPOINT / 'audio'}", "--vae", f"motion={CHECKPOINT / 'motion'}",
            "--vae", f"video={CHECKPOINT / 'video'}", "--condition", str(CONFIGS / "dit_pose.yaml"), "--overwrite",
        )
    elif stage == "assemble":
        assemble()
    elif stage == "report":
        report()
    else:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stage's max_steps (smoke runs)")
    parser.add_argument("--clips", type=int, default=240, help="ToyDance training clips of 8 s")
    parser.add_argument("--steps", default="", help="per-stage max_steps overrides, e.g. vae_video=600,dit=3000")
    args = parser.parse_args()
    try:
        args.steps = {k.strip(): int(v) for k, v in (item.split("=") for item in args.steps.split(",") if item.strip())}
    except ValueError:
        parser.error(f"--steps wants stage=int pairs separated by commas, got {args.steps!r}")
    if set(args.steps) - set(FIT_STAGES):
        parser.error(f"--steps names unknown stages {sorted(set(args.steps) - set(FIT_STAGES))}; fit stages: {', '.join(FIT_STAGES)}")
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")
    from mmgen.core.fileio import atomic_path

    record_path = ROOT / WORK / "training.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"stages": {}}
    for stage in stages:
        start = time.perf_counter()
        run_stage(stage, args)
        seconds = round(time.perf_counter() - start, 1)
        print(f"== {stage}: {seconds} s", flush=True)
        if stage in TRAINING_STAGES:
            record["stages"][stage] = {"seconds": seconds, "scale": args.scale, "clips": clips_read(stage)}
            if stage in args.steps:
                record["stages"][stage]["max_steps"] = args.steps[stage]
            with atomic_path(record_path) as tmp:
                tmp.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
