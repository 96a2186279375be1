"""The `mmgen` command.

Sub-commands live in `mmgen/commands/<name>.py`, each with `add_arguments(parser)` and
`run(args) -> int`; they are imported only when called so `mmgen --help` stays fast. `fit`,
`validate` and `test` hand the rest of the command line to LightningCLI (`mmgen.train.cli`).
Every error a user can cause (MmgenError, ValueError, a missing file, an unparsable command line)
becomes one line on stderr naming the argument or file, and exit code 2; set MMGEN_DEBUG=1 for
the traceback. Anything else is an internal error and keeps its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import textwrap

from mmgen.core.errors import MmgenError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mmgen.commands.demo", "run every task of the shipped ToyDance checkpoint with metrics"),
    "toydance": ("mmgen.commands.toydance", "make or report on the synthetic ToyDance data set"),
    "preprocess": ("mmgen.commands.preprocess", "AIST++ / LORIS 2-D pose / a video folder -> manifest + features"),
    "generate": ("mmgen.commands.generate", "run a task (dance2music, music2dance, ...) of a pipeline on wav / npz / mp4"),
    "eval": ("mmgen.commands.eval", "metrics of a folder of outputs against references (table + JSON)"),
    "cache": ("mmgen.commands.cache", "encode a manifest folder with trained VAEs into a latent cache"),
    "app": ("mmgen.commands.app", "a web page (Gradio) to run any task on your files or ToyDance examples"),
}
LIGHTNING_COMMANDS = ("fit", "validate", "test")
USER_ERRORS = (MmgenError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError)


FIT_EXAMPLES = """\
mmgen fit -c configs/toydance/trainer_cpu.yaml -c configs/toydance/dit.yaml
mmgen fit -c configs/trainer/gpu.yaml -c configs/toydance/dit.yaml --trainer.devices 2 --trainer.strategy ddp
mmgen fit -c configs/toydance/trainer_cpu.yaml -c configs/toydance/dit.yaml --ckpt_path last
mmgen fit --model.help DiTModule             the options of a model (short class names resolve)
"""


class UsageError(Exception):
    """A command line argparse cannot parse (reported as one line, exit 2)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; an option's default shown where its help does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = action.default in (None, False, argparse.SUPPRESS) or not action.option_strings
        if hidden or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises instead of printing its usage block: every error is one line."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def command_parser(command: str, module: object) -> OneLineParser:
    """The parser of `mmgen <command>`: its arguments, and its EXAMPLES as the help's epilog (the
    lines of an action, e.g. `mmgen toydance make ...`, also under that action's help)."""
    examples = str(getattr(module, "EXAMPLES", "")).strip()
    parser = OneLineParser(
        prog=f"mmgen {command}", description=COMMANDS[command][1],
        epilog=f"examples:\n{textwrap.indent(examples, '  ')}" if examples else None,
    )
    module.add_arguments(parser)  # type: ignore[attr-defined]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                lines = [line for line in examples.splitlines() if line.startswith(f"mmgen {command} {name} ")]
                if lines and sub.epilog is None:
                    sub.epilog = "examples:\n" + textwrap.indent("\n".join(lines), "  ")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mmgen", description="Joint generation of music, dance and video.",
        epilog="examples:\n  mmgen demo\n  mmgen generate --task dance2music --motion dance.npz --out out/\n"
        "  mmgen fit -c configs/toydance/trainer_cpu.yaml -c configs/toydance/dit.yaml\n"
        "  mmgen COMMAND --help                       the options and examples of a command",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in LIGHTNING_COMMANDS:
        sub.add_parser(name, help=f"LightningCLI {name} (mmgen {name} -c configs/....yaml)", add_help=False)
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    verbose = "-v" in argv[:1] or "--verbose" in argv[:1]
    if verbose:
        argv = argv[1:]
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command in LIGHTNING_COMMANDS:
            from mmgen.train.cli import run_lightning

            return run_lightning(command, rest)
        if command not in COMMANDS:
            parser.error(f"unknown command {command!r}")
        module = importlib.import_module(COMMANDS[command][0])
        return int(module.run(command_parser(command, module).parse_args(rest)) or 0)
    except (*USER_ERRORS, UsageError) as err:
        if os.environ.get("MMGEN_DEBUG"):
            raise
        text = " ".join(str(err).split("\n")).strip() or type(err).__name__
        hint = ""
        if isinstance(err, UsageError):
            hint = f" (mmgen {command} --help)" if command in COMMANDS else " (mmgen --help)"
        print(f"mmgen {command}: error: {text}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmgen {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
