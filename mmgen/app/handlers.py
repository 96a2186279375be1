"""What `mmgen app` does, without Gradio: the page's inputs -> `Pipeline.generate` -> files to show.

    task ──────────────► span_visibility           which span boxes the page shows
    uploads / example ─► read_uploads / example_inputs    raw arrays at the pipeline's rates
    AppRequest + given ► generate_kwargs           the Pipeline.generate call (inputs the task
                                                   does not take dropped; missing ones an AppError)
    generate ──────────► Generation.save(out) ─► AppResult   wav / mp4 / mel png / npz paths

Every mistake a user can make on the page (a file that is not motion, a task without the input
it needs, a span outside the clip) raises `AppError` with a sentence meant for the page; the
Gradio layer (`mmgen.app.app`) shows it as a message, not a traceback.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmgen.core.errors import MmgenError
from mmgen.diffusion.tasks import PRESETS, preset_parameters
from mmgen.pipeline import Pipeline

SPAN_ARGS = ("head", "tail", "prefix", "start", "end", "t0")
SPAN_HELP = {
    "head": "given seconds at the start",
    "tail": "given seconds at the end (empty: as head)",
    "prefix": "given seconds at the start; the rest is continued",
    "start": "start of the regenerated span (s)",
    "end": "end of the regenerated span (s; empty: to the end)",
    "t0": "noise level the span is noised to, in (0, 1]",
}
UPLOAD_KINDS = {
    "motion": "a motion .npz (joints [T, J, 3] + fps)",
    "audio": "an audio file (wav, flac, ogg)",
    "video": "a video file (mp4)",
}
EXAMPLE_SEED = 10_000  # held-out ToyDance seeds start here (training used `toydance make --seed 1`)
DEFAULT_SECONDS = 4.0
SOURCES = ("ToyDance example", "my files")


class AppError(MmgenError):
    """A mistake on the page, worded for the person who made it."""


def task_names(pipe: Pipeline) -> list[str]:
    """The presets this pipeline can run (those whose fixed modalities it has), one-way tasks first."""
    first = ("dance2music", "music2dance", "video2audio", "audio2video")
    names = []
    for name in [*(n for n in first if n in PRESETS), *(n for n in PRESETS if n not in first)]:
        try:
            pipe.task(name, list(pipe.modalities))
        except ValueError:
            continue
        names.append(name)
    return names


def task_spans(task: str) -> tuple[str, ...]:
    """The span arguments the preset `task` takes, in SPAN_ARGS order (read off its signature)."""
    params = preset_parameters(task)
    return tuple(a for a in SPAN_ARGS if a in params)


def span_defaults(task: str) -> dict[str, float | None]:
    """The preset's own default for each span argument it takes (None: derived, e.g. tail = head)."""
    params = preset_parameters(task)
    return {a: params[a].default for a in task_spans(task)}


def span_visibility(task: str) -> dict[str, bool]:
    """For each span box of the page, whether `task` takes it."""
    taken = set(task_spans(task))
    return {a: a in taken for a in SPAN_ARGS}


