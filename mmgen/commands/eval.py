"""`mmgen eval GEN_DIR REF_DIR`: metrics of generated files against references, as a table and JSON.

Files pair by name (x.wav / x.npz on both sides); see `mmgen.evaluation.folder` for which metrics
each pair gets. Writes GEN_DIR/metrics.json unless --out is given.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gen_dir", help="folder of generated .wav / .npz files (e.g. `mmgen generate --out`)")
    parser.add_argument("ref_dir", help="folder of reference files with the same names")
    parser.add_argument("--out", help="JSON file to write (default GEN_DIR/metrics.json)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from mmgen.evaluation.folder import evaluate_folder, format_table

    result = evaluate_folder(args.gen_dir, args.ref_dir, out=args.out, progress=not args.no_progress)
    print(format_table(result), end="")
    print(f"wrote {result['path']}")
    return 0
