"""`mmgen app`: a Gradio page to run any task of a pipeline on uploads or ToyDance examples.

handlers    the pure functions behind the page (no Gradio): inputs -> Pipeline.generate -> files
workspace   the app's own temp folder, one sub-folder per request, removed on close
app         the gr.Blocks page and its launch (needs the `app` extra: pip install mmgen[app])
"""

from mmgen.app.handlers import AppError, AppRequest, AppResult, generate_kwargs, run_request, span_visibility
from mmgen.app.workspace import Workspace

__all__ = [
    "AppError",
    "AppRequest",
    "AppResult",
    "Workspace",
    "generate_kwargs",
    "run_request",
    "span_visibility",
]
