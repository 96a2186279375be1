"""`Pipeline`: modality VAEs + one MultimodalDiT (+ condition encoder) -> any task on raw media.

    given raw media ──fit to the clip, generated spans blanked──► MediaModality.encode
        ──► latents of GIVEN / EDIT modalities
        task (a noise-level mask) ──► diffusion.sample (or sample_long past the training window)
    sampled latents ──► MediaModality.decode ──► raw; GIVEN frames pasted back from the input ──► Generation

A clip of `seconds` has `spec.num_frames(seconds)` latent frames per modality. Inputs are trimmed
or padded (audio with silence, motion / video by holding the last frame) to the raw length those
latent frames cover, so each VAE gives exactly that many; outputs are cut to `seconds`:

    seconds = 4.1, motion 30 fps, latents 7.5 Hz   ->  31 latent frames  <- 124 input frames
                                                       (a 4-s input of 120 frames holds its last frame 4x)
                                                       decode: 124 frames -> output round(4.1 * 30) = 123

Before encoding, the raw frames of fully generated latent frames are replaced by the straight
line between the given frames around them (`pipeline_media.blank_generated`): what the caller
puts where the model generates (the true middle, zeros) cannot leak into the GIVEN latents
through the encoders' receptive fields. EDIT spans keep their content (SDEdit starts from it).

Raw samples of GIVEN latent frames are returned as given (not their VAE round trip). Motion
decodes from the given motion's frame-0 root state when the task takes motion as input (it was
dropped by the translation-invariant features), else from the origin.

Folder layout (`save_pretrained` / `from_pretrained`): see `mmgen.pipeline.config`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from mmgen.conditioning.encoder import ConditionEncoder
from mmgen.core.cond import Cond
from mmgen.core.fileio import atomic_dir
from mmgen.diffusion.guidance import CrossGuidance
from mmgen.diffusion.longform import sample_long
from mmgen.diffusion.process import Process, VPCosine
from mmgen.diffusion.samplers import sample, uniform_grid
from mmgen.diffusion.tasks import Task
from mmgen.dit.model import MultimodalDiT
from mmgen.modalities.media import MediaModality
from mmgen.modalities.raw_length import coverage_length, fit_length, pad_mode
from mmgen.pipeline.checks import check_call, check_clip
from mmgen.pipeline.config import CONFIG_NAME, FORMAT, GenerationDefaults, plain, read_config
from mmgen.pipeline.generation import Generation
from mmgen.pipeline.load import check_parts, load_condition, load_dit, load_modalities, load_process
from mmgen.pipeline.media import (
    blank_generated,
    check_raw,
    common_batch,
    decode_raw,
    resolve_task,
    to_generation,
)

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _inference(modules: Sequence[torch.nn.Module], dit: MultimodalDiT) -> Iterator[None]:
    """eval() mode and no level checks (the sampler's levels are valid) for a call; restored after."""
    modes = [(m, m.training) for mod in modules for m in mod.modules()]
    check = dit.check_levels
    for mod in modules:
        mod.eval()
    dit.check_levels = False
    try:
        with torch.no_grad():
            yield
    finally:
        dit.check_levels = check
        for m, training in modes:
            m.training = training


class Pipeline:
    """Everything needed to run any task: `generate(task, given=...)` -> `Generation`.

    Args:
        dit: the MultimodalDiT; its modality names and specs must equal the VAEs'.
        modalities: {name: MediaModality} (AudioModality / MotionModality / VideoModality).
        process: the diffusion process the DiT was trained with (default VP-cosine, v-prediction).
        condition: ConditionEncoder for text / timing, required iff the DiT has context / prefix inputs.
        defaults: GenerationDefaults (or its dict form).
        info: free-form facts stored in pipeline.yaml (training time, metrics, data).
    """

    def __init__(
        self,
        dit: MultimodalDiT,
        modalities: Mapping[str, MediaModality],
        process: Process | None = None,
        condition: ConditionEncoder | None = None,
        defaults: GenerationDefaults | Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.dit, self.modalities = dit, dict(modalities)
        self.process = process if process is not None else VPCosine(prediction="v")
        self.condition = condition
        self.defaults = (
            defaults if isinstance(defaults, GenerationDefaults) else GenerationDefaults.from_dict(defaults)
        )
        self.info = dict(plain(dict(info or {})))
        check_parts(dit, self.modalities, self.process, condition)

    def __repr__(self) -> str:
        mods = ", ".join(f"{n}: {type(m).__name__} {m.spec.rate_hz:g} Hz" for n, m in self.modalities.items())
        return f"Pipeline({mods}; DiT d={self.dit.d_model} depth={self.dit.depth}; text={self.condition is not None})"

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    def to(self, device: torch.device | str) -> Pipeline:
        """Move every part to `device` (in place); returns self."""
        self.dit.to(device)
        for m in self.modalities.values():
            m.to(device)
        if self.condition is not None:
            self.condition.to(device)
        return self

    # ------------------------------------------------------------------ save / load
    def save_pretrained(
        self, directory: str | os.PathLike, dtype: torch.dtype | None = None, overwrite: bool = False
    ) -> Path:
        """Write the folder (pipeline.yaml + one save_pretrained folder per part), atomically.

        `dtype=torch.float16` stores every part's parameters at half precision (half the size;
        loading casts back to float32). `directory` must be new or empty, or (with `overwrite`)
        a pipeline folder mmgen wrote."""
        cfg: dict[str, Any] = {"format": FORMAT, "modalities": {}}
        with atomic_dir(directory, "pipeline", overwrite=overwrite) as tmp:
            for name, mod in self.modalities.items():
                mod.save_pretrained(tmp / name, dtype)
                entry: dict[str, Any] = {"kind": mod.kind, "path": name}
                if hasattr(mod, "codec") and hasattr(mod.codec, "griffin_lim_iters"):
                    entry["griffin_lim_iters"] = int(mod.codec.griffin_lim_iters)
                cfg["modalities"][name] = entry
            self.dit.save_pretrained(tmp / "dit", dtype)
            cfg["dit"] = "dit"
            cfg["process"] = plain_process(self.process)
            cfg["condition"] = None
            if self.condition is not None:
                self.condition.save_pretrained(tmp / "condition", dtype)
                cfg["condition"] = "condition"
            cfg["defaults"] = self.defaults.to_dict()
            cfg["info"] = self.info
            (tmp / CONFIG_NAME).write_text(yaml.safe_dump(cfg, sort_keys=False))
        logger.info("saved pipeline to %s", directory)
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: torch.device | str = "cpu") -> Pipeline:
        """Load a folder written by `save_pretrained` (safetensors only). A missing or corrupt part
        raises one error naming the file; DiT and VAE specs must agree. A folder whose
        pipeline.yaml says `kind: lm` loads as the codebook-LM baseline (`mmgen.lm.pipeline`)."""
        from mmgen.lm.pipeline import LMPipeline, pipeline_kind

        if pipeline_kind(directory) == "lm":
            return LMPipeline.from_pretrained(directory, device)  # type: ignore[return-value]
        cfg = read_config(directory)
        modalities = load_modalities(directory, cfg, device)
        dit = load_dit(directory, cfg, device)
        condition = load_condition(directory, cfg, device)
        process = load_process(directory, cfg)
        try:
            defaults = GenerationDefaults.from_dict(cfg.get("defaults"))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{Path(directory) / CONFIG_NAME}: {err}") from None
        try:
            return cls(dit, modalities, process, condition, defaults, cfg.get("info"))
        except ValueError as err:
            raise ValueError(f"{directory}: {err}") from None

    # ------------------------------------------------------------------ tasks
    def task(self, task: str | Task, given: Sequence[str] = (), **kwargs: Any) -> Task:
        """A preset by name with its span arguments (head / tail / prefix / start / end / t0 / ...);
        multi-modality presets default to all modalities for `joint`, else to the `given` ones.
        A preset's `defaults.task_args` apply under the arguments given here."""
        if isinstance(task, str):
            kwargs = self.defaults.task_kwargs(task, kwargs)
        return resolve_task(task, list(self.modalities), given, **kwargs)

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        task: str | Task = "dance2music",
        given: Mapping[str, Any] | None = None,
        *,
        seconds: float | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        guidance: Mapping[str, float] | None = None,
        cross_guidance: float | CrossGuidance | bool | None = None,
        caption: str | None = None,
        seed: int = 0,
        batch_size: int | None = None,
        long_form: bool | None = None,
        progress: bool = True,
        task_kwargs: Mapping[str, Any] | None = None,
    ) -> Generation:
        """Run a task on raw media.

        Args:
            task: a preset name (`mmgen.diffusion.PRESETS`) or a Task.
            given: raw inputs: "audio" [S] / [B, S] float at the audio sample rate, "motion" joints
                [T, J, 3] / [B, T, J, 3] at the motion fps, "video" uint8 [F, H, W, 3] /
                [B, F, H, W, 3] at the video fps and frame size (numpy or torch). Audio is mono
                and the first axis is the batch: a [2, S] array is two clips, so average stereo
                first ([S, 2], soundfile's layout, is refused by name). Every argument is checked
                before any work (`mmgen.pipeline.checks`, bounds in `mmgen.core.limits`).
            seconds: clip length (default: the longest given input, else `defaults.seconds`).
            steps, sampler: solver settings (default: `defaults`).
            guidance: {group: scale} (None: `defaults.guidance` where it applies; {} for none).
            cross_guidance: MoMu switch level or CrossGuidance (None: the default when >= 2
                modalities are generated; False: off).
            caption: text for the condition encoder (None: unconditional, the null embedding).
            seed: same seed, same output (noise and Griffin-Lim phases come from it).
            batch_size: examples to draw (inputs with batch 1 are shared by all of them).
            long_form: sample in windows (default: when `seconds` exceeds `defaults.window_seconds`).
            task_kwargs: arguments of the preset (e.g. {"head": 1.0, "tail": 1.0}, {"via": ["motion"]});
                they override `defaults.task_args` of the preset.
        """
        given = check_call(self, given, seconds=seconds, steps=steps, sampler=sampler, guidance=guidance,
                           cross_guidance=cross_guidance, caption=caption, seed=seed, batch_size=batch_size,
                           long_form=long_form, task_kwargs=task_kwargs)
        unknown = sorted(set(given) - set(self.modalities))
        if unknown:
            raise ValueError(
                f"given names modalities {unknown} this pipeline lacks (has {sorted(self.modalities)})"
            )
        task_obj = self.task(task, list(given), **dict(task_kwargs or {}))
        unused = sorted(set(given) - set(task_obj.modalities))
        if unused:
            raise ValueError(
                f"task {task_obj.name!r} does not use {unused} (it runs on {list(task_obj.modalities)}); drop them from given"
            )
        raw = {m: check_raw(self.modalities[m], m, v) for m, v in given.items()}
        batch = common_batch(raw, batch_size)
        raw = {m: x.expand(batch, *x.shape[1:]) if x.shape[0] != batch else x for m, x in raw.items()}
        if seconds is None:
            seconds = max(
                (x.shape[1] / self.modalities[m].raw_rate for m, x in raw.items()),
                default=self.defaults.seconds,
            )
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        seconds = float(seconds)
        d = self.defaults
        window = d.window_seconds
        if long_form is None:
            long_form = window is not None and seconds > window + 1e-9
        if long_form and window is None:
            raise ValueError("long_form needs defaults.window_seconds (the training window) in the pipeline")

        specs = {m: self.modalities[m].spec for m in self.modalities}
        frames = {m: specs[m].num_frames(seconds) for m in task_obj.modalities}
        resolved = task_obj.resolve(specs, frames, self.dit.segment_seconds)
        missing = [m for m in task_obj.modalities if resolved.needs_input[m] and m not in raw]
        if missing:
            raise ValueError(
                f"task {task_obj.name!r} needs given {missing} (GIVEN or EDIT frames) but got none"
            )
        check_clip(self, task_obj, resolved.start, seconds, batch, long_form, task_kwargs)
        with _inference(
            [self.dit, *self.modalities.values(), *([self.condition] if self.condition else [])], self.dit
        ):
            covered = {  # every given modality is in the task (checked above)
                m: blank_generated(
                    self.modalities[m],
                    fit_length(x, coverage_length(self.modalities[m], frames[m]), pad_mode(self.modalities[m])),
                    resolved.start[m],
                )
                for m, x in raw.items()
            }
            latents_in = {
                m: self.modalities[m].encode(covered[m]).to(self.device).float()
                for m in raw
                if resolved.needs_input[m]
            }
            cond, uncond = self._conditions(caption, batch, window if long_form else seconds)
            start = resolved.start  # {m: [T_m]} 0 GIVEN, 1 GEN, t0 EDIT
            steps = d.steps if steps is None else steps
            kwargs = {
                "steps": steps,
                "sampler": d.sampler if sampler is None else sampler,
                "process": self.process,
                "grid": uniform_grid(steps, d.grid_shift),
                "guidance": self._guidance(guidance, start, caption is not None),
                "cross_guidance": self._cross(cross_guidance, start),
                "cond": cond,
                "uncond": uncond,
                "segment_seconds": self.dit.segment_seconds,
                "batch_size": batch,
                "generator": torch.Generator(device=self.device).manual_seed(int(seed)),
                "device": self.device,
                "progress": progress,
            }
            if long_form:
                latents = sample_long(
                    self.dit,
                    task_obj,
                    specs,
                    latents_in,
                    seconds=seconds,
                    window_seconds=window,
                    hop_seconds=d.hop,
                    **kwargs,
                )
            else:
                latents = sample(self.dit, task_obj, specs, latents_in, seconds=seconds, **kwargs)
            out = {
                m: decode_raw(
                    self.modalities[m], latents[m], raw.get(m), covered.get(m), start[m], seconds, seed
                )
                for m in latents
            }
        return to_generation(self.modalities, task_obj, seconds, out, latents, seed, sorted(latents_in), start)

    # ------------------------------------------------------------------ helpers
    def _conditions(
        self, caption: str | None, batch: int, seconds_total: float
    ) -> tuple[Cond | None, Cond | None]:
        """(cond, uncond): the caption's Cond and the null Cond; without a caption both are null."""
        if self.condition is None:
            if caption is not None:
                raise ValueError(
                    "caption given, but this pipeline has no condition encoder (no text conditioning)"
                )
            return None, None
        null = self.condition.null_cond(batch)
        if caption is None:
            return null, null
        if not isinstance(caption, str):
            raise TypeError(f"caption must be a string, got {type(caption).__name__}")
        inputs = {
            "caption": [caption] * batch,
            "seconds_start": [0.0] * batch,
            "seconds_total": [seconds_total] * batch,
        }
        needed = sorted({k for c in self.condition.conditioners.values() for k in c.keys} - set(inputs))
        if needed:
            raise ValueError(
                f"the pipeline's condition encoder needs inputs {needed} that generate() cannot supply"
            )
        cond = self.condition(batch=inputs)
        length = cond.context.shape[1] if cond.context is not None else None
        return cond, self.condition.null_cond(batch, context_length=length)

    def _guidance(
        self, guidance: Mapping[str, float] | None, start: Mapping[str, torch.Tensor], text: bool
    ) -> dict[str, float]:
        if guidance is not None:
            if "text" in guidance and not text:
                raise ValueError("text guidance needs a caption")
            return dict(guidance)
        out = {}
        for group, scale in self.defaults.guidance.items():
            if (group == "text" and text) or (group in start and bool((start[group] == 0).any())):
                out[group] = scale
        return out

    def _cross(
        self, cross: float | CrossGuidance | bool | None, start: Mapping[str, torch.Tensor]
    ) -> CrossGuidance | float | None:
        if cross is False:
            return None
        if cross is True:
            return (
                self.defaults.cross_guidance if self.defaults.cross_guidance is not None else CrossGuidance()
            )
        if cross is not None:
            return cross
        # MoMu's cross-guidance ties modalities generated from scratch to each other; where each
        # has given frames of its own (interpolate, continue, inpaint) those already tie them, and
        # on the shipped checkpoint it made interpolation worse (MPJPE 0.044 vs 0.041 m without)
        from_scratch = [m for m, s in start.items() if bool((s > 0).all())]
        return self.defaults.cross_guidance if len(from_scratch) >= 2 else None


def plain_process(process: Process) -> dict[str, Any]:
    """The process as `{class_path, init_args}` (a frozen dataclass; fields set in __init__ only)."""
    cls = type(process)
    args = {f.name: getattr(process, f.name) for f in dataclasses.fields(process) if f.init}
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": args}
