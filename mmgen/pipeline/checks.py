"""Checks of a `Pipeline.generate` call before any model work: types, layouts, limits, spans, memory.

    check_call      the arguments as given: `given` a mapping of arrays (no None values), seconds /
                    steps / seed / batch_size within `mmgen.core.limits`, integers that are integers
                    (steps=2.5, steps=True, seed=1.5 are refused, not rounded), guidance a mapping
                    of finite scales, cross_guidance a level in [0, 1] or a CrossGuidance, ...
    check_audio     audio is mono and channels-first batched: [S] one clip, [B, S] a batch of B
                    clips. soundfile's [S, C] layout is detected and named; [B, C, S] is refused.
                    A stereo clip is averaged to mono first (`x.mean(axis=0)` for [2, S]): a [2, S]
                    array is, by the layout above, two clips.
    check_clip      once the task is resolved: the clip holds at least one latent frame of every
                    modality, the spans leave something to generate, and the memory the call
                    needs (estimated) is free.

Errors are `InputError` (an MmgenError, ValueError and TypeError) naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmgen.core.errors import MmgenError
from mmgen.core.limits import (
    MAX_SECONDS,
    SAMPLE_RATE,
    LimitError,
    check_batch,
    check_memory,
    check_number,
    check_rate,
    check_seconds,
    check_seed,
    check_steps,
)
from mmgen.diffusion.guidance import CrossGuidance
from mmgen.modalities.chunked import CHUNK, MARGIN

if TYPE_CHECKING:
    from mmgen.diffusion.tasks import Task
    from mmgen.pipeline.pipeline import Pipeline

SPAN_ARGS = ("head", "tail", "prefix", "start", "end")
# peak bytes per byte of float32 raw output while decoding, per kind (measured on the ToyDance
# checkpoint: audio 53 from 30 s -> 120 s dance2music, video ~15 from joint 4 s x 8)
DECODE_OVERHEAD = {"audio": 64, "motion": 64, "video": 24}


class InputError(MmgenError, ValueError, TypeError):
    """A `generate` argument of the wrong type or layout."""


def _type(value: Any) -> str:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"{type(value).__name__} {getattr(value, 'dtype', '')} {tuple(value.shape)}"
    return type(value).__name__


def check_call(
    pipe: Pipeline,
    given: Any,
    *,
    seconds: Any,
    steps: Any,
    sampler: Any,
    guidance: Any,
    cross_guidance: Any,
    caption: Any,
    seed: Any,
    batch_size: Any,
    long_form: Any,
    task_kwargs: Any,
) -> dict[str, Any]:
    """Everything about a generate call that needs no resolved task; returns `given` as a dict."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise InputError(f"given must map modality names to arrays (e.g. {{'motion': joints}}), got {_type(given)}")
    for name, value in given.items():
        if name not in pipe.modalities:
            continue  # generate names the modalities this pipeline lacks
        if value is None:
            raise InputError(f"given[{name!r}] is None; leave the key out to generate {name}")
        if not isinstance(value, (np.ndarray, torch.Tensor)):
            raise InputError(f"given[{name!r}] must be a numpy array or torch tensor, got {_type(value)}")
        if pipe.modalities[name].kind.startswith("audio"):
            check_audio(f"given[{name!r}]", value)
    if seconds is not None:
        check_seconds("seconds", seconds)
    if steps is not None:
        check_steps("steps", steps)
    check_seed("seed", seed)
    if batch_size is not None:
        check_batch("batch_size", batch_size)
    if sampler is not None and not isinstance(sampler, str):
        raise InputError(f"sampler must be a name such as 'dpmpp2m', got {_type(sampler)}")
    if guidance is not None:
        if not isinstance(guidance, Mapping):
            raise InputError(f"guidance must map groups to scales (e.g. {{'motion': 2.0}}), got {guidance!r}")
        for group, scale in guidance.items():
            check_number(f"guidance[{group!r}]", scale, -1e6, 1e6)
    if not (cross_guidance is None or isinstance(cross_guidance, (bool, CrossGuidance))):
        check_number("cross_guidance", cross_guidance, 0.0, 1.0)
    if caption is not None and not isinstance(caption, str):
        raise InputError(f"caption must be a string, got {_type(caption)}")
    if long_form is not None and not isinstance(long_form, bool):
        raise InputError(f"long_form must be True, False or None, got {long_form!r}")
    if task_kwargs is not None and not isinstance(task_kwargs, Mapping):
        raise InputError(f"task_kwargs must be a mapping (e.g. {{'head': 1.0}}), got {_type(task_kwargs)}")
    for key in SPAN_ARGS:
        if task_kwargs and task_kwargs.get(key) is not None:
            check_number(key, task_kwargs[key], 0.0, MAX_SECONDS)
    return dict(given)


def check_audio(what: str, value: Any) -> None:
    """Mono [S] or a batch [B, S]; names soundfile's [S, C] layout and multichannel batches."""
    shape = tuple(value.shape)
    if len(shape) == 2 and 1 <= shape[1] <= 8 and shape[0] > 64 * shape[1]:
        raise InputError(
            f"{what} has shape {list(shape)}, which looks like [samples, channels] (soundfile's layout); "
            f"generate takes mono audio [S] or a batch [B, S]: average the channels first (x.mean(axis=1))"
        )
    if len(shape) == 3:
        raise InputError(
            f"{what} has shape {list(shape)}; generate takes mono audio [S] or a batch [B, S] "
            "(average the channels of multichannel audio first)"
        )
    dtype = value.dtype
    floating = dtype.is_floating_point if isinstance(value, torch.Tensor) else np.issubdtype(dtype, np.floating)
    if not floating:
        raise InputError(f"{what} must be float samples in [-1, 1], got {dtype} (divide integer PCM by its full scale)")


