"""`mmgen app`: a web page (Gradio) to run any task of a pipeline on your files or ToyDance examples.

mmgen app                                   the shipped ToyDance checkpoint on http://127.0.0.1:7860
mmgen app --port 8000 --pipeline my_pipe/   another pipeline folder, another port

Needs the `app` extra (pip install "mmgen[app]"). The page is served on localhost only unless
--host says otherwise; there is no public share link. Outputs live in a temp folder of the app's
own, removed when the app stops (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
from pathlib import Path

from mmgen.core.errors import MmgenError

EXAMPLES = """\
mmgen app                                    the shipped ToyDance checkpoint on http://127.0.0.1:7860
mmgen app --port 8000 --pipeline my_pipe/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipeline", type=Path, default=None, help="pipeline folder, \"toydance\" or a Hugging Face Hub id owner/name (default: the shipped ToyDance checkpoint)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--device", default=None, help="cpu / cuda / mps (default: cuda if available)")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="longest clip a request may ask for (default 60)"
    )


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise MmgenError('the web app needs Gradio: pip install "mmgen[app]"')
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    from mmgen.app.workspace import Workspace
    from mmgen.demo.run import load_demo_pipeline

    pipe = load_demo_pipeline(args.pipeline, args.device)
    workspace = Workspace()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the app like Ctrl-C: folder removed
    try:
        # before gradio is imported: no telemetry, and its upload cache inside the app's folder
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        os.environ.setdefault("GRADIO_TEMP_DIR", str(workspace.root / "gradio"))
        from mmgen.app.app import build_app, launch_app

        blocks = build_app(pipe, workspace, max_seconds=args.max_seconds)
        print(f"mmgen app: serving {pipe!r} on http://{args.host}:{args.port} (Ctrl-C stops it)")
        try:
            launch_app(blocks, workspace, host=args.host, port=args.port, block=True)
        except OSError as err:  # the port is taken, or the host is not an address of this machine
            reason = str(err).split(". ")[0]
            raise MmgenError(
                f"cannot serve on {args.host}:{args.port} ({reason}); pick another --port"
            ) from None
    finally:
        workspace.close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
