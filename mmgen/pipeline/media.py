"""Raw media in and out of `Pipeline.generate`: task presets for a pipeline, input checks, decoding
with GIVEN frames pasted back, and the `Generation` it returns.

Pasting. A raw sample / frame belongs to the latent frame that covers it (index * rate / raw_rate,
floored); where that latent frame is GIVEN the input itself is returned:

    latent frames (7.5 Hz)   G     G     N     N     G          G = GIVEN (start level 0)
    raw motion (30 fps)      GGGG  GGGG  dddd  dddd  GGGG       d = decoded from the sample
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mmgen.core.blend import blend_runs
from mmgen.diffusion.tasks import PRESETS, Task, preset_parameters
from mmgen.modalities.chunked import decode_long
from mmgen.modalities.media import MediaModality
from mmgen.modalities.motion_anchor import anchor_to_given, ease_into_given
from mmgen.modalities.raw_length import fit_length, pad_mode
from mmgen.pipeline.generation import Generation

EASE_SECONDS = 1 / 3  # generated motion fades into the given pose over this much time at each join


def resolve_task(
    task: str | Task, available: Sequence[str], given: Sequence[str] = (), **kwargs: Any
) -> Task:
    """A Task for a pipeline with the `available` modalities: a Task as is, or a preset with its arguments.

    Presets over several modalities (joint, interpolate, continue, inpaint, edit) default to every
    pipeline modality for `joint` and to the `given` ones for the others (minus `conditions`).
    """
    if isinstance(task, Task):
        if kwargs:
            raise ValueError(f"task arguments {sorted(kwargs)} only apply to preset names, not a Task")
        resolved = task
    else:
        params = preset_parameters(task, kwargs)
        if "modalities" in params and "modalities" not in kwargs:
            skip = set(kwargs.get("conditions", ()))
            mods = [m for m in available if (task == "joint" or m in given) and m not in skip]
            kwargs["modalities"] = tuple(mods or [m for m in available if m not in skip])
        resolved = PRESETS[task](**kwargs)
    resolved.check_modalities(list(available))
    return resolved


def check_raw(mod: MediaModality, name: str, value: Any) -> torch.Tensor:
    """One given input -> a CPU batch [B, N, ...] (float32 audio / motion, uint8 video)."""
    what = f"given[{name!r}]"
    x = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    x = x.detach().cpu()
    if mod.kind == "motion":
        return mod.vae.codec.check_joints(x, what).float()
    if mod.kind == "video":
        h, w = mod.vae.frame_size
        x = x[None] if x.ndim == 4 else x
        if x.dtype != torch.uint8 or x.ndim != 5 or tuple(x.shape[2:]) != (h, w, 3):
            raise ValueError(
                f"{what}: expected uint8 frames [F, {h}, {w}, 3] or [B, F, {h}, {w}, 3], got {x.dtype} {tuple(x.shape)}"
            )
        return x
    x = x[None] if x.ndim == 1 else x
    if not x.is_floating_point() or x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{what}: expected a float waveform [S] or [B, S], got {x.dtype} {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what}: waveform contains NaN or infinite samples")
    return x.float()


def common_batch(raw: Mapping[str, torch.Tensor], batch_size: int | None) -> int:
    """The batch size of a call: `batch_size`, else the largest input batch; inputs must be 1 or it."""
    sizes = {m: int(x.shape[0]) for m, x in raw.items()}
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch = batch_size or max(sizes.values(), default=1)
    if any(b not in (1, batch) for b in sizes.values()):
        raise ValueError(f"given inputs have batch sizes {sizes}; each must be 1 or {batch}")
    return batch


_SPREAD_CHUNK = 1 << 20  # raw samples per step of `spread_to_raw` (8 MB of float64 indices)


def latent_frame_of(mod: MediaModality, start: int, stop: int, frames: int) -> torch.Tensor:
    """Index of the latent frame covering each raw sample / frame in [start, stop) (floored, see above)."""
    pos = torch.arange(start, stop, dtype=torch.float64) * (mod.spec.rate_hz / mod.raw_rate)
    return torch.floor(pos + 1e-6).long().clamp(max=frames - 1)


def spread_to_raw(mod: MediaModality, per_latent: torch.Tensor, n: int) -> torch.Tensor:
    """A bool per latent frame [T_m] -> a bool per raw sample / frame [n] (that of its latent frame).

    Built in steps of 2^20 samples: the index of 10 min of 22-kHz audio at once would be 13 M
    int64s plus their float64 positions (~0.3 GB); the result is one byte per sample.
    """
    per_latent = per_latent.cpu()
    out = torch.empty(n, dtype=torch.bool)
    for a in range(0, n, _SPREAD_CHUNK):
        b = min(n, a + _SPREAD_CHUNK)
        out[a:b] = per_latent[latent_frame_of(mod, a, b, len(per_latent))]
    return out


def blank_generated(mod: MediaModality, covered: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The input [B, N, ...] with the raw frames of fully generated latent frames (start level 1)
    replaced by the straight line between the frames around them (`mmgen.core.blend`), so that what
    the caller put there cannot reach the GIVEN latents through the encoder's receptive field."""
    generated = spread_to_raw(mod, start >= 1, covered.shape[1])
    if not bool(generated.any()) or bool(generated.all()):
        return covered
    return blend_runs(covered, generated, dim=1)


