"""`pipeline.yaml`: the file that ties a pipeline folder together, and the generation defaults in it.

    <dir>/pipeline.yaml
        format: 1
        modalities:                               name -> a MediaModality folder (kind, relative path)
          audio:  {kind: audio_mel, path: audio, griffin_lim_iters: 32}
          motion: {kind: motion, path: motion}
          video:  {kind: video, path: video}
        dit: dit                                  MultimodalDiT folder (config.yaml + model.safetensors)
        process: {class_path: mmgen.diffusion.process.VPCosine, init_args: {prediction: v, ...}}
        condition: null                           or a ConditionEncoder folder
        defaults: {steps: 50, sampler: dpmpp2m, grid: uniform, guidance: {motion: 2.0}, ...}   (GenerationDefaults)
        info: {...}                               free-form: training time, metrics, data

Every sub-folder is a `save_pretrained` folder: safetensors weights, nothing pickled.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from mmgen.core.errors import MmgenError
from mmgen.diffusion.settings import SamplingSettings
from mmgen.diffusion.tasks import preset_parameters

CONFIG_NAME = "pipeline.yaml"
FORMAT = 1
TOP_KEYS = ("format", "modalities", "dit", "process", "condition", "defaults", "info")


@dataclass(frozen=True)
class GenerationDefaults(SamplingSettings):
    """What `Pipeline.generate` uses when an argument is not given: the `SamplingSettings`
    (steps, sampler, grid, grid_shift, grid_args, eta, guidance, cross_guidance) plus the clip.

    Args:
        guidance: {group: scale}, groups = condition modalities or "text"; a group is applied only
            where it means something (the modality is GIVEN in the task, a caption is given).
        cross_guidance: MoMu switch level, or all of `CrossGuidance` as a mapping (e.g. `{switch: 1.0,
            estimate: previous}`), applied by default where >= 2 modalities are generated from
            scratch (joint, a conditional task via a bridge), not where each generated modality has
            given frames of its own (interpolate, continue); None: off.
        seconds: clip length when nothing is given to measure it from.
        window_seconds, hop_seconds: the training window; longer clips are sampled in windows
            (`diffusion.sample_long`) sliding by the hop (default half the window).
        task_args: {preset: {argument: value}}, preset arguments this checkpoint samples best with
            (e.g. `{video2audio: {via: [motion]}}`); arguments given to `generate` win.
    """

    seconds: float = 4.0
    window_seconds: float | None = None
    hop_seconds: float | None = None
    task_args: dict[str, dict[str, Any]] = field(default_factory=dict)

    where: ClassVar[str] = "defaults"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_task_args(self.task_args)
        if not self.seconds > 0:
            raise ValueError(f"defaults.seconds must be positive, got {self.seconds}")
        if self.window_seconds is not None and not self.window_seconds > 0:
            raise ValueError(f"defaults.window_seconds must be positive or null, got {self.window_seconds}")
        if self.hop_seconds is not None:
            if self.window_seconds is None:
                raise ValueError("defaults.hop_seconds is set but window_seconds is not")
            if not 0 < self.hop_seconds <= self.window_seconds:
                raise ValueError(
                    f"defaults.hop_seconds must be in (0, window_seconds={self.window_seconds}], got {self.hop_seconds}"
                )

    def task_kwargs(self, task: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The preset arguments for `task`: these defaults, overridden by the `given` ones."""
        return {**self.task_args.get(task, {}), **dict(given or {})}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> GenerationDefaults:
        """From the `defaults:` mapping of pipeline.yaml; unknown keys raise."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown generation defaults {unknown}; known: {sorted(known)}")
        return cls(**values)

    @property
    def hop(self) -> float | None:
        """The long-form hop: `hop_seconds`, else half the window."""
        if self.window_seconds is None:
            return None
        return self.hop_seconds if self.hop_seconds is not None else self.window_seconds / 2


def check_task_args(task_args: Any) -> None:
    """`defaults.task_args` names presets and arguments those presets take."""
    if not isinstance(task_args, Mapping):
        raise ValueError(f"defaults.task_args must map task presets to arguments, got {task_args!r}")
    for task, args in task_args.items():
        if not isinstance(args, Mapping):
            raise ValueError(f"defaults.task_args[{task!r}] must map arguments to values, got {args!r}")
        preset_parameters(task, args, where="defaults.task_args: ")


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and check `<directory>/pipeline.yaml` (structure only; the parts load elsewhere)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing (not a pipeline folder; make one with Pipeline.save_pretrained)"
        )
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MmgenError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise MmgenError(f"{path}: expected a mapping with keys {list(TOP_KEYS)}")
    unknown = sorted(set(cfg) - set(TOP_KEYS))
    if unknown:
        raise MmgenError(f"{path}: unknown keys {unknown}; known: {list(TOP_KEYS)}")
    if cfg.get("format", FORMAT) != FORMAT:
        raise MmgenError(f"{path}: pipeline format {cfg.get('format')!r}, this mmgen reads {FORMAT}")
    mods = cfg.get("modalities")
    if not isinstance(mods, dict) or not mods:
        raise MmgenError(f"{path}: 'modalities' must map each modality name to {{kind, path}}")
    for name, entry in mods.items():
        if not isinstance(entry, dict) or "kind" not in entry or "path" not in entry:
            raise MmgenError(f"{path}: modality {name!r} needs 'kind' and 'path', got {entry!r}")
        part_path(directory, entry["path"], f"modality {name!r}")
    if not isinstance(cfg.get("dit"), str):
        raise MmgenError(f"{path}: 'dit' must name the DiT folder, got {cfg.get('dit')!r}")
    part_path(directory, cfg["dit"], "dit")
    if cfg.get("condition") is not None:
        if not isinstance(cfg["condition"], str):
            raise MmgenError(f"{path}: 'condition' must name a folder or be null, got {cfg['condition']!r}")
        part_path(directory, cfg["condition"], "condition")
    if cfg.get("info") is not None and not isinstance(cfg["info"], dict):
        raise MmgenError(f"{path}: 'info' must be a mapping")
    return cfg


def part_path(directory: str | os.PathLike, relative: Any, what: str) -> Path:
    """`<directory>/<relative>`, refusing absolute paths and '..' (a pipeline folder is self-contained)."""
    rel = Path(str(relative))
    if not str(relative) or rel.is_absolute() or ".." in rel.parts:
        raise MmgenError(
            f"{Path(directory) / CONFIG_NAME}: {what} path must be relative inside the folder, got {relative!r}"
        )
    return Path(directory) / rel


def plain(value: Any) -> Any:
    """numpy / torch scalars and arrays -> plain Python, so `info` dumps as safe YAML."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"pipeline info: cannot store a {type(value).__name__} in {CONFIG_NAME}")
