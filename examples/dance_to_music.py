"""Music for a dance: `dance2music` with the shipped ToyDance checkpoint.

    python examples/dance_to_music.py --out out/dance_to_music                      # a held-out ToyDance dance
    python examples/dance_to_music.py --motion my_dance.npz --out out/mine --export bvh
    python examples/dance_to_music.py --out /tmp/d2m --seconds 4 --steps 2          # fast (CI)

A dance is an .npz with `joints` [T, 24, 3] (SMPL-24 order, y-up, metres) and `fps`. Without
`--motion` the script draws a ToyDance dance the checkpoint never trained on (seed 10000+) and
writes it to OUT/input_dance.npz. The music comes back as OUT/music.wav, beside the dance as given
(music.npz), a stick-figure mp4 with the music, and a mel PNG with the music's and the dance's beats.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmgen import Pipeline

SHIPPED = "toydance"  # the shipped checkpoint, found in a checkout or an installed wheel


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--motion", help="dance .npz (joints [T, 24, 3] + fps); default: a held-out ToyDance dance")
    p.add_argument("--toydance-seed", type=int, default=10000, help="which ToyDance dance without --motion")
    p.add_argument("--seconds", type=float, help="clip length (default: the whole dance)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the pipeline's, 25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", default="", help="motion exports besides the npz: bvh, smpl or bvh,smpl")
    p.add_argument("--pipeline", default=SHIPPED, help="folder or hub id (default: shipped ToyDance)")
    p.add_argument("--out", required=True, help="output folder (new, empty, or this script's earlier output)")
    p.add_argument("--overwrite", action="store_true", help="replace files an earlier run wrote in --out")
    args = p.parse_args()
    if args.motion is not None and not Path(args.motion).is_file():
        p.error(f"--motion {args.motion}: no such file")
    return args


def main() -> None:
    args = parse_args()
    pipe = Pipeline.from_pretrained(args.pipeline)
    motion = pipe.modalities["motion"]
    if args.motion:
        from mmgen.io.read import read_motion

        joints = read_motion(args.motion, motion)  # [T, 24, 3] at the model's fps
    else:
        from mmgen.core.fileio import atomic_files
        from mmgen.data.toydance.clip import generate_clip
        from mmgen.io.export import save_motion_npz

        clip = generate_clip(args.toydance_seed, seconds=args.seconds or 8.0, render_video=False)
        joints = clip.joints  # ToyDance's 30 fps is the checkpoint's motion rate
        with atomic_files(args.out, "example inputs", overwrite=args.overwrite) as tmp:
            save_motion_npz(tmp / "input_dance.npz", joints, clip.fps, beat_times=clip.beat_times, bpm=clip.bpm)
        print(f"dance: ToyDance seed {args.toydance_seed}, {clip.style} at {clip.bpm:g} bpm -> {args.out}/input_dance.npz")

    result = pipe.generate("dance2music", {"motion": joints}, seconds=args.seconds, steps=args.steps, seed=args.seed)
    export = [f for f in args.export.split(",") if f]
    paths = result.save(args.out, prefix="music", export=export, overwrite=args.overwrite)

    from mmgen.evaluation import music_dance_sync

    sync = music_dance_sync(result.audio[0], result.sample_rate, result.joints[0], result.fps)
    print(f"{result.seconds:g} s of music for {len(joints) / motion.raw_rate:g} s of dance; "
          f"beat F vs the dance's beats {sync['beat_f']:.2f}, music {sync['music_bpm']:.0f} bpm, "
          f"dance {sync['dance_bpm']:.0f} bpm")
    for path in paths:
        print(f"  {path}")


if __name__ == "__main__":
    from mmgen.cli import USER_ERRORS

    try:
        main()
    except USER_ERRORS as err:  # bad input: one line naming the file, exit 2, as the CLI does
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