@dataclass(frozen=True)
class AppRequest:
    """One press of the Generate button.

    Args:
        task: a preset name.
        source: "ToyDance example" (the clip of `example_seed`) or "my files" (the uploads).
        motion, audio, video: paths of uploaded files (None: not uploaded).
        example_seed: ToyDance seed of the example clip (held-out seeds are 10000 and up).
        seconds: clip length (None: the longest input, or 4 s without inputs).
        spans: {span argument: seconds or None}; those the task does not take are ignored.
        seed, steps, guidance: sampling noise seed, solver steps, CFG scale on the given inputs.
    """

    task: str = "dance2music"
    source: str = SOURCES[0]
    motion: str | None = None
    audio: str | None = None
    video: str | None = None
    example_seed: int = EXAMPLE_SEED
    seconds: float | None = None
    spans: Mapping[str, float | None] = field(default_factory=dict)
    seed: int = 0
    steps: int = 25
    guidance: float = 2.0

    def __post_init__(self) -> None:
        if self.task not in PRESETS:
            raise AppError(f"unknown task {self.task!r}; pick one of {', '.join(PRESETS)}")
        if self.source not in SOURCES:
            raise AppError(f"input source must be one of {SOURCES}, got {self.source!r}")
        for name, value in (("seed", self.seed), ("steps", self.steps), ("example seed", self.example_seed)):
            if not _is_int(value) or value < (1 if name == "steps" else 0):
                least = "a positive" if name == "steps" else "a non-negative"
                raise AppError(f"{name} must be {least} whole number, got {value!r}")
        if not (
            isinstance(self.guidance, (int, float)) and math.isfinite(self.guidance) and self.guidance >= 0
        ):
            raise AppError(f"guidance must be a number >= 0 (1 = none), got {self.guidance!r}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise AppError(
                f"seconds must be positive (or empty for the input's length), got {self.seconds!r}"
            )
        unknown = sorted(set(self.spans) - set(SPAN_ARGS))
        if unknown:
            raise AppError(f"unknown span arguments {unknown}; known: {list(SPAN_ARGS)}")

    @property
    def span_kwargs(self) -> dict[str, float]:
        """The task's span arguments that were filled in (empty boxes keep the preset's default)."""
        return {a: float(v) for a, v in self.spans.items() if a in task_spans(self.task) and v is not None}


def _is_int(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, np.integer))
        or (isinstance(value, float) and value.is_integer())
    )


def _upload_error(kind: str, path: str, err: Exception) -> AppError:
    """The reader's message with gradio's temp path replaced by the file's own name."""
    name = Path(path).name
    text = str(err).replace(str(path), name)
    if not text.startswith(name):
        text = f"{name}: {text}"
    return AppError(f"{kind} upload {text} (expected {UPLOAD_KINDS[kind]})")


def read_uploads(
    pipe: Pipeline, motion: str | None = None, audio: str | None = None, video: str | None = None
) -> dict[str, np.ndarray]:
    """Uploaded files -> raw inputs at the pipeline's rates (`mmgen.io.read`); errors name the upload."""
    from mmgen.io.read import read_audio, read_motion, read_video_file

    readers = {"motion": read_motion, "audio": read_audio, "video": read_video_file}
    given: dict[str, np.ndarray] = {}
    for kind, path in (("motion", motion), ("audio", audio), ("video", video)):
        if not path:
            continue
        if kind not in pipe.modalities:
            raise AppError(f"this pipeline has no {kind} modality (it has {', '.join(pipe.modalities)})")
        try:
            given[kind] = np.asarray(readers[kind](path, pipe.modalities[kind]))
        except (MmgenError, ValueError, OSError) as err:
            raise _upload_error(kind, path, err) from None
    return given


def example_inputs(pipe: Pipeline, seed: int, seconds: float) -> tuple[dict[str, np.ndarray], str]:
    """The ToyDance clip of `seed` (all modalities the pipeline has) and a line describing it."""
    from mmgen.data.toydance import generate_clip

    try:
        clip = generate_clip(int(seed), seconds=float(seconds), render_video="video" in pipe.modalities)
    except ValueError as err:
        raise AppError(f"ToyDance example: {err}") from None
    raw = {"audio": clip.audio, "motion": clip.joints, "video": clip.video}
    rates = {"audio": clip.sample_rate, "motion": clip.fps, "video": clip.video_fps}
    for name, mod in pipe.modalities.items():
        if abs(rates[name] - mod.raw_rate) > 1e-6:
            raise AppError(
                f"ToyDance examples have {name} at {rates[name]:g} per second; "
                f"this pipeline's is {mod.raw_rate:g}"
            )
    given = {m: np.asarray(raw[m]) for m in pipe.modalities}
    return given, f"ToyDance clip {seed}: {clip.style}, {clip.bpm:g} bpm"


