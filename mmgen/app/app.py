"""The page of `mmgen app`: Gradio widgets wired to the pure functions of `mmgen.app.handlers`.

    ┌ inputs ─────────────────────────────┐  ┌ outputs ─────────────────────┐
    │ task              [dance2music ▾]    │  │ summary line                 │
    │ input  (•) ToyDance example ( ) files│  │ ▶ music (wav)                │
    │ example seed / motion, audio, video  │  │ ▶ video (mp4, audio muxed)   │
    │ seconds, the task's spans            │  │ mel spectrogram + beats (png)│
    │ seed  steps  guidance   [Generate]   │  │ files to download            │
    └──────────────────────────────────────┘  └──────────────────────────────┘

Nothing here reaches the network: analytics and the version check are off, the theme uses the
fonts Gradio ships, and `launch` never offers a share link. Requests run one at a time (the
model is shared and a CPU is busy with one).
"""

from __future__ import annotations

from typing import Any

from mmgen.app.handlers import (
    DEFAULT_SECONDS,
    EXAMPLE_SEED,
    SOURCES,
    SPAN_ARGS,
    SPAN_HELP,
    AppRequest,
    run_request,
    span_defaults,
    span_visibility,
    task_names,
)
from mmgen.app.workspace import Workspace
from mmgen.core.errors import MmgenError
from mmgen.pipeline import Pipeline

TASK_HELP = {
    "dance2music": "music for the given dance (motion in, audio out)",
    "music2dance": "a dance for the given music (audio in, motion out)",
    "video2audio": "a soundtrack for the given video (the dance is generated alongside as a bridge)",
    "audio2video": "a stick-figure video for the given music",
    "joint": "music, dance and video together from nothing",
    "interpolate": "keeps the first `head` and last `tail` seconds of every input and fills the middle",
    "continue": "keeps the first `prefix` seconds of every input and continues them",
    "inpaint": "regenerates [start, end) of every input, the rest kept",
    "edit": "SDEdit: [start, end) of the inputs noised to t0 and denoised again",
}
USER_ERRORS = (MmgenError, ValueError, FileNotFoundError)


def _task_markdown(task: str) -> str:
    return f"*{task}*: {TASK_HELP.get(task, '')}"


