"""A soundtrack for a video: `video2audio` with the shipped ToyDance checkpoint.

    python examples/soundtrack_a_video.py --out out/soundtrack                    # a held-out ToyDance video
    python examples/soundtrack_a_video.py --video dancer.mp4 --seconds 4 --out out/mine
    python examples/soundtrack_a_video.py --out /tmp/v2a --seconds 4 --steps 2    # fast (CI)

The video is read at the model's frame rate and frame size (`mmgen.io.read.read_video_file`).
The shipped checkpoint generates the dance it sees alongside the music (`via motion`, its default),
because music locks onto a generated dance better than onto video latents directly; both come back.
Without `--video` the script renders a ToyDance stick-figure video the checkpoint never trained on
and writes it to OUT/input_video.mp4. Output: OUT/soundtrack.wav and OUT/soundtrack.mp4 (the video
with the music muxed), the dance (soundtrack.npz) and the mel PNG.

The ToyDance checkpoint knows 64x64 stick figures on a plain background, not real footage: on
your own video expect music with a tempo, not one that follows the picture (docs/model_card_toydance.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmgen import Pipeline

SHIPPED = "toydance"  # the shipped checkpoint, found in a checkout or an installed wheel


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", help="video file (mp4); default: a held-out ToyDance video")
    p.add_argument("--toydance-seed", type=int, default=10001, help="which ToyDance video without --video")
    p.add_argument("--seconds", type=float, help="clip length (default: the whole video)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the pipeline's, 25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pipeline", default=SHIPPED, help="folder or hub id (default: shipped ToyDance)")
    p.add_argument("--out", required=True, help="output folder (new, empty, or this script's earlier output)")
    p.add_argument("--overwrite", action="store_true", help="replace files an earlier run wrote in --out")
    args = p.parse_args()
    if args.video is not None and not Path(args.video).is_file():
        p.error(f"--video {args.video}: no such file")
    return args


def main() -> None:
    args = parse_args()
    pipe = Pipeline.from_pretrained(args.pipeline)
    video = pipe.modalities["video"]
    path = args.video
    if path is None:
        from mmgen.core.fileio import atomic_files
        from mmgen.data.toydance.clip import generate_clip
        from mmgen.io.export import save_video

        clip = generate_clip(args.toydance_seed, seconds=args.seconds or 4.0, render_video=True)
        with atomic_files(args.out, "example inputs", overwrite=args.overwrite) as tmp:
            save_video(tmp / "input_video.mp4", clip.video, clip.video_fps)  # no sound: that is what we make
        path = Path(args.out) / "input_video.mp4"
        print(f"video: ToyDance seed {args.toydance_seed}, {clip.style} at {clip.bpm:g} bpm -> {path}")

    from mmgen.io.read import read_video_file

    frames = read_video_file(path, video)  # uint8 [F, H, W, 3] at the model's fps and size
    result = pipe.generate("video2audio", {"video": frames}, seconds=args.seconds, steps=args.steps, seed=args.seed)
    paths = result.save(args.out, prefix="soundtrack", overwrite=args.overwrite)
    print(f"{result.audio.shape[1] / result.sample_rate:g} s of music for {len(frames) / video.raw_rate:g} s of "
          f"video ({len(frames)} frames at {video.raw_rate:g} fps)")
    for p in paths:
        print(f"  {p}")


if __name__ == "__main__":
    from mmgen.cli import USER_ERRORS

    try:
        main()
    except USER_ERRORS as err:  # bad input: one line naming the file, exit 2, as the CLI does
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
