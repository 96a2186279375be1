"""Long-form sampling: windows of W seconds slide with hop H over a clip of any length.

    clip (s)    0   1   2   3   4   5   6   7   8   9  10  11        W = 4 s, H = 3 s, 12 s clip
    window 0    N   N   N   N
    window 1                G   N   N   N                        overlap with what is done: GIVEN
    window 2                            G   N   N   N
    window 3                                    G   G   N   N    shifted back to end at 12 s

Inside each window the task's own roles hold (condition modalities, e.g. the dance of
dance2music, are GIVEN throughout; a GIVEN prefix stays GIVEN); frames an earlier window
already generated become GIVEN with their generated values. The last window is shifted back so
that it ends at the clip end (its start snaps down to a segment boundary where every modality
has a whole frame, so it may be up to one segment longer than W). A clip no longer than W is a
single window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mmgen.core.cond import Cond, GroupedCond
from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion.guidance import Latents, ModelFn
from mmgen.diffusion.process import Process
from mmgen.diffusion.samplers import Callback, broadcast_cond, check_process, prepare_task, sample_masked
from mmgen.diffusion.settings import SamplingSettings, resolve_settings
from mmgen.diffusion.tasks import Task

_EPS = 1e-6


def _whole_frames(seconds: float, rates: Sequence[float]) -> bool:
    return all(abs(seconds * r - round(seconds * r)) < _EPS for r in rates)


def _aligned(seconds: float, segment_seconds: float, rates: Sequence[float]) -> bool:
    k = seconds / segment_seconds
    return abs(k - round(k)) < _EPS and _whole_frames(seconds, rates)


def window_bounds(
    total: float, window: float, hop: float, segment_seconds: float, rates: Sequence[float]
) -> list[tuple[float, float]]:
    """[(start, end)] seconds of every window (see the module picture)."""
    if not (window > 0 and hop > 0):
        raise ValueError(f"window and hop seconds must be positive, got {window}, {hop}")
    if hop > window + _EPS:
        raise ValueError(f"hop ({hop} s) longer than the window ({window} s) would leave gaps")
    if not _aligned(hop, segment_seconds, rates):
        raise ValueError(
            f"hop {hop} s must be a whole number of segments ({segment_seconds} s) and of frames"
        )
    if not _whole_frames(window, rates):
        raise ValueError(f"window {window} s must be a whole number of frames of every modality")
    bounds = [(0.0, min(window, total))]
    while bounds[-1][1] < total - _EPS:
        a = bounds[-1][0] + hop
        if a + window > total + _EPS:  # shift the last window back so it ends at the clip end
            k = math.floor((total - window) / segment_seconds + _EPS)
            while k > 0 and not _aligned(k * segment_seconds, segment_seconds, rates):
                k -= 1
            a = k * segment_seconds
            if a <= bounds[-1][0] + _EPS:  # no aligned start after the previous one: extend that one
                bounds[-1] = (bounds[-1][0], total)
                break
        bounds.append((a, min(a + window, total)))
    return bounds


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
    **overrides: Any,
) -> Latents:
    """Run `task` over `seconds` in windows; returns the stitched latents of every present modality.

    Same arguments as `samplers.sample` (`settings` plus its fields as keyword overrides) plus
    `window_seconds` (W) and `hop_seconds` (H); `cond` is used for every window, its time-aligned
    stream (Cond.aligned, over the whole clip at `aligned_rate_hz`) cut to each window's seconds;
    `callback` is called per step of every window. `process` is required (the one the model was
    trained with).
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
    rates = [specs[m].rate_hz for m in start]
    batch = next(iter(start.values())).shape[0]
    out = {m: v.clone() for m, v in values.items()}
    done = {m: torch.zeros_like(s, dtype=torch.bool) for m, s in start.items()}  # [B, T] generated already
    cond, uncond = broadcast_cond(cond, batch, "cond"), broadcast_cond(uncond, batch, "uncond")
    grid = settings.make_grid(process)
    for a, e in window_bounds(seconds, window_seconds, hop_seconds, segment_seconds, rates):
        sl = {
            m: slice(round(a * specs[m].rate_hz), min(round(e * specs[m].rate_hz), s.shape[1]))
            for m, s in start.items()
        }
        win_start = {
            m: torch.where(done[m][:, sl[m]], torch.zeros_like(s[:, sl[m]]), s[:, sl[m]])
            for m, s in start.items()
        }
        win_values = {m: out[m][:, sl[m]] for m in start}
        win_cond, win_uncond = cond, uncond
        if aligned_rate_hz is not None:  # the stream's frame 0 must sit at the window's start
            win_cond = cond.crop_time(a, e, aligned_rate_hz) if cond is not None else None
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
        for m in start:
            out[m][:, sl[m]] = res[m].to(out[m].dtype)
            done[m][:, sl[m]] |= win_start[m] > 0
    return out
