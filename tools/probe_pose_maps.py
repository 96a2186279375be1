"""Probe: do pose maps of the given dance determine the video latents on held-out clips?

A small conv net, shared over positions, from the pose maps of the 6 video frames around each
video latent frame (+ the clip's background colour, which the DiT reads from the music's style)
to that latent frame; trained on a latent cache's clips, scored on 12 held-out ToyDance clips
(seeds 20000+ and 30000+, 4 s). The numbers in docs/pose_maps.md come from

    python tools/probe_pose_maps.py --cache work/toydance/cache --data work/toydance/data [--no-background]
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import decord
import numpy as np
import torch
from eval_tasks import clips_of
from safetensors.torch import load_file

from mmgen.io.render import render_stick_figure
from mmgen.pipeline import Pipeline


def pose_maps(joints: np.ndarray, frames: int, size: int) -> torch.Tensor:
    """[F, 3, size, size] in [0, 1] at 15 Hz, as `PoseMapConditioner` draws them."""
    maps = render_stick_figure(joints, 30.0, size=size, out_fps=15.0, background=(0, 0, 0), floor=False)[:frames]
    return torch.from_numpy(maps).float().div(255).permute(0, 3, 1, 2)


def windows(maps: torch.Tensor, latent_frames: int, background: torch.Tensor | None) -> torch.Tensor:
    """[N, F, 3, S, S] -> [N, T, 18 (+3), S, S]: video frames 2t-2 .. 2t+3 around latent frame t."""
    padded = torch.cat([maps[:, :1].expand(-1, 2, -1, -1, -1), maps, maps[:, -1:].expand(-1, 2, -1, -1, -1)], 1)
    out = torch.stack([padded[:, 2 * t : 2 * t + 6].flatten(1, 2) for t in range(latent_frames)], 1)
    if background is None:
        return out
    size = maps.shape[-1]
    return torch.cat([out, background[:, None, :, None, None].expand(-1, latent_frames, -1, size, size)], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("work/toydance/cache"))
    parser.add_argument("--data", type=Path, default=Path("work/toydance/data"), help="the cache's ToyDance folder")
    parser.add_argument("--pipeline", type=Path, default=Path("checkpoints/toydance"), help="its video VAE")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--no-background", action="store_true", help="leave the background colour out")
    args = parser.parse_args()
    torch.manual_seed(0)
    data: dict[str, torch.Tensor] = {}
    for f in sorted(glob.glob(str(args.cache / "shard-*.safetensors"))):
        data.update(load_file(f))
    ids = sorted({k.split("/")[0] for k in data})
    latents = torch.stack([data[f"{i}/video"] for i in ids]).float()  # [N, T, h, w, C]
    t = latents.shape[1]
    maps = torch.stack([pose_maps(np.load(args.data / "clips" / f"{i}.npz")["joints"], 2 * t, args.size) for i in ids])
    first_frame = [decord.VideoReader(str(args.data / "clips" / f"{i}.mp4"))[0].asnumpy() for i in ids]
    background = None if args.no_background else torch.stack([torch.tensor(f[0, 0] / 255.0).float() for f in first_frame])
    x, y = windows(maps, t, background).flatten(0, 1), latents.flatten(0, 1).permute(0, 3, 1, 2)

    pipe = Pipeline.from_pretrained(args.pipeline)
    held = clips_of(20000, 6, 4.0) + clips_of(30000, 6, 4.0)
    with torch.no_grad():
        held_latents = pipe.modalities["video"].encode(torch.from_numpy(np.stack([c.video[:60] for c in held]))).float()
    held_maps = torch.stack([pose_maps(c.joints[:120], 60, args.size) for c in held])
    held_bg = None if args.no_background else torch.stack([torch.tensor(c.video[0, 0, 0] / 255.0).float() for c in held])
    xh = windows(held_maps, held_latents.shape[1], held_bg).flatten(0, 1)
    yh = held_latents.flatten(0, 1).permute(0, 3, 1, 2)

    layers: list[torch.nn.Module] = [torch.nn.Conv2d(x.shape[1], 64, 3, padding=1), torch.nn.GELU()]
    side = args.size
    while side > y.shape[-1]:
        layers += [torch.nn.Conv2d(64, 64, 4, stride=2, padding=1), torch.nn.GELU()]
        side //= 2
    layers += [torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(64, y.shape[1], 1)]
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    start, rows = time.perf_counter(), []
    for step in range(args.steps + 1):
        idx = torch.randint(0, len(x), (128,))
        loss = (net(x[idx]) - y[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0:
            with torch.no_grad():
                rows.append({"step": step, "train": float(loss), "held_out": float((net(xh) - yh).pow(2).mean())})
            print(json.dumps({**rows[-1], "seconds": round(time.perf_counter() - start)}), flush=True)
    print(json.dumps({"mean_frame_held_out": float((yh - y.mean(0)).pow(2).mean()), "last": rows[-1]}))


if __name__ == "__main__":
    main()
