"""A new task in a few lines: a noise-level mask (`mmgen.Task`), run on the shipped checkpoint.

    python examples/custom_task.py --out out/bridge
    python examples/custom_task.py --audio a.wav --motion a.npz --keep 1 --out out/mine
    python examples/custom_task.py --out /tmp/bridge --steps 2                   # fast (CI)

"music bridge": the dance is GIVEN throughout, the music's first and last `--keep` seconds are
GIVEN, and the model writes the music in between, to the dance. No preset does this (interpolate
would regenerate the dance's middle too) and no model code changes: a Task gives each
(modality, segment) a role, GEN (from noise), GIVEN (the input, never updated) or EDIT(t0).

    task 'music_bridge'
    time (s)   0.0  0.5  1.0  1.5  2.0  2.5  3.0  3.5
    motion        G    G    G    G    G    G    G    G
    audio         G    G    N    N    N    N    G    G
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mmgen import Pipeline, Task
from mmgen.diffusion.tasks import GEN, GIVEN, Span

SHIPPED = "toydance"  # the shipped checkpoint, found in a checkout or an installed wheel


def music_bridge(keep: float) -> Task:
    """The new task: later spans override earlier ones; a negative start counts from the end."""
    return Task.from_roles("music_bridge", {
        "motion": GIVEN,
        "audio": [Span(0.0, None, GEN), Span(0.0, keep, GIVEN), Span(-keep, None, GIVEN)],
    })


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio", help="music (wav); give --motion too. Default: a held-out ToyDance clip")
    p.add_argument("--motion", help="dance .npz (joints [T, 24, 3] + fps)")
    p.add_argument("--toydance-seed", type=int, default=10003, help="which ToyDance clip without inputs")
    p.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4, the training window)")
    p.add_argument("--keep", type=float, default=1.0, help="GIVEN music seconds at each end (default 1)")
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

    task = music_bridge(args.keep)
    print(task.picture(args.seconds, pipe.dit.segment_seconds))
    result = pipe.generate(task, {"audio": audio, "motion": joints}, seconds=args.seconds, steps=args.steps,
                           seed=args.seed)
    paths = result.save(args.out, prefix="bridge", overwrite=args.overwrite)

    made = result.generated["audio"]  # [S] True where the model made the sample
    sr = result.sample_rate
    kept = ~made
    same = np.array_equal(result.audio[0][kept], np.asarray(audio, np.float32)[: made.size][kept])
    print(f"music: the model made {made.sum() / sr:.2f} s in the middle; the {kept.sum() / sr:.2f} s GIVEN at the "
          f"ends {'equal the input exactly' if same else 'DIFFER from the input'}; the dance is the input")
    for p in paths:
        print(f"  {p}")


if __name__ == "__main__":
    from mmgen.cli import USER_ERRORS

    try:
        main()
    except USER_ERRORS as err:  # bad input: one line naming the file, exit 2, as the CLI does
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