def generate_kwargs(pipe: Pipeline, request: AppRequest, given: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `pipe.generate` for `request` with the raw inputs at hand.

    Inputs the task does not take are dropped (an example clip offers every modality); a task
    without the input it needs raises AppError saying what to upload.
    """
    spans = request.span_kwargs
    try:
        task = pipe.task(request.task, list(given), **spans)
    except ValueError as err:
        raise AppError(str(err)) from None
    takes = [m for m, sp in task.spans.items() if any(s.role.needs_input for s in sp)]
    used = {m: x for m, x in given.items() if m in takes}  # an example's audio is no input to dance2music
    missing = [m for m in takes if m not in used]
    if missing and not used and "modalities" in preset_parameters(request.task) and request.task != "joint":
        raise AppError(
            f"{request.task} reworks the inputs you give: "
            "upload motion, audio or video, or pick a ToyDance example"
        )
    if missing:
        what = " and ".join(UPLOAD_KINDS[m] for m in missing)
        raise AppError(f"{request.task} needs {what}: upload it or pick a ToyDance example")
    seconds = request.seconds
    if seconds is None:
        lengths = [len(x) / pipe.modalities[m].raw_rate for m, x in used.items()]
        seconds = max(lengths) if lengths else pipe.defaults.seconds
    check_spans(request.task, spans, seconds)
    scale = float(request.guidance)
    guidance = {} if scale == 1.0 else {m: scale for m in takes}
    return {
        "task": request.task,
        "given": used,
        "seconds": float(seconds),
        "steps": int(request.steps),
        "guidance": guidance,
        "seed": int(request.seed),
        "task_kwargs": spans,
    }


def check_spans(task: str, spans: Mapping[str, float], seconds: float) -> None:
    """Spans must leave something to generate inside a clip of `seconds` (the presets check signs)."""
    kw = {**{k: v for k, v in span_defaults(task).items() if v is not None}, **spans}
    if task == "interpolate":
        head, tail = kw["head"], kw.get("tail", kw["head"])
        if head + tail >= seconds:
            raise AppError(
                f"interpolate: head {head:g} s + tail {tail:g} s leave nothing to generate in {seconds:g} s"
            )
    elif task == "continue" and kw["prefix"] >= seconds:
        raise AppError(f"continue: prefix {kw['prefix']:g} s leaves nothing to generate in {seconds:g} s")
    elif task in ("inpaint", "edit") and kw["start"] >= seconds:
        raise AppError(f"{task}: start {kw['start']:g} s is past the end of the {seconds:g} s clip")


@dataclass(frozen=True)
class AppResult:
    """What the page shows after a run: the files `Generation.save` wrote and a summary line."""

    audio: Path | None
    video: Path | None
    mel: Path | None
    files: list[Path]
    summary: str


def run_request(
    pipe: Pipeline, request: AppRequest, out_dir: str | os.PathLike, max_seconds: float | None = None
) -> AppResult:
    """Read the inputs of `request`, generate, and write wav / npz / mp4 / mel png into `out_dir`."""
    described = ""
    if request.source == SOURCES[0]:
        given, described = example_inputs(pipe, request.example_seed, request.seconds or DEFAULT_SECONDS)
    else:
        given = read_uploads(pipe, request.motion, request.audio, request.video)
    kwargs = generate_kwargs(pipe, request, given)
    if max_seconds is not None and kwargs["seconds"] > max_seconds:
        raise AppError(
            f"{kwargs['seconds']:.1f} s is longer than this app allows ({max_seconds:g} s); "
            "set seconds to trim the inputs"
        )
    start = time.perf_counter()
    try:
        gen = pipe.generate(**kwargs)
    except ValueError as err:
        raise AppError(str(err)) from None
    elapsed = time.perf_counter() - start
    written = gen.save(out_dir, prefix=f"mmgen_{request.task}")
    by_suffix = {p.name[len(f"mmgen_{request.task}") :]: p for p in written}
    inputs = ", ".join(kwargs["given"]) or "nothing"
    summary = (
        f"{request.task}: {gen.seconds:g} s from {inputs}"
        + (f" ({described})" if described and kwargs["given"] else "")
        + f"; {kwargs['steps']} steps, seed {kwargs['seed']}, {elapsed:.1f} s"
    )
    return AppResult(
        audio=by_suffix.get(".wav"),
        video=by_suffix.get(".mp4"),
        mel=by_suffix.get("_mel.png"),
        files=written,
        summary=summary,
    )
