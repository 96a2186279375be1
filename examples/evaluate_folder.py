"""Score a folder of generated dances (and music) against references: `mmgen.evaluation.evaluate_folder`.

    python examples/evaluate_folder.py GEN_DIR REF_DIR                    # your files, paired by name
    python examples/evaluate_folder.py --out out/eval                     # make a ToyDance set first
    python examples/evaluate_folder.py --out /tmp/eval --clips 2 --seconds 4 --steps 2   # fast (CI)

Files pair by stem (x.wav / x.npz in both folders). Per pair, what the two sides hold decides the
metrics: a generated dance against the reference music gives Bailando's BAS and the beat
F-measure (m2d_*), generated music against the reference dance gives d2m_*, music against music
music_*, and dances get EDGE's PFC. It writes GEN_DIR/metrics.json and prints the table; the same
as `mmgen eval GEN_DIR REF_DIR`. For the AIST++ protocol (FID_k, FID_g, Div, BAS as FACT /
Bailando / EDGE report them) use `mmgen eval --protocol aistpp` (docs/evaluation.md).

Without folders the script writes `--clips` held-out ToyDance clips (music + dance) to
OUT/references, makes a dance for each clip's music with the shipped checkpoint (`music2dance`,
one batch) into OUT/generated, and scores them, beside the true dances scored the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmgen import Pipeline

SHIPPED = "toydance"  # the shipped checkpoint, found in a checkout or an installed wheel


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gen_dir", nargs="?", help="folder of generated .wav / .npz files")
    p.add_argument("ref_dir", nargs="?", help="folder of reference files with the same names")
    p.add_argument("--out", help="where the ToyDance set goes without folders")
    p.add_argument("--clips", type=int, default=4, help="ToyDance clips without folders (default 4)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per ToyDance clip (default 4)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the pipeline's, 25)")
    p.add_argument("--pipeline", default=SHIPPED, help="folder or hub id (default: shipped ToyDance)")
    p.add_argument("--overwrite", action="store_true", help="replace files an earlier run wrote")
    args = p.parse_args()
    if (args.gen_dir is None) != (args.ref_dir is None):
        p.error("give GEN_DIR and REF_DIR, or neither (with --out)")
    if args.gen_dir is None and args.out is None:
        p.error("without GEN_DIR / REF_DIR, --out says where the ToyDance set goes")
    for folder in (args.gen_dir, args.ref_dir):
        if folder is not None and not Path(folder).is_dir():
            p.error(f"{folder}: no such folder")
    if args.clips < 1:
        p.error(f"--clips must be at least 1, got {args.clips}")
    return args


def make_toydance_set(args: argparse.Namespace) -> tuple[Path, Path]:
    """References: held-out ToyDance music + dance per clip. Generated: music2dance on that music."""
    import numpy as np

    from mmgen.core.fileio import atomic_files
    from mmgen.data.toydance.clip import generate_clip
    from mmgen.io.export import save_motion_npz, save_wav

    out = Path(args.out)
    # tempi spread over each style's range, as the demo's held-out clips
    clips = [generate_clip(20000 + i, seconds=args.seconds, render_video=False,
                           tempo_position=i / max(1, args.clips - 1)) for i in range(args.clips)]
    pipe = Pipeline.from_pretrained(args.pipeline)
    music = np.stack([c.audio for c in clips])  # [B, S]: one batch, one call
    result = pipe.generate("music2dance", {"audio": music}, seconds=args.seconds, steps=args.steps, seed=0)
    paths = result.save(out / "generated", prefix="clip", overwrite=args.overwrite)
    with atomic_files(out / "references", "references", overwrite=args.overwrite) as tmp:
        for name, clip in zip(result.names("clip"), clips, strict=True):  # the generated files' names
            save_wav(tmp / f"{name}.wav", clip.audio, clip.sample_rate)
            save_motion_npz(tmp / f"{name}.npz", clip.joints, clip.fps, beat_times=clip.beat_times, bpm=clip.bpm)
    print(f"{len(clips)} references in {out / 'references'}; {len(paths)} generated files in {out / 'generated'}")
    return out / "generated", out / "references"


def main() -> None:
    args = parse_args()
    from mmgen.evaluation.folder import evaluate_folder, format_table

    if args.gen_dir is None:
        gen_dir, ref_dir = make_toydance_set(args)
        # the ground truth scored the same way: each true dance against its own music
        truth = evaluate_folder(ref_dir, ref_dir, out=Path(args.out) / "truth_metrics.json", progress=False,
                                overwrite=args.overwrite)
        print("ground truth (true dance vs its music):")
        print(format_table(truth))
    else:
        gen_dir, ref_dir = Path(args.gen_dir), Path(args.ref_dir)
    result = evaluate_folder(gen_dir, ref_dir, progress=False, overwrite=args.overwrite)
    print(f"generated ({len(result['items'])} pairs):")
    print(format_table(result))
    print(f"metrics per pair and their means: {result['path']}")


if __name__ == "__main__":
    from mmgen.cli import USER_ERRORS

    try:
        main()
    except USER_ERRORS as err:  # bad input: one line naming the file, exit 2, as the CLI does
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
