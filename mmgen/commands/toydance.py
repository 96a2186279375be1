"""`mmgen toydance make|report`: generate the ToyDance set, or measure how well a made set is in sync.

mmgen toydance make --out data/toydance --clips 50 --seconds 10 --seed 0
mmgen toydance report data/toydance       # prints and writes report.json / report.md
"""

from __future__ import annotations

import argparse

EXAMPLES = """\
mmgen toydance make --out data/toydance --clips 50 --seconds 10 --seed 0
mmgen toydance report data/toydance          prints and writes report.json / report.md
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    make = sub.add_parser("make", help="generate clips (wav, npz, mp4, manifest.jsonl) into a folder")
    make.add_argument("--out", required=True, help="output folder: new or empty (see --overwrite)")
    make.add_argument(
        "--overwrite", action="store_true", help="replace a ToyDance set an earlier `make` wrote there"
    )
    make.add_argument("--clips", type=int, default=50, help="number of clips (default 50)")
    make.add_argument("--seconds", type=float, default=10.0, help="seconds per clip (default 10)")
    make.add_argument("--seed", type=int, default=0, help="seed of the whole set (default 0)")
    make.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    report = sub.add_parser("report", help="tempo and beat-alignment report of a made set")
    report.add_argument("dir", help="folder written by `mmgen toydance make`")
    report.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    report.add_argument("--no-preview", action="store_true", help="skip preview_mel.png")
    report.add_argument("--overwrite", action="store_true", help="replace the report files of an earlier run")


def run(args: argparse.Namespace) -> int:
    if args.action == "make":
        from mmgen.core.limits import MAX_CLIPS, check_int, check_seconds, check_seed
        from mmgen.data.toydance.io import make_dataset

        check_int("--clips", args.clips, 1, MAX_CLIPS)
        check_seconds("--seconds", args.seconds)
        check_seed("--seed", args.seed)

        out = make_dataset(
            args.out, args.clips, args.seconds, args.seed, progress=not args.no_progress, overwrite=args.overwrite
        )
        print(f"wrote {args.clips} clips of {args.seconds:g} s to {out}")
        return 0
    from mmgen.core.fileio import check_output_files
    from mmgen.data.toydance.report import report_markdown, toydance_report, write_report

    names = ["report.json", "report.md", *([] if args.no_preview else ["preview_mel.png"])]
    check_output_files(args.dir, names, overwrite=args.overwrite, arg="toydance report")  # before the work
    report = toydance_report(args.dir, progress=not args.no_progress)
    written = write_report(args.dir, report, preview=not args.no_preview, overwrite=args.overwrite)
    print(report_markdown(report), end="")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0 if all(report["summary"]["pass"].values()) else 1
