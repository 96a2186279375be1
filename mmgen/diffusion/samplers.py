"""Per-token samplers: a global clock tau runs over a grid from 1 to 0; every token follows it.

    token level at clock tau = min(tau, start)     start: GEN 1, EDIT t0, GIVEN 0

    grid (tau)       1.0   0.8   0.6   0.4   0.2   0.0
    GEN  token       1.0   0.8   0.6   0.4   0.2   0.0    moves every step
    EDIT(0.5) token  0.5   0.5   0.5   0.4   0.2   0.0    waits (noised input), joins 0.6 -> 0.4
    GIVEN token      0     0     0     0     0     0      never updated, returned bit-identical

A token that joins late takes a first-order step first (a multistep solver has no history for
it yet, `multistep.py`).
Samplers are stateless functions: `sample_masked` works on raw per-token start levels, `sample`
resolves a Task first and takes its sampler settings as one `SamplingSettings`
(`settings.py`). Long windows live in `longform.py`, CFG / cross-guidance in `guidance.py`.
The loop never reads tensor values on the host (no .item(), no branching on tensors); the grid
is a list of host floats.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from mmgen.core.cond import Cond, GroupedCond
from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion.grids import check_grid
from mmgen.diffusion.guidance import CrossGuidance, GuidedDenoiser, Latents, Levels, ModelFn
from mmgen.diffusion.multistep import MULTISTEP, History
from mmgen.diffusion.process import Process, check_unit_interval, expand_like
from mmgen.diffusion.settings import SAMPLERS, SamplingSettings, resolve_settings
from mmgen.diffusion.solvers import ddim_step, euler_step, heun_correct
from mmgen.diffusion.tasks import Task, get_task

logger = logging.getLogger(__name__)

Callback = Callable[[int, float, Latents], None]


def check_process(process: object) -> Process:
    """The process is required: a model only samples right with the one it was trained with."""
    if not isinstance(process, Process):
        raise TypeError(
            "process must be the Process the model was trained with, e.g. VPCosine(prediction='v') "
            f"(a Pipeline has it as .process), got {process!r}"
        )
    return process


def _check_latents(start: Levels, values: Latents) -> None:
    if set(start) != set(values):
        raise ValueError(f"start levels name {sorted(start)} but values name {sorted(values)}")
    for m, s in start.items():
        v = values[m]
        if v.ndim not in (3, 5):
            raise ValueError(
                f"{m!r}: latents must be [B, T, C] or [B, T, h, w, C], got shape {tuple(v.shape)}"
            )
        if s.shape != v.shape[:2]:
            raise ValueError(f"{m!r}: start levels {tuple(s.shape)} do not match latents {tuple(v.shape)}")
        check_unit_interval(s, f"start levels of {m!r}")


def sample_masked(
    model_fn: ModelFn,
    process: Process,
    start: Levels,
    values: Latents,
    grid: Sequence[float],
    *,
    sampler: str = "dpmpp2m",
    eta: float | None = None,
    cond: Cond | GroupedCond | None = None,
    uncond: Cond | None = None,
    guidance: Mapping[str, float] | None = None,
    cross_guidance: CrossGuidance | None = None,
    noise: Latents | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    callback: Callback | None = None,
) -> Latents:
    """Sample every token from its start level to 0.

    Args:
        start: [B, T_m] start level per token (0 GIVEN, 1 GEN, t0 EDIT).
        values: clean inputs like the latents; read only where start < 1 (GIVEN / EDIT): GEN
            tokens start from pure noise whatever their values hold (see below).
        grid: clock values from high to 0 (`grids.py`: `uniform_grid`, `log_snr_grid`, ...;
            `DiscreteVP.timesteps_to_grid` for a diffusers schedule).
        sampler: "ddpm" (ancestral), "ddim" (eta, default 0), "dpmpp2m", "dpmpp3m",
            "unipc2", "unipc3" (multistep, one model call per step), "euler" or "heun";
            docs/samplers.md says which to pick with which grid.
        noise: initial noise per modality (drawn from `generator` in sorted modality order if None).
        callback: called as callback(step, tau_after, x) after every step.
    Returns:
        the sampled latents (float32 or wider); GIVEN tokens bit-identical to `values`.
    """
    check_process(process)
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {SAMPLERS}")
    if eta is None:
        eta = 1.0 if sampler == "ddpm" else 0.0
    if eta < 0 or (eta != 0 and sampler not in ("ddim", "ddpm")):
        raise ValueError(f"eta must be >= 0 and is only used by ddim/ddpm, got {eta} for {sampler!r}")
    grid = check_grid(grid)
    _check_latents(start, values)
    # GEN tokens hold 0: processes with alpha(1) > 0 (DiscreteVP keeps 0.0064 of the input at t = 1)
    # would otherwise noise whatever the caller left there into the start sample.
    values = {m: v.to(torch.promote_types(v.dtype, torch.float32)) for m, v in values.items()}
    values = {m: torch.where(expand_like(start[m] == 1.0, v), 0.0, v) for m, v in values.items()}
    if noise is None:
        noise = {
            m: torch.randn(
                values[m].shape, generator=generator, device=values[m].device, dtype=values[m].dtype
            )
            for m in sorted(values)
        }
    elif set(noise) != set(values) or any(noise[m].shape != values[m].shape for m in values):
        raise ValueError(f"noise must match the latents: {sorted(noise)} vs {sorted(values)}")
    denoise = GuidedDenoiser(
        model_fn, process, start, values, cond, uncond, guidance, cross_guidance, generator
    )

    x = {}
    for m, v in values.items():  # every token enters at level min(grid[0], start)
        lv = start[m].clamp(max=grid[0])
        alpha, sigma = (expand_like(c, v) for c in process.alpha_sigma(lv))
        x[m] = torch.where(expand_like(lv == 0, v), v, alpha * v + sigma * noise[m].to(v.dtype))

    state: dict[str, History] = {}
    x0_prev: Latents | None = None
    calls = 0
    for i in tqdm(range(len(grid) - 1), desc=f"sampling ({sampler})", disable=not progress, leave=False):
        tau_s, tau_t = grid[i], grid[i + 1]
        s = {m: st.clamp(max=tau_s) for m, st in start.items()}  # [B, T]
        t = {m: st.clamp(max=tau_t) for m, st in start.items()}
        x0, eps, n = denoise(x, s, tau_s, x0_prev)
        calls += n
        if sampler in ("ddim", "ddpm"):
            for m in sorted(x):
                z = None
                if eta > 0:
                    z = torch.randn(x[m].shape, generator=generator, device=x[m].device, dtype=x[m].dtype)
                x[m] = ddim_step(process, x[m], x0[m], eps[m], s[m], t[m], eta=eta, noise=z)
        elif sampler in MULTISTEP:
            solver = MULTISTEP[sampler]
            cap = solver.order_cap(i, len(grid) - 1)
            for m, xm in x.items():
                x[m], state[m] = solver.step(process, xm, x0[m], s[m], t[m], state.get(m), cap)
        else:
            proposal, slope = {}, {}
            for m, xm in x.items():
                proposal[m], slope[m] = euler_step(process, xm, x0[m], eps[m], s[m], t[m])
            if sampler == "heun" and tau_t > 0:
                x0, eps, n = denoise(proposal, t, tau_s, x0)
                calls += n
                proposal = {m: heun_correct(process, x[m], slope[m], x0[m], eps[m], s[m], t[m]) for m in x}
            x = proposal
        x0_prev = x0
        if callback is not None:
            callback(i, tau_t, x)
    logger.debug("sampled %d steps with %s: %d branch evaluations", len(grid) - 1, sampler, calls)
    return x


def broadcast_cond(cond: Cond | GroupedCond | None, batch: int, what: str) -> Cond | GroupedCond | None:
    if cond is None or cond.batch_size in (None, batch):  # a GroupedCond answers for its Conds
        return cond
    if cond.batch_size == 1:
        return cond.map(lambda v: v.expand(batch, *v.shape[1:]))
    raise ValueError(f"{what} has batch size {cond.batch_size}, the sample has {batch}")


def _lengths(
    task: Task,
    specs: Mapping[str, ModalitySpec],
    given: Latents,
    seconds: float | None,
    num_frames: Mapping[str, int] | None,
) -> dict[str, int]:
    if num_frames is not None:
        return {m: int(num_frames[m]) for m in task.modalities if m in num_frames} | {
            m: given[m].shape[1] for m in task.modalities if m not in num_frames and m in given
        }
    if seconds is None:
        if not given:
            raise ValueError("give `seconds`, `num_frames` or input latents to fix the length")
        seconds = max(given[m].shape[1] / specs[m].rate_hz for m in given)
    return {m: specs[m].num_frames(seconds) for m in task.modalities}


def prepare_task(
    task: Task | str,
    specs: Mapping[str, ModalitySpec],
    given: Latents | None = None,
    *,
    seconds: float | None = None,
    num_frames: Mapping[str, int] | None = None,
    segment_seconds: float = 0.5,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[Levels, Latents]:
    """Validate inputs and lay the task over the clip: ([B, T_m] start levels, values per modality).

    Values hold the input where the task GIVEs or EDITs and 0 where it GENerates
    (EDIT(1.0) therefore behaves as GEN).
    """
    task = get_task(task) if isinstance(task, str) else task
    task.check_modalities(list(specs))
    given = dict(given or {})
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise ValueError(
            f"given latents name modalities {unknown} that the model lacks (has {sorted(specs)})"
        )
    for m, v in given.items():
        spec = specs[m]
        site = spec.latent_shape(1)[1:]  # (C,) or (h, w, C)
        if v.ndim != spec.latent_rank or tuple(v.shape[2:]) != site:
            raise ValueError(f"given {m!r} must be [B, T, {', '.join(map(str, site))}], got {tuple(v.shape)}")
    frames = _lengths(task, specs, given, seconds, num_frames)
    resolved = task.resolve(specs, frames, segment_seconds)
    for m in task.modalities:
        if resolved.needs_input[m] and m not in given:
            raise ValueError(f"task {task.name!r} has GIVEN/EDIT frames of {m!r} but no input latents for it")
        if m in given and given[m].shape[1] != frames[m]:
            raise ValueError(f"given {m!r} has {given[m].shape[1]} frames, the clip needs {frames[m]}")
    batches = {v.shape[0] for m, v in given.items() if m in resolved.start}
    if batch_size is not None:
        batches.add(int(batch_size))
    if len(batches) > 1:
        raise ValueError(f"inconsistent batch sizes: {sorted(batches)}")
    batch = batches.pop() if batches else 1
    if device is None:
        device = next((v.device for v in given.values()), torch.device("cpu"))
    return lay_task(resolved.start, specs, frames, given, batch, device)


def lay_task(
    start: Mapping[str, torch.Tensor],
    specs: Mapping[str, ModalitySpec],
    frames: Mapping[str, int],
    given: Latents,
    batch: int,
    device: torch.device | str,
) -> tuple[Levels, Latents]:
    """A resolved task's start levels {m: [T_m]} over a batch: ([B, T_m] levels, values), values
    holding the given latents (float32 or wider) where the task GIVEs / EDITs and 0 elsewhere."""
    levels, values = {}, {}
    for m, st in start.items():
        levels[m] = st.to(device).expand(batch, -1).contiguous()  # [B, T]
        if m in given:
            v = given[m].to(device=device, dtype=torch.promote_types(given[m].dtype, torch.float32))
        else:
            v = torch.zeros((batch, *specs[m].latent_shape(frames[m])), device=device)
        values[m] = torch.where(expand_like(levels[m] == 1.0, v), torch.zeros_like(v), v)  # GEN ignores input
    return levels, values


def sample(
    model_fn: ModelFn,
    task: Task | str,
    specs: Mapping[str, ModalitySpec],
    given: Latents | None = None,
    *,
    process: Process,
    settings: SamplingSettings | None = None,
    seconds: float | None = None,
    num_frames: Mapping[str, int] | None = None,
    cond: Cond | GroupedCond | None = None,
    uncond: Cond | None = None,
    segment_seconds: float = 0.5,
    batch_size: int | None = None,
    noise: Latents | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    **overrides: Any,
) -> Latents:
    """Run a task: resolve its mask over the clip, then `sample_masked`.

    Args:
        task: a Task or a preset name (`tasks.PRESETS`).
        specs: the model's modalities; the task may only name these.
        given: input latents for GIVEN / EDIT modalities, [B, T_m, C] or [B, T_m, h, w, C].
        process: the Process the model was trained with (required; `Pipeline.process`).
        settings: sampler, steps, grid, eta, guidance, cross-guidance (`SamplingSettings`;
            default `SamplingSettings()`); `**overrides` are its fields as keywords
            (`steps=25, sampler="unipc2", grid="log_snr"`) and win over `settings`.
        seconds / num_frames: clip length (default: the longest given input).
        segment_seconds: must equal the model's (levels are constant within a segment).
    Returns:
        latents of every present modality; GIVEN frames bit-identical to `given`.
    """
    check_process(process)
    settings = resolve_settings(settings, overrides)
    start, values = prepare_task(
        task,
        specs,
        given,
        seconds=seconds,
        num_frames=num_frames,
        segment_seconds=segment_seconds,
        batch_size=batch_size,
        device=device,
    )
    batch = next(iter(start.values())).shape[0]
    return sample_masked(
        model_fn,
        process,
        start,
        values,
        settings.make_grid(process),
        sampler=settings.sampler,
        eta=settings.eta,
        cond=broadcast_cond(cond, batch, "cond"),
        uncond=broadcast_cond(uncond, batch, "uncond"),
        guidance=settings.guidance,
        cross_guidance=settings.cross,
        noise=noise,
        generator=generator,
        progress=progress,
        callback=callback,
    )
