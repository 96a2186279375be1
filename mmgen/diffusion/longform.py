"""Long-form sampling: windows of W seconds slide with hop H over a clip of any length.

    clip (s)    0   1   2   3   4   5   6   7   8   9  10  11        W = 4 s, H = 3 s, 12 s clip
    window 0    N   N   N   N
    window 1                G   N   N   N                        overlap with what is done: GIVEN
    window 2                            G   N   N   N
    window 3                                    G   G   N   N    shifted back to end at 12 s

Inside each window the task's own roles hold (condition modalities, e.g. the dance of
dance2music, are GIVEN throughout; a GIVEN prefix stays GIVEN); frames an earlier window
already generated become GIVEN with their generated values. Each modality plans its frames on its
own latent grid (`window_plan`: any hop, any mix of rates); the overlap ends on a window-local
segment edge of every modality. A clip no longer than W is a single window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from mmgen.core.cond import Cond, GroupedCond
from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion.guidance import Latents, ModelFn
from mmgen.diffusion.process import Process, expand_like
from mmgen.diffusion.samplers import Callback, broadcast_cond, check_process, prepare_task, sample_masked
from mmgen.diffusion.settings import SamplingSettings, resolve_settings
from mmgen.diffusion.tasks import Task
from mmgen.diffusion.window_plan import harmonize_levels, plan_windows


def sample_long(
    model_fn: ModelFn,
    task: Task | str,
    specs: Mapping[str, ModalitySpec],
    given: Latents | None = None,
    *,
    seconds: float,
    window_seconds: float,
    hop_seconds: float,
    process: Process,
    settings: SamplingSettings | None = None,
    cond: Cond | GroupedCond | None = None,
    uncond: Cond | None = None,
    aligned_rate_hz: float | None = None,
    segment_seconds: float = 0.5,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    window_cond: Callable[[float, float], Cond | GroupedCond] | None = None,
    **overrides: Any,
) -> Latents:
    """Run `task` over `seconds` in windows; returns the stitched latents of every present modality.

    Same arguments as `samplers.sample` (`settings` plus its fields as keyword overrides) plus
    `window_seconds` (W) and `hop_seconds` (H, any value in (0, W]); `cond` is used for every
    window, its time-aligned stream (Cond.aligned, over the whole clip at `aligned_rate_hz`) cut to
    each window's nominal seconds (start snapped to the stream's grid);
    `callback` is called per step of every window. `process` is required (the one the model was
    trained with). `window_cond(start, end)`, when given, replaces `cond` per window (Stable
    Audio's timing: seconds_start = the window's start).
    """
    check_process(process)
    settings = resolve_settings(settings, overrides)
    start, values = prepare_task(
        task,
        specs,
        given,
        seconds=seconds,
        segment_seconds=segment_seconds,
        batch_size=batch_size,
        device=device,
    )
    rates = {m: specs[m].rate_hz for m in start}
    batch = next(iter(start.values())).shape[0]
    out = {m: v.clone() for m, v in values.items()}
    cond, uncond = broadcast_cond(cond, batch, "cond"), broadcast_cond(uncond, batch, "uncond")
    grid = settings.make_grid(process)
    frames = {m: s.shape[1] for m, s in start.items()}
    for win in plan_windows(seconds, window_seconds, hop_seconds, rates, segment_seconds, frames):
        win_start, win_values = {}, {}
        for m, s in start.items():
            span = win.spans[m]
            level = s[:, span.frames].clone()  # [B, n] the task's levels
            level[:, : span.fresh - span.start] = 0.0  # the overlap: GIVEN, as generated before
            win_start[m] = harmonize_levels(level, rates[m], segment_seconds)
            win_values[m] = out[m][:, span.frames]
        win_cond = cond if window_cond is None else window_cond(win.start, win.end)
        win_uncond = uncond
        if aligned_rate_hz is not None:  # the stream's frame 0 must sit at the window's start
            a = round(win.start * aligned_rate_hz) / aligned_rate_hz
            e = max(win.end, a + 1 / aligned_rate_hz)
            win_cond = win_cond.crop_time(a, e, aligned_rate_hz) if win_cond is not None else None
            win_uncond = uncond.crop_time(a, e, aligned_rate_hz) if uncond is not None else None
        res = sample_masked(
            model_fn,
            process,
            win_start,
            win_values,
            grid,
            sampler=settings.sampler,
            eta=settings.eta,
            cond=win_cond,
            uncond=win_uncond,
            guidance=settings.guidance,
            cross_guidance=settings.cross,
            generator=generator,
            progress=progress,
            callback=callback,
        )
        for m, s in start.items():
            span = win.spans[m]
            new = slice(span.fresh - span.start, span.end - span.start)
            keep = s[:, span.fresh : span.end] == 0  # [B, n'] the task's own GIVEN frames stay as given
            fresh = out[m][:, span.fresh : span.end]
            made = res[m][:, new].to(out[m].dtype)
            out[m][:, span.fresh : span.end] = torch.where(expand_like(keep, made), fresh, made)
    return out
