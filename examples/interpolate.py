"""Music and dance between two given ends: `interpolate` with the shipped ToyDance checkpoint.

    python examples/interpolate.py --out out/interpolate                          # a held-out ToyDance clip
    python examples/interpolate.py --audio a.wav --motion a.npz --head 1 --tail 1 --out out/mine
    python examples/interpolate.py --out /tmp/interp --steps 2                    # fast (CI)

The first `--head` and last `--tail` seconds of both the music and the dance are GIVEN (t = 0);
the model generates the middle of both (t: 1 -> 0). What the inputs hold in the middle is ignored
(mmgen replaces it with a straight line between the ends before encoding), so any placeholder works.
Given frames come back bit-exact. Without inputs the script takes a held-out ToyDance clip, writes
it to OUT/input.wav and OUT/input.npz, and scores the generated middle of the dance against the
clip's true middle and against a straight-line blend of the ends (`interpolation_error`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmgen import Pipeline

SHIPPED = "toydance"  # the shipped checkpoint, found in a checkout or an installed wheel


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio", help="music (wav); give --motion too. Default: a held-out ToyDance clip")
    p.add_argument("--motion", help="dance .npz (joints [T, 24, 3] + fps)")
    p.add_argument("--toydance-seed", type=int, default=10002, help="which ToyDance clip without inputs")
    p.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4, the training window)")
    p.add_argument("--head", type=float, default=1.0, help="GIVEN seconds at the start (default 1)")
    p.add_argument("--tail", type=float, default=1.0, help="GIVEN seconds at the end (default 1)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the pipeline's, 25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pipeline", default=SHIPPED, help="folder or hub id (default: shipped ToyDance)")
    p.add_argument("--out", required=True, help="output folder (new, empty, or this script's earlier output)")
    p.add_argument("--overwrite", action="store_true", help="replace files an earlier run wrote in --out")
    args = p.parse_args()
    if (args.audio is None) != (args.motion is None):
        p.error("give both --audio and --motion, or neither (a ToyDance clip)")
    if args.audio is not None and not Path(args.audio).is_file():
        p.error(f"--audio {args.audio}: no such file")
    if args.motion is not None and not Path(args.motion).is_file():
        p.error(f"--motion {args.motion}: no such file")
    return args


def main() -> None:
    args = parse_args()
    pipe = Pipeline.from_pretrained(args.pipeline)
    if args.audio:
        from mmgen.io.read import read_audio, read_motion

        audio = read_audio(args.audio, pipe.modalities["audio"])  # [S] at the model's sample rate
        joints = read_motion(args.motion, pipe.modalities["motion"])  # [T, 24, 3] at the model's fps
    else:
        from mmgen.core.fileio import atomic_files
        from mmgen.data.toydance.clip import generate_clip
        from mmgen.io.export import save_motion_npz, save_wav

        clip = generate_clip(args.toydance_seed, seconds=args.seconds, render_video=False)
        audio, joints = clip.audio, clip.joints
        with atomic_files(args.out, "example inputs", overwrite=args.overwrite) as tmp:
            save_wav(tmp / "input.wav", audio, clip.sample_rate)
            save_motion_npz(tmp / "input.npz", joints, clip.fps)
        print(f"clip: ToyDance seed {args.toydance_seed}, {clip.style} at {clip.bpm:g} bpm -> {args.out}/input.wav, input.npz")

    task = pipe.task("interpolate", given=["audio", "motion"], head=args.head, tail=args.tail)
    print(task.picture(args.seconds, pipe.dit.segment_seconds))
    result = pipe.generate(task, {"audio": audio, "motion": joints}, seconds=args.seconds, steps=args.steps,
                           seed=args.seed)
    paths = result.save(args.out, prefix="interpolated", overwrite=args.overwrite)

    made = result.generated["motion"]  # [T] True where the model made the frame
    print(f"generated {made.sum()} of {made.size} dance frames and "
          f"{result.generated['audio'].mean():.0%} of the music; the rest is the input, bit-exact")
    if not args.audio:  # ToyDance: the true middle is known
        from mmgen.evaluation.measures import interpolation_error

        score = interpolation_error(result.joints[0], joints[: result.joints.shape[1]], made)
        print(f"dance middle: MPJPE {score['error']:.3f} m vs the true middle; straight-line blend of the ends "
              f"{score['blend_error']:.3f} m (ratio {score['ratio']:.2f})")
    for p in paths:
        print(f"  {p}")


if __name__ == "__main__":
    from mmgen.cli import USER_ERRORS

    try:
        main()
    except USER_ERRORS as err:  # bad input: one line naming the file, exit 2, as the CLI does
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
