"""The steps of `Pipeline.generate`, one small function each, in the order generate runs them.

    1. check_inputs        arguments as given (`checks.check_call`), modalities the pipeline has
    2. resolve_task        preset + task_kwargs (+ defaults.task_args) -> Task, inputs it uses
    3. prepare_inputs      raw inputs -> CPU batches of one batch size
    4. clip_length         seconds (from the inputs or the defaults) and whether to sample in windows
    5. lay_out_task        the task's start level per latent frame; the clip checks
    6. encode_inputs       GIVEN / EDIT inputs -> latents (generated spans blanked first)
    7. sampling_settings   defaults / settings + keyword overrides; guidance where it applies
    8. conditions          the per-window conditions: text, melody, image, quality, timing, streams
    9. denoise             sample_masked over the clip, or sample_long in windows (dtype: autocast DiT)
   10. decode              latents -> raw, GIVEN frames pasted back -> Generation

Each step takes the pipeline and what the earlier steps returned; none keeps state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from mmgen.diffusion.guidance import CrossGuidance, Latents, Levels
from mmgen.diffusion.longform import sample_long
from mmgen.diffusion.samplers import lay_task, sample_masked
from mmgen.diffusion.settings import SamplingSettings
from mmgen.diffusion.tasks import ResolvedTask, Task
from mmgen.modalities.chunked import encode_long
from mmgen.modalities.raw_length import coverage_length, fit_length, pad_mode
from mmgen.pipeline.checks import InputError, check_call, check_clip
from mmgen.pipeline.conditions import ConditionInputs, WindowConditions
from mmgen.pipeline.conditions import check_inputs as check_condition_inputs
from mmgen.pipeline.generation import Generation
from mmgen.pipeline.long_form import window_and_hop
from mmgen.pipeline.media import blank_generated, check_raw, common_batch, decode_raw, to_generation
from mmgen.pipeline.precision import parse_dtype, with_precision

if TYPE_CHECKING:
    from mmgen.pipeline.pipeline import Pipeline

Raw = dict[str, torch.Tensor]


def check_inputs(
    pipe: Pipeline, given: Any, sampling: Mapping[str, Any], dtype: Any, **call: Any
) -> tuple[dict[str, Any], torch.dtype]:
    """Step 1: every argument before any work; `given` as a dict naming only this pipeline's
    modalities, and the inference dtype."""
    known = {f.name for f in dataclasses.fields(SamplingSettings)}
    unknown = sorted(set(sampling) - known)
    if unknown:
        raise InputError(f"generate() got unknown arguments {unknown}; sampling settings are {sorted(known)}")
    given = check_call(
        pipe, given, steps=sampling.get("steps"), sampler=sampling.get("sampler"),
        guidance=sampling.get("guidance"), cross_guidance=sampling.get("cross_guidance"), **call,
    )
    unknown = sorted(set(given) - set(pipe.modalities))
    if unknown:
        raise ValueError(f"given names modalities {unknown} this pipeline lacks (has {sorted(pipe.modalities)})")
    try:
        return given, parse_dtype(dtype)
    except ValueError as err:
        raise InputError(str(err)) from None


def resolve_task(
    pipe: Pipeline, task: str | Task, given: Mapping[str, Any], task_kwargs: Mapping[str, Any] | None
) -> Task:
    """Step 2: the Task (preset arguments from `task_kwargs` over `defaults.task_args`)."""
    task_obj = pipe.task(task, list(given), **dict(task_kwargs or {}))
    unused = sorted(set(given) - set(task_obj.modalities))
    if unused:
        raise ValueError(
            f"task {task_obj.name!r} does not use {unused} (it runs on {list(task_obj.modalities)}); drop them from given"
        )
    return task_obj


def prepare_inputs(pipe: Pipeline, given: Mapping[str, Any], batch_size: int | None) -> tuple[Raw, int]:
    """Step 3: raw inputs as CPU batches [B, N, ...] (inputs of batch 1 shared by all B), and B."""
    raw = {m: check_raw(pipe.modalities[m], m, v) for m, v in given.items()}
    batch = common_batch(raw, batch_size)
    return {m: x.expand(batch, *x.shape[1:]) if x.shape[0] != batch else x for m, x in raw.items()}, batch


def clip_length(pipe: Pipeline, seconds: float | None, raw: Raw, long_form: bool | None) -> tuple[float, bool]:
    """Step 4: seconds (default: the longest input, else `defaults.seconds`) and long form
    (default: when seconds exceed the training window `defaults.window_seconds`)."""
    if seconds is None:
        seconds = max(
            (x.shape[1] / pipe.modalities[m].raw_rate for m, x in raw.items()), default=pipe.defaults.seconds
        )
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    window = pipe.defaults.window_seconds
    if long_form is None:
        long_form = window is not None and seconds > window + 1e-9
    if long_form and window is None:
        raise ValueError("long_form needs defaults.window_seconds (the training window) in the pipeline")
    return float(seconds), bool(long_form)


def lay_out_task(
    pipe: Pipeline, task: Task, raw: Raw, seconds: float, batch: int, long_form: bool,
    task_kwargs: Mapping[str, Any] | None,
) -> tuple[dict[str, int], ResolvedTask]:
    """Step 5: latent frames per modality and the resolved task ({m: [T_m]} start levels:
    0 GIVEN, 1 GEN, t0 EDIT); the clip is long enough, leaves something to generate, fits in memory."""
    specs = {m: pipe.modalities[m].spec for m in pipe.modalities}
    frames = {m: specs[m].num_frames(seconds) for m in task.modalities}
    resolved = task.resolve(specs, frames, pipe.dit.segment_seconds)
    missing = [m for m in task.modalities if resolved.needs_input[m] and m not in raw]
    if missing:
        raise ValueError(f"task {task.name!r} needs given {missing} (GIVEN or EDIT frames) but got none")
    check_clip(pipe, task, resolved.start, seconds, batch, long_form, task_kwargs)
    return frames, resolved


def encode_inputs(
    pipe: Pipeline, raw: Raw, frames: Mapping[str, int], resolved: ResolvedTask
) -> tuple[Raw, Latents]:
    """Step 6: (inputs fit to whole latent frames with generated spans blanked, latents of the
    modalities the task GIVEs / EDITs)."""
    covered = {
        m: blank_generated(
            pipe.modalities[m],
            fit_length(x, coverage_length(pipe.modalities[m], frames[m]), pad_mode(pipe.modalities[m])),
            resolved.start[m],
        )
        for m, x in raw.items()
    }
    latents = {
        m: encode_long(pipe.modalities[m], covered[m]).to(pipe.device).float() for m in raw if resolved.needs_input[m]
    }
    return covered, latents


def sampling_settings(
    pipe: Pipeline,
    settings: SamplingSettings | None,
    overrides: Mapping[str, Any],
    start: Mapping[str, torch.Tensor],
    groups: frozenset[str],
) -> SamplingSettings:
    """Step 7: `settings` (default: the pipeline's defaults) with the keyword overrides.

    Guidance from the settings applies only where it means something (a group whose modality has
    GIVEN frames, a condition group whose condition is given: `groups`, see
    `conditions.given_groups`); a `guidance=` keyword is used as given, but may not name a
    condition group whose condition is absent. Cross-guidance
    from the settings applies where >= 2 modalities are generated from scratch; the keyword
    takes False (off), True (the settings' or CrossGuidance()), or a level / CrossGuidance."""
    if settings is not None and not isinstance(settings, SamplingSettings):
        raise InputError(f"settings must be a SamplingSettings, got {type(settings).__name__}")
    base = (settings if settings is not None else pipe.defaults).sampling()
    rest = {k: v for k, v in overrides.items() if k not in ("guidance", "cross_guidance")}
    merged = base.merged(rest)
    guidance = overrides.get("guidance")
    if guidance is not None:
        known = pipe.condition.groups if pipe.condition is not None else frozenset()
        for group in guidance:
            if group == "text" and "text" not in groups:
                raise ValueError("text guidance needs a caption")
            if group in known and group not in groups and group not in start:
                raise ValueError(f"{group} guidance needs that condition given (its conditioners are all absent)")
    else:
        guidance = {
            g: s for g, s in base.guidance.items()
            if g in groups or (g in start and bool((start[g] == 0).any()))
        }
    return dataclasses.replace(
        merged, guidance=dict(guidance), cross_guidance=_cross(base, overrides.get("cross_guidance"), start)
    )


def _cross(
    base: SamplingSettings, cross: float | CrossGuidance | bool | None, start: Mapping[str, torch.Tensor]
) -> float | CrossGuidance | None:
    if cross is False:
        return None
    if cross is True:
        return base.cross_guidance if base.cross_guidance is not None else CrossGuidance()
    if cross is not None:
        return cross
    # MoMu's cross-guidance ties modalities generated from scratch to each other; where each
    # has given frames of its own (interpolate, continue, inpaint) those already tie them, and
    # on the shipped checkpoint it made interpolation worse (MPJPE 0.044 vs 0.041 m without)
    from_scratch = [m for m, s in start.items() if bool((s > 0).all())]
    return base.cross_guidance if len(from_scratch) >= 2 else None


def conditions(
    pipe: Pipeline, inputs: ConditionInputs, batch: int, raw: Raw, start: Levels, seconds: float
) -> WindowConditions | None:
    """Step 8: the conditions of every sampling window (`mmgen.pipeline.conditions`): frozen
    features once, timing (seconds_start, seconds_total) per window; None without an encoder."""
    if pipe.condition is None:
        return None
    return WindowConditions(pipe.condition, inputs, batch, seconds, pipe.modalities, raw, start)


def denoise(
    pipe: Pipeline,
    task: Task,
    resolved: ResolvedTask,
    frames: Mapping[str, int],
    latents_in: Latents,
    settings: SamplingSettings,
    *,
    seconds: float,
    long_form: bool,
    batch: int,
    windows: WindowConditions | None,
    seed: int,
    progress: bool,
    hop: float | None = None,
    overlap: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> Latents:
    """Step 9: sample every latent the task generates (noise drawn from `seed` on the pipeline's device);
    long form in windows of the training window moving by `hop` (`mmgen.pipeline.long_form`), each
    window with its own conditions (timing); the
    DiT under autocast for a `dtype` other than float32 (`precision.py`)."""
    specs = {m: pipe.modalities[m].spec for m in pipe.modalities}
    uncond = None
    cond = windows.window(0.0, seconds) if windows is not None and not long_form else None
    generator = torch.Generator(device=pipe.device).manual_seed(int(seed))
    model = with_precision(pipe.dit, pipe.device, dtype)
    if long_form:
        d = pipe.defaults
        window, hop = window_and_hop(d.window_seconds, d.hop, hop, overlap)
        return sample_long(
            model, task, specs, latents_in, seconds=seconds, window_seconds=window,
            hop_seconds=hop, process=pipe.process, settings=settings, cond=cond, uncond=uncond,
            segment_seconds=pipe.dit.segment_seconds, batch_size=batch, generator=generator,
            device=pipe.device, progress=progress,
            aligned_rate_hz=pipe.condition.aligned_rate_hz if pipe.condition is not None else None,
            window_cond=windows.window if windows is not None else None,
        )
    start, values = lay_task(resolved.start, specs, frames, latents_in, batch, pipe.device)
    return sample_masked(
        model, pipe.process, start, values, settings.make_grid(pipe.process), sampler=settings.sampler,
        eta=settings.eta, cond=cond, uncond=uncond, guidance=settings.guidance, cross_guidance=settings.cross,
        generator=generator, progress=progress,
    )


def decode(
    pipe: Pipeline, task: Task, latents: Latents, raw: Raw, covered: Raw, start: Levels, seconds: float,
    seed: int, given: list[str],
) -> Generation:
    """Step 10: latents -> raw media of `seconds`, GIVEN frames pasted from the inputs -> Generation."""
    out = {
        m: decode_raw(pipe.modalities[m], latents[m], raw.get(m), covered.get(m), start[m], seconds, seed)
        for m in latents
    }
    return to_generation(pipe.modalities, task, seconds, out, latents, seed, given, start)


def condition_inputs(
    pipe: Pipeline, caption: str | None, melody: Any, melody_rate: int | None, image: Any, quality: float | None
) -> ConditionInputs:
    """Step 1b: the conditions as given, checked against the pipeline's conditioners."""
    inputs = ConditionInputs(caption, melody, melody_rate, image, quality)
    check_condition_inputs(pipe.condition, inputs)
    return inputs
