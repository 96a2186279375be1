"""`mmgen eval GEN_DIR REF_DIR`: metrics of generated files against references, as a table and JSON.

Files pair by name (x.wav / x.npz on both sides); see `mmgen.evaluation.folder` for which metrics
each pair gets. Writes GEN_DIR/metrics.json unless --out is given.

`mmgen eval --protocol aistpp GEN_DIR --gt AIST_ROOT --smpl-dir SMPL`: the AIST++ music-to-dance
table (FID_k, FID_g, Div_k, Div_g, BAS) as FACT, Bailando, EDGE and LODGE compute it, from mmgen
.npz, Bailando / EDGE / SMPL .pkl or .npy files (`mmgen.evaluation.aistpp`). Writes
GEN_DIR/aistpp_metrics.json and .md unless --out is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
mmgen eval out/ data/toydance/clips          generated files against references of the same names
mmgen eval --protocol aistpp gen/ --gt aist_plusplus_final --smpl-dir smpl
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gen_dir", help="folder of generated .wav / .npz files (e.g. `mmgen generate --out`)")
    parser.add_argument("ref_dir", nargs="?", help="folder of reference files with the same names")
    parser.add_argument("--out", help="JSON file to write (default GEN_DIR/metrics.json)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the report files an earlier `mmgen eval` wrote"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p = parser.add_argument_group("--protocol aistpp (the AIST++ music-to-dance table)")
    p.add_argument("--protocol", choices=("aistpp",), help="a published evaluation protocol instead of pairs")
    p.add_argument("--gt", help="the AIST++ annotation folder (motions/, splits/, ignore_list.txt)")
    p.add_argument("--smpl-dir", help="SMPL model folder (SMPL_MALE.pkl), for ground-truth joints")
    p.add_argument("--music-dir", help="AIST music wavs (mBR0.wav, ...) for BAS (default GT/all_musics)")
    p.add_argument(
        "--splits", default="test", help="crossmodal split(s) generated for: test (FACT), test,val (Bailando)"
    )
    p.add_argument(
        "--reference",
        default="all",
        choices=("all", "train", "val", "test"),
        help="ground-truth feature set: all motions minus ignore_list (published) or one split",
    )
    p.add_argument(
        "--seconds", type=float, default=20.0, help="FID / Div on the first N s of each dance (20)"
    )
    p.add_argument("--gen-fps", type=float, help="frame rate of every generated file (default: by layout)")
    p.add_argument(
        "--gen-up", choices=("y", "z"), help="up axis of every generated file (default: by layout)"
    )
    p.add_argument("--no-ground-truth", action="store_true", help="skip the ground-truth row")
    p.add_argument("--reference-cache", help="an .npz to keep the reference features in between runs")
    p.add_argument("--fad-embedder", help="package.module:name of an audio embedder (see docs/evaluation.md)")
    p.add_argument("--fad-sample-rate", type=int, default=16000, help="audio rate given to the embedder")
    p.add_argument("--fvd-embedder", help="package.module:name of a video embedder (see docs/evaluation.md)")
    p.add_argument("--real-videos", help="folder of real .mp4 videos for FVD")


def _aistpp(args: argparse.Namespace) -> int:
    from mmgen.evaluation.aistpp import (
        AISTPPProtocol,
        aistpp_markdown,
        evaluate_aistpp,
        write_aistpp_report,
    )
    from mmgen.evaluation.embedded_distances import load_embedder

    if args.ref_dir is not None:
        raise ValueError("--protocol aistpp takes the ground truth with --gt, not a second folder")
    if args.gt is None or args.smpl_dir is None:
        raise ValueError("--protocol aistpp needs --gt AIST_ROOT and --smpl-dir SMPL_DIR")
    protocol = AISTPPProtocol(
        seconds=args.seconds,
        splits=tuple(s.strip() for s in args.splits.split(",") if s.strip()),
        reference=args.reference,
    )
    from mmgen.core.fileio import check_output_files

    json_path = Path(args.out) if args.out else Path(args.gen_dir) / "aistpp_metrics.json"
    md_path = json_path.with_suffix(".md")
    check_output_files(json_path.parent, [json_path.name, md_path.name], overwrite=args.overwrite)  # before the work
    if args.reference_cache:
        cache = Path(args.reference_cache)
        check_output_files(cache.parent, [cache.name], overwrite=True, arg="--reference-cache")
    fad = load_embedder(args.fad_embedder) if args.fad_embedder else None
    fvd = load_embedder(args.fvd_embedder) if args.fvd_embedder else None
    result = evaluate_aistpp(
        args.gen_dir, args.gt, args.smpl_dir, music_dir=args.music_dir, protocol=protocol,
        gen_fps=args.gen_fps, gen_up=args.gen_up, ground_truth_row=not args.no_ground_truth,
        reference_cache=args.reference_cache, fad_embedder=fad, fad_sample_rate=args.fad_sample_rate,
        fvd_embedder=fvd, real_videos=args.real_videos, progress=not args.no_progress,
    )  # fmt: skip
    written = write_aistpp_report(result, json_path, md_path, overwrite=args.overwrite)
    print(aistpp_markdown(result), end="")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.protocol == "aistpp":
        return _aistpp(args)
    if args.ref_dir is None:
        raise ValueError(
            "mmgen eval GEN_DIR REF_DIR: REF_DIR is missing (or give --protocol aistpp --gt ...)"
        )
    from mmgen.evaluation.folder import evaluate_folder, format_table

    result = evaluate_folder(
        args.gen_dir, args.ref_dir, out=args.out, progress=not args.no_progress, overwrite=args.overwrite
    )
    print(format_table(result), end="")
    print(f"wrote {result['path']}")
    return 0