def min_seconds(pipe: Pipeline, modalities: list[str]) -> tuple[float, str]:
    """The shortest clip holding one latent frame of every modality, and the modality setting it."""
    best, name = 0.0, ""
    for m in modalities:
        spec = pipe.modalities[m].spec
        if 1.0 / spec.rate_hz > best:
            best, name = 1.0 / spec.rate_hz, m
    return best, name


def check_clip(
    pipe: Pipeline,
    task: Task,
    start: Mapping[str, torch.Tensor],
    seconds: float,
    batch: int,
    long_form: bool,
    task_kwargs: Mapping[str, Any] | None,
) -> None:
    """After the task is resolved: a long enough clip, something to generate, memory to do it."""
    check_seconds("seconds (the longest given input)", seconds)
    shortest, which = min_seconds(pipe, list(task.modalities))
    if seconds < shortest - 1e-9:
        rate = pipe.modalities[which].spec.rate_hz
        raise LimitError(
            f"seconds: a clip of {seconds:.3g} s is shorter than one latent frame of {which!r} "
            f"({shortest:.3g} s at {rate:g} Hz); give seconds >= {shortest:.3g} (or a longer input)"
        )
    if not any(bool((s > 0).any()) for s in start.values()):
        spans = ", ".join(f"{k}={v:g}" for k, v in (task_kwargs or {}).items() if k in SPAN_ARGS and v is not None)
        raise InputError(
            f"task {task.name!r} leaves nothing to generate: its given spans ({spans or 'all frames'}) cover the "
            f"whole {seconds:g} s clip; shorten them or ask for more seconds"
        )
    check_memory(f"generating {batch} x {seconds:g} s", estimate_bytes(pipe, list(start), seconds, batch, long_form),
                 pipe.device)


def estimate_bytes(pipe: Pipeline, modalities: list[str], seconds: float, batch: int, long_form: bool) -> int:
    """Peak memory of a generate call, roughly: decoding one chunk of the raw output (float32,
    DECODE_OVERHEAD times its size at the peak; `mmgen.modalities.chunked`), a few copies of the
    whole output, plus the DiT's attention over the tokens of one window."""
    decode = 0
    tokens = 0
    window = pipe.defaults.window_seconds if long_form and pipe.defaults.window_seconds else seconds
    for m in modalities:
        mod = pipe.modalities[m]
        per_frame = 1
        if mod.kind == "motion":
            per_frame = int(mod.vae.codec.num_joints * mod.vae.codec.dims)
        elif mod.kind == "video":
            h, w = mod.vae.frame_size
            per_frame = h * w * 3
        kind = "audio" if mod.kind.startswith("audio") else mod.kind
        chunk = min(seconds, (CHUNK + 2 * MARGIN) / mod.spec.rate_hz)  # decoded a chunk at a time
        decode += mod.raw_length(chunk) * per_frame * 4 * DECODE_OVERHEAD.get(kind, 64)
        decode += mod.raw_length(seconds) * per_frame * 4 * 3  # the whole output, fitted and pasted
        spatial = math.prod(mod.spec.spatial) if mod.spec.spatial else 1
        tokens += mod.spec.num_frames(window) * spatial
    heads = int(getattr(pipe.dit, "num_heads", 4))
    attention = 4 * heads * tokens * tokens * 4  # scores of a guided batch (x4: CFG copies, softmax)
    return int(batch * (decode + attention))



def check_device(name: Any, arg: str = "--device") -> torch.device:
    """A torch device that exists here: 'cpu', 'cuda', 'cuda:1' (a GPU present), 'mps' (available)."""
    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError):
        raise InputError(f"{arg} {name}: not a torch device (cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"{arg} {name}: no CUDA GPU is available here (use --device cpu)")
        if device.index is not None and device.index >= count:
            raise InputError(f"{arg} {name}: there are {count} CUDA GPU(s), numbered 0-{count - 1}")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(f"{arg} {name}: Apple MPS is not available here (use --device cpu)")
    elif device.type != "cpu":
        raise InputError(f"{arg} {name}: mmgen runs on cpu, cuda or mps")
    return device


def check_audio_file(path: Any, arg: str = "--audio") -> None:
    """The header of an audio file: readable, a sample rate in SAMPLE_RATE, at most MAX_SECONDS long
    (checked before the file is decoded, so a 10-hour file is refused without reading it)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise InputError(f"{arg} {path}: not a readable audio file ({str(err).splitlines()[0][:160]})") from None
    check_rate(f"{arg} {path}: sample rate", info.samplerate, SAMPLE_RATE)
    if info.frames / info.samplerate > MAX_SECONDS:
        raise LimitError(f"{arg} {path}: {info.frames / info.samplerate:.0f} s long; mmgen reads at most "
                         f"{MAX_SECONDS:.0f} s")


def check_video_file(path: Any, arg: str = "--video") -> None:
    """A video file with a video stream whose first frame decodes, at most MAX_SECONDS long by its
    header (`mmgen.io.video_stream.probe`)."""
    from mmgen.io.video_stream import VideoFileError, probe

    try:
        info = probe(path)
    except VideoFileError as err:
        raise InputError(f"{arg} {err}") from None
    if info.seconds > MAX_SECONDS:
        raise LimitError(f"{arg} {path}: {info.seconds:.0f} s long; mmgen reads at most {MAX_SECONDS:.0f} s")
