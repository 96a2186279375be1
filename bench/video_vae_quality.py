"""Video VAE round trip on held-out ToyDance clips: does it keep the beat and the picture?

For each clip (two validation sets, never the demo's clips): frames -> encode -> decode, then
  * beat alignment: `video_beat_alignment` (frame-difference minima vs the music's beats, the
    demo's audio2video measure) of the raw frames and of the round trip;
  * PSNR (dB) and SSIM (11-px gaussian window, torchmetrics) of the round trip vs the raw frames.
Every VAE folder given is scored on the same clips, and a PNG strip shows raw and round-trip
frames side by side (one row per VAE).

    python bench/video_vae_quality.py --vae old=/tmp/old_video --vae new=checkpoints/toydance/video \
        --clips 24 --png docs/images/video_vae_round_trip.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from mmgen.data.toydance import generate_clip
from mmgen.evaluation.measures import video_beat_alignment
from mmgen.modalities.media import VideoModality

SETS = (20000, 30000)


def held_out(clips: int, seconds: float) -> list:
    """`clips` per validation set, tempi spread over the range (`tempo_position`)."""
    return [
        generate_clip(s + i, seconds=seconds, tempo_position=i / max(1, clips - 1))
        for s in SETS
        for i in range(clips)
    ]


@torch.no_grad()
def round_trip(modality: VideoModality, frames: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(frames)[None]  # [1, F, H, W, 3] uint8
    return modality.decode(modality.encode(x), num_frames=frames.shape[0])[0].cpu().numpy()


def picture_scores(raw: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    a = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0  # [F, 3, H, W]
    b = torch.from_numpy(raw).permute(0, 3, 1, 2).float() / 255.0
    psnr = float(peak_signal_noise_ratio(a, b, data_range=1.0))
    ssim = float(structural_similarity_index_measure(a, b, data_range=1.0))
    return psnr, ssim


def save_strip(path: Path, raw: np.ndarray, outs: dict[str, np.ndarray], fps: float, seconds: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {"raw": raw, **outs}
    fig, axes = plt.subplots(len(rows), len(seconds), figsize=(1.3 * len(seconds), 1.4 * len(rows)))
    for r, (name, frames) in enumerate(rows.items()):
        for c, s in enumerate(seconds):
            ax = axes[r, c]
            ax.imshow(frames[min(int(round(s * fps)), len(frames) - 1)])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title(f"{s:.2f} s", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", action="append", required=True, help="NAME=FOLDER of a saved VideoModality")
    parser.add_argument("--clips", type=int, default=24, help="clips per validation set")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--png", type=Path, default=None, help="write a strip of frames here")
    args = parser.parse_args()
    vaes = {}
    for item in args.vae:
        name, _, folder = item.partition("=")
        if not folder:
            parser.error(f"--vae wants NAME=FOLDER, got {item!r}")
        vaes[name] = VideoModality.from_pretrained(folder).eval()
    clips = held_out(args.clips, args.seconds)
    raw_align = [video_beat_alignment(c.video, c.video_fps, c.beat_times) for c in clips]
    print(f"{len(clips)} held-out clips x {args.seconds:g} s (sets {SETS}); raw beat alignment {np.nanmean(raw_align):.3f}")
    print("| VAE | latent Hz | beat alignment (raw 0.000) | PSNR dB | SSIM |".replace("0.000", f"{np.nanmean(raw_align):.3f}"))
    print("|---|---|---|---|---|")
    strips = {}
    for name, modality in vaes.items():
        align, psnr, ssim = [], [], []
        for i, c in enumerate(clips):
            out = round_trip(modality, c.video)
            align.append(video_beat_alignment(out, c.video_fps, c.beat_times))
            p, s = picture_scores(c.video, out)
            psnr.append(p)
            ssim.append(s)
            if i == 0:
                strips[name] = out
        rate = modality.spec.rate_hz
        print(f"| {name} | {rate:g} | {np.nanmean(align):.3f} | {np.mean(psnr):.2f} | {np.mean(ssim):.3f} |", flush=True)
    if args.png is not None:
        c = clips[0]
        save_strip(args.png, c.video, strips, c.video_fps, [0.5 + k / 7.5 for k in range(8)])
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
