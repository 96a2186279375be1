"""Inference precision on the shipped ToyDance checkpoint: speed and quality of bf16 / fp16 vs fp32.

    python bench/inference_dtype.py [--steps 25] [--repeats 3] [--threads 2] [--device cpu]

For each task, every dtype runs the same seeded generate calls in this one process (a warm-up
first), so the time ratios compare like with like. Quality is measured against the fp32 output
of the same call: relative RMSE of the sampled latents, log-mel L1 of the audio (natural log),
and the mean per-joint position difference of the motion (mm). fp16 on CPU is emulated by
PyTorch and usually slower than fp32; use it on GPUs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mmgen.data.toydance import generate_clip
from mmgen.pipeline import Pipeline


def log_mel(audio: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=audio.astype(np.float32), sr=sr, n_fft=1024, hop_length=256, n_mels=80)
    return np.log(np.maximum(mel, 1e-5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = Pipeline.from_pretrained("toydance", device=args.device)
    clip = generate_clip(10_000, seconds=args.seconds)
    calls = {"dance2music": {"motion": clip.joints}, "music2dance": {"audio": clip.audio}}
    print(f"ToyDance checkpoint, {args.steps} steps, {args.seconds:g} s clips, device {args.device}, "
          f"{args.threads} threads, best of {args.repeats}\n")
    print("| task | dtype | seconds per call | time vs fp32 | latent rel. RMSE | audio log-mel L1 | motion diff (mm) |")
    print("|---|---|---|---|---|---|---|")
    for task, given in calls.items():
        ref = None
        ref_time = None
        for name in ("fp32", "bf16", "fp16"):
            def run(name: str = name):
                return pipe.generate(task, given, steps=args.steps, seed=0, progress=False, dtype=name)

            run()  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = run()
                times.append(time.perf_counter() - t0)
            best = min(times)
            if ref is None:
                ref, ref_time = out, best
            z = "audio" if task == "dance2music" else "motion"
            rel = float((out.latents[z] - ref.latents[z]).norm() / ref.latents[z].norm())
            mel = float(np.abs(log_mel(out.audio[0], out.sample_rate) - log_mel(ref.audio[0], ref.sample_rate)).mean())
            joints = float(np.linalg.norm(out.joints - ref.joints, axis=-1).mean() * 1000)
            print(f"| {task} | {name} | {best:.2f} | {best / ref_time:.2f} | {rel:.4f} | {mel:.4f} | {joints:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
