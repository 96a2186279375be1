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
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from mmgen.conditioning.encoder import ConditionEncoder, save_frozen_parts
from mmgen.core.fileio import atomic_dir
from mmgen.diffusion.process import Process, VPCosine
from mmgen.diffusion.settings import SamplingSettings
from mmgen.diffusion.tasks import Task
from mmgen.dit.model import MultimodalDiT
from mmgen.modalities.media import MediaModality
from mmgen.pipeline import steps
from mmgen.pipeline.conditions import given_groups
from mmgen.pipeline.config import CONFIG_NAME, FORMAT, GenerationDefaults, plain, read_config
from mmgen.pipeline.dance_first import dance_first_stages, merge_passes, raw_outputs
from mmgen.pipeline.generation import Generation
from mmgen.pipeline.hub import locate
from mmgen.pipeline.load import check_parts, load_condition, load_dit, load_modalities, load_process
from mmgen.pipeline.media import resolve_task

logger = logging.getLogger(__name__)

#: arguments of `Pipeline.generate` that "dance first" sets per pass instead of passing them on
#: (each pass gets its own Task, inputs and sampling keywords)
_NOT_PASSED_ON = frozenset({"self", "task", "given", "task_kwargs", "sampling"})


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
                save_frozen_parts(self.condition, tmp, tmp / "condition")
                cfg["condition"] = "condition"
            cfg["defaults"] = self.defaults.to_dict()
            cfg["info"] = self.info
            (tmp / CONFIG_NAME).write_text(yaml.safe_dump(cfg, sort_keys=False))
        logger.info("saved pipeline to %s", directory)
        return Path(directory)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: torch.device | str = "cpu",
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> Pipeline:
        """Load a folder written by `save_pretrained` (safetensors only): a local folder,
        "toydance" (the shipped checkpoint) or a Hugging Face Hub id "owner/name" (downloaded to,
        or with HF_HUB_OFFLINE=1 read only from, the Hub cache; `revision` a branch, tag or
        commit). A missing or corrupt part raises one error naming the file; DiT and VAE specs
        must agree. A folder whose pipeline.yaml says `kind: lm` loads as the codebook-LM baseline
        (`mmgen.lm.pipeline`)."""
        from mmgen.lm.pipeline import LMPipeline, pipeline_kind

        directory = locate(name_or_path, revision, cache_dir)
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
        settings: SamplingSettings | None = None,
        caption: str | None = None,
        melody: Any = None,
        melody_rate: int | None = None,
        image: Any = None,
        quality: float | None = None,
        seed: int = 0,
        batch_size: int | None = None,
        long_form: bool | None = None,
        progress: bool = True,
        task_kwargs: Mapping[str, Any] | None = None,
        hop: float | None = None,
        overlap: float | None = None,
        dtype: str | torch.dtype | None = None,
        dance_first: bool | None = None,
        **sampling: Any,
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
            settings: a `SamplingSettings` to use instead of the pipeline's `defaults`.
            **sampling: fields of `SamplingSettings` overriding them one by one: steps, sampler,
                grid ("uniform", "log_snr", "karras" or clock values), grid_shift, grid_args, eta,
                guidance ({group: scale}; None: the settings' groups where they apply; {}: none),
                cross_guidance (MoMu switch level or CrossGuidance; None: the settings' when >= 2
                modalities are generated from scratch; False: off; True: on).
            caption: text for the condition encoder (None: unconditional, the null embedding).
            melody: a mono reference waveform [S] at `melody_rate` Hz for the melody conditioner
                (its dominant-pitch chroma, MusicGen); None: its null embedding.
            image: a reference image uint8 [H, W, 3] for the CLIP image conditioner.
            quality: the quality score asked for (QA-MDT; e.g. 5 on a 1-5 scale).
                Each condition needs a conditioner of its kind in the pipeline (else ValueError);
                timing (seconds_start, seconds_total) is always given, per long-form window
                (`mmgen.pipeline.conditions`, docs/conditions.md).
            seed: same seed, same output (noise and Griffin-Lim phases come from it).
            batch_size: examples to draw (inputs with batch 1 are shared by all of them).
            long_form: sample in windows (default: when `seconds` exceeds `defaults.window_seconds`).
            task_kwargs: arguments of the preset (e.g. {"head": 1.0, "tail": 1.0}, {"via": ["motion"]});
                they override `defaults.task_args` of the preset.
            hop, overlap: long-form seconds (any values; `mmgen.pipeline.long_form`): default
                `defaults.hop`, overlap = window - hop.
            dtype: "fp32" (default), "bf16" or "fp16": the DiT runs under autocast at that precision
                (`mmgen.pipeline.precision`; speed and quality in docs/inference.md).
            dance_first: for a DiT that draws video from pose maps, a task that generates the whole
                video without a given dance first generates the dance, then the video from it
                (`mmgen.pipeline.dance_first`). None: whenever that applies; False: one pass.
        """
        # the call's own keywords, taken before anything below rebinds them: "dance first" hands
        # every one of them to both passes (a keyword added to the signature is passed on too)
        call = {k: v for k, v in locals().items() if k not in _NOT_PASSED_ON}
        # 1. Check inputs
        given, dtype = steps.check_inputs(
            self, given, sampling, dtype, seconds=seconds, caption=caption, seed=seed, batch_size=batch_size,
            long_form=long_form, task_kwargs=task_kwargs,
        )
        condition_inputs = steps.condition_inputs(self, caption, melody, melody_rate, image, quality)
        # 2. Resolve the task
        task_obj = steps.resolve_task(self, task, given, task_kwargs)
        stages = dance_first_stages(self, task_obj) if dance_first is not False else None
        if stages is not None:
            args = {**call, "dance_first": False, **sampling}
            first = self.generate(stages[0], {m: v for m, v in given.items() if m in stages[0].modalities}, **args)
            made = raw_outputs(self, first, stages[0].modalities)
            second = self.generate(stages[1], made, **{**args, "batch_size": first.batch_size})
            return merge_passes(first, second, task_obj, tuple(sorted(given)))
        # 3. Prepare the raw inputs
        raw, batch = steps.prepare_inputs(self, given, batch_size)
        # 4. Clip length, windows
        seconds, long_form = steps.clip_length(self, seconds, raw, long_form)
        # 5. Lay the task over the clip
        frames, resolved = steps.lay_out_task(self, task_obj, raw, seconds, batch, long_form, task_kwargs)
        # 6. Sampling settings
        groups = given_groups(self.condition, condition_inputs, self.modalities, resolved.start)
        settings = steps.sampling_settings(self, settings, sampling, resolved.start, groups)
        with _inference(
            [self.dit, *self.modalities.values(), *([self.condition] if self.condition else [])], self.dit
        ):
            # 7. Prepare latents: encode what the task GIVEs / EDITs
            covered, latents_in = steps.encode_inputs(self, raw, frames, resolved)
            # 8. Conditions
            windows = steps.conditions(self, condition_inputs, batch, raw, resolved.start, seconds)
            # 9. Denoising
            latents = steps.denoise(
                self, task_obj, resolved, frames, latents_in, settings, seconds=seconds, long_form=long_form,
                batch=batch, windows=windows, seed=seed, progress=progress, hop=hop, overlap=overlap,
                dtype=dtype,
            )
            # 10. Decode, GIVEN frames pasted back
            return steps.decode(
                self, task_obj, latents, raw, covered, resolved.start, seconds, seed, sorted(latents_in)
            )


def plain_process(process: Process) -> dict[str, Any]:
    """The process as `{class_path, init_args}` (a frozen dataclass; fields set in __init__ only)."""
    cls = type(process)
    args = {f.name: getattr(process, f.name) for f in dataclasses.fields(process) if f.init}
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": args}