def decode_raw(
    mod: MediaModality,
    z: torch.Tensor,
    raw: torch.Tensor | None,
    covered: torch.Tensor | None,
    start: torch.Tensor,
    seconds: float,
    seed: int,
) -> torch.Tensor:
    """Latents [B, T_m, ...] -> raw [B, N, ...] of `seconds` (CPU), GIVEN frames pasted from `raw`.

    `covered` is the input fit to whole latent frames (its frame 0 gives the motion root state);
    `start` the task's start level per latent frame [T_m].
    """
    n = mod.raw_length(seconds)
    pad = pad_mode(mod)
    given = (start == 0).cpu()  # [T_m]
    if raw is not None and bool(given.all()):
        return fit_length(raw, n, pad)
    state = None
    if mod.kind == "motion" and covered is not None and bool((start < 1).any()):
        state = mod.initial_state(covered[:, :2])
    generator = torch.Generator(device=mod.device).manual_seed(int(seed) + 1)
    full = round(z.shape[1] / mod.spec.rate_hz * mod.raw_rate)
    out = fit_length(decode_long(mod, z, min(n, full), state=state, generator=generator), n, pad)
    if raw is not None and bool(given.any()):
        keep = spread_to_raw(mod, given, n)  # [N] its latent frame is GIVEN
        raw = fit_length(raw, n, pad).to(out.dtype)
        if mod.kind == "motion":
            out = anchor_to_given(out, raw, keep, mod.root)
            out = ease_into_given(out, raw, keep, frames=max(1, round(EASE_SECONDS * mod.raw_rate)))
        out = torch.where(keep.reshape(1, n, *([1] * (out.ndim - 2))), raw, out)
    return out


def to_generation(
    modalities: Mapping[str, MediaModality],
    task: Task,
    seconds: float,
    out: Mapping[str, torch.Tensor],
    latents: Mapping[str, torch.Tensor],
    seed: int,
    given: Sequence[str],
    start: Mapping[str, torch.Tensor],
) -> Generation:
    """Raw tensors per modality -> a Generation of numpy arrays with their rates; `start` (the
    task's start level per latent frame) gives the raw frames that were generated."""
    res = Generation(task=task.name, seconds=seconds, seed=int(seed), given=tuple(given))
    res.latents = {m: z.detach().cpu() for m, z in latents.items()}
    for name, x in out.items():
        mod = modalities[name]
        s = start[name].cpu()
        res.generated[name] = spread_to_raw(mod, s != 0, x.shape[1]).numpy()
        if mod.kind == "motion":
            res.joints, res.fps = x.float().numpy(), float(mod.raw_rate)
        elif mod.kind == "video":
            res.frames, res.video_fps = x.to(torch.uint8).numpy(), float(mod.raw_rate)
        else:
            res.audio, res.sample_rate = x.float().numpy(), int(mod.raw_rate)
    return res
