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

from collections.abc import Mapping, Sequence

import torch

from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion.guidance import CrossGuidance, Latents, ModelFn
from mmgen.diffusion.process import Process, expand_like
from mmgen.diffusion.samplers import (
    Callback,
    _broadcast_cond,
    as_cross_guidance,
    check_process,
    prepare_task,
    sample_masked,
    uniform_grid,
)
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
    steps: int = 50,
    sampler: str = "dpmpp2m",
    grid: Sequence[float] | None = None,
    eta: float | None = None,
    guidance: Mapping[str, float] | None = None,
    cross_guidance: CrossGuidance | float | None = None,
    cond: Cond | None = None,
    uncond: Cond | None = None,
    segment_seconds: float = 0.5,
    aligned_rate_hz: float | None = None,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    callback: Callback | None = None,
) -> Latents:
    """Run `task` over `seconds` in windows; returns the stitched latents of every present modality.

    Same arguments as `samplers.sample` plus `window_seconds` (W) and `hop_seconds` (H, any value
    in (0, W]); `cond` is used for every window, its time-aligned stream (at `aligned_rate_hz`)
    cut to the window's seconds; `callback` is called per step of every window. `process` is
    required (the one the model was trained with).
    """
    check_process(process)
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
    cond, uncond = _broadcast_cond(cond, batch, "cond"), _broadcast_cond(uncond, batch, "uncond")
    grid = list(grid) if grid is not None else uniform_grid(steps)
    frames = {m: s.shape[1] for m, s in start.items()}
    for win in plan_windows(seconds, window_seconds, hop_seconds, rates, segment_seconds, frames):
        win_start, win_values = {}, {}
        for m, s in start.items():
            span = win.spans[m]
            level = s[:, span.frames].clone()  # [B, n] the task's levels
            level[:, : span.fresh - span.start] = 0.0  # the overlap: GIVEN, as generated before
            win_start[m] = harmonize_levels(level, rates[m], segment_seconds)
            win_values[m] = out[m][:, span.frames]
        res = sample_masked(
            model_fn,
            process,
            win_start,
            win_values,
            grid,
            sampler=sampler,
            eta=eta,
            cond=_crop(cond, win.start, win.end, aligned_rate_hz),
            uncond=_crop(uncond, win.start, win.end, aligned_rate_hz),
            guidance=guidance,
            cross_guidance=as_cross_guidance(cross_guidance),
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


def _crop(cond: Cond | None, start: float, end: float, rate_hz: float | None) -> Cond | None:
    """The window's part of a time-aligned stream (frame 0 at the window's nominal start, snapped
    to the stream's grid); conditions without a stream are returned as they are."""
    if cond is None or cond.aligned is None:
        return cond
    if rate_hz is None:
        raise ValueError("long form with a time-aligned condition stream needs aligned_rate_hz (the DiT's)")
    a = round(start * rate_hz) / rate_hz
    return cond.crop_time(a, max(end, a + 1 / rate_hz), rate_hz)