def build_app(
    pipe: Pipeline,
    workspace: Workspace,
    max_seconds: float | None = 60.0,
    title: str = "mmgen: music, dance and video from one model",
) -> Any:
    """The gr.Blocks of the app for `pipe`; outputs go to `workspace` (the caller closes it)."""
    import gradio as gr

    tasks = task_names(pipe)
    first = "dance2music" if "dance2music" in tasks else tasks[0]
    guidance_default = max(pipe.defaults.guidance.values(), default=1.0)

    def generate(
        task: str,
        source: str,
        example_seed: float | None,
        motion: str | None,
        audio: str | None,
        video: str | None,
        seconds: float | None,
        *rest: Any,
        progress: Any = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio reads the default)
    ) -> tuple[Any, ...]:
        spans = dict(zip(SPAN_ARGS, rest[: len(SPAN_ARGS)]))
        seed, steps, guidance = rest[len(SPAN_ARGS) :]
        try:
            request = AppRequest(
                task=task,
                source=source,
                motion=motion,
                audio=audio,
                video=video,
                example_seed=EXAMPLE_SEED if example_seed is None else int(example_seed),
                seconds=None if not seconds else float(seconds),
                spans=spans,
                seed=0 if seed is None else int(seed),
                steps=int(steps),
                guidance=float(guidance),
            )
            result = run_request(pipe, request, workspace.new_run(), max_seconds)
        except USER_ERRORS as err:
            raise gr.Error(str(err), print_exception=False) from None
        return (
            result.summary,
            None if result.audio is None else str(result.audio),
            None if result.video is None else str(result.video),
            None if result.mel is None else str(result.mel),
            [str(p) for p in result.files],
        )

    def on_task(task: str) -> list[Any]:
        shown, defaults = span_visibility(task), span_defaults(task)
        return [_task_markdown(task)] + [
            gr.update(visible=shown[a], value=defaults.get(a)) for a in SPAN_ARGS
        ]

    def on_source(source: str) -> Any:
        # the upload boxes stay mounted: one that appears only after this round trip can drop a
        # file given to it while it mounts (seen in CI); they are read only with "my files"
        return gr.update(visible=source == SOURCES[0])

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(600, 3600)) as blocks:
        gr.Markdown(f"## {title}\n`{pipe!r}`")
        with gr.Row():
            with gr.Column():
                task = gr.Dropdown(tasks, value=first, label="task", elem_id="task")
                task_help = gr.Markdown(_task_markdown(first))
                source = gr.Radio(list(SOURCES), value=SOURCES[0], label="input", elem_id="source")
                example_seed = gr.Number(
                    EXAMPLE_SEED,
                    precision=0,
                    minimum=0,
                    label="ToyDance example seed (held out: 10000+)",
                    elem_id="example_seed",
                )
                motion = gr.File(
                    label="motion (.npz)", file_types=[".npz"], elem_id="motion", height=120
                )
                audio_in = gr.File(
                    label="audio (wav, flac, ogg)",
                    file_types=[".wav", ".flac", ".ogg"],
                    elem_id="audio_in",
                    height=120,
                )
                video_in = gr.File(
                    label="video (mp4, ...)",
                    file_types=[".mp4", ".mov", ".avi", ".webm", ".mkv"],
                    elem_id="video_in",
                    height=120,
                )
                seconds = gr.Number(
                    0,
                    minimum=0,
                    label=f"seconds (0: the input's length; {DEFAULT_SECONDS:g} s for examples)",
                    elem_id="seconds",
                )
                shown, defaults = span_visibility(first), span_defaults(first)
                with gr.Row():
                    span_boxes = [
                        gr.Number(
                            defaults.get(a),
                            label=f"{a}: {SPAN_HELP[a]}",
                            visible=shown[a],
                            elem_id=f"span_{a}",
                        )
                        for a in SPAN_ARGS
                    ]
                with gr.Row():
                    seed = gr.Number(0, precision=0, minimum=0, label="seed", elem_id="seed")
                    steps = gr.Slider(
                        1, 100, value=pipe.defaults.steps, step=1, label="steps", elem_id="steps"
                    )
                    guidance = gr.Slider(
                        0.0,
                        5.0,
                        value=guidance_default,
                        step=0.1,
                        label="guidance (1 = none)",
                        elem_id="guidance",
                    )
                run = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                audio_out = gr.Audio(  # the browser's own <audio> player (Gradio's waveform view hides it)
                    label="music (wav)",
                    type="filepath",
                    interactive=False,
                    elem_id="audio_out",
                    waveform_options=gr.WaveformOptions(show_recording_waveform=False),
                )
                video_out = gr.Video(
                    label="video (mp4, music muxed)", interactive=False, elem_id="video_out", height=320
                )
                mel_out = gr.Image(  # the PNG has its own title and legend (music / motion beats)
                    label="mel spectrogram with music and dance beats",
                    show_label=False,
                    type="filepath",
                    interactive=False,
                    elem_id="mel_out",
                )
                files_out = gr.File(
                    label="download", file_count="multiple", interactive=False, elem_id="files_out"
                )
        task.change(on_task, task, [task_help, *span_boxes])
        source.change(on_source, source, example_seed)
        run.click(
            generate,
            [
                task,
                source,
                example_seed,
                motion,
                audio_in,
                video_in,
                seconds,
                *span_boxes,
                seed,
                steps,
                guidance,
            ],
            [summary, audio_out, video_out, mel_out, files_out],
            concurrency_limit=1,
        )
    return blocks


def offline_theme() -> Any:
    """Gradio's default theme with system fonts, so the page loads no font from elsewhere."""
    import gradio as gr

    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


def launch_app(
    blocks: Any,
    workspace: Workspace,
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
) -> str:
    """Serve `blocks` (no share link, no API page); returns the local URL. `block=False` returns at
    once with the server running in a thread (tests); stop it with `blocks.close()`."""
    blocks.launch(
        server_name=host,
        server_port=port,
        share=False,
        prevent_thread_lock=not block,
        allowed_paths=[str(workspace.root)],
        footer_links=[],
        quiet=True,
        ssr_mode=False,
        mcp_server=False,
        show_error=True,
        theme=offline_theme(),
    )
    return str(blocks.local_url)
