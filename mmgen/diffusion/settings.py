"""`SamplingSettings`: how to sample (sampler, steps, grid, guidance), one object for every entry point.

    sample(model_fn, task, specs, given, process=p, settings=s)          diffusion.samplers
    sample_long(..., settings=s)                                          diffusion.longform
    GenerationDefaults(SamplingSettings + clip length, window, task_args) pipeline.config
    Pipeline.generate(task, given, settings=s)                            pipeline.pipeline

Each of them also takes the fields as keywords (`sample(..., steps=25, sampler="ddim")`), which
override `settings` field by field (`SamplingSettings.merged`). The settings are
seed-independent: the same settings and seed give the same sample.

    grid="uniform"   uniform_grid(steps, grid_shift)
    grid="log_snr"   log_snr_grid(process, steps, **grid_args)   (sigma_min, sigma_max)
    grid="karras"    karras_grid(process, steps, **grid_args)    (sigma_min, sigma_max, rho)
    grid=(1.0, ..., 0.0)   these clock values; `steps` becomes len(grid) - 1

docs/samplers.md says which sampler and grid to pick at which step count.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mmgen.diffusion.grids import GRIDS, check_grid, make_grid
from mmgen.diffusion.guidance import CrossGuidance
from mmgen.diffusion.multistep import MULTISTEP
from mmgen.diffusion.process import Process

SAMPLERS = ("ddpm", "ddim", *MULTISTEP, "euler", "heun")
LADDER_ARGS = {"log_snr": ("sigma_min", "sigma_max"), "karras": ("sigma_min", "sigma_max", "rho")}


@dataclass(frozen=True)
class SamplingSettings:
    """Sampler settings; invalid values raise ValueError naming the field.

    Args:
        steps: solver steps (model calls: one per step for the multistep samplers, two for heun).
        sampler: one of `SAMPLERS` ("dpmpp2m", "unipc2", "ddim", ...).
        grid: "uniform", "log_snr", "karras" or explicit clock values from 1 down to 0.
        grid_shift: SD3 shift of the uniform grid towards noise (1 = none; uniform grid only).
        grid_args: sigma_min / sigma_max (/ rho) of the "log_snr" and "karras" ladders.
        eta: DDIM / DDPM noise (None: 1 for ddpm, 0 for ddim); the other samplers take none.
        guidance: ordered {group: scale}, groups = condition modalities or "text" (guidance.py).
        cross_guidance: MoMu switch level in [0, 1], a CrossGuidance (or its mapping), None: off.
    """

    steps: int = 50
    sampler: str = "dpmpp2m"
    grid: str | tuple[float, ...] = "uniform"
    grid_shift: float = 1.0
    grid_args: dict[str, float] = field(default_factory=dict)
    eta: float | None = None
    guidance: dict[str, float] = field(default_factory=dict)
    cross_guidance: float | CrossGuidance | None = None

    where: ClassVar[str] = "settings"  # prefixes errors ("defaults" for pipeline.yaml's GenerationDefaults)

    def __post_init__(self) -> None:
        w = self.where
        if not isinstance(self.sampler, str) or self.sampler not in SAMPLERS:
            raise ValueError(f"{w}.sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        self._check_grid()
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"{w}.steps must be a positive integer, got {self.steps!r}")
        if isinstance(self.grid_shift, bool) or not isinstance(self.grid_shift, (int, float)) or not (
            0 < self.grid_shift < math.inf
        ):
            raise ValueError(f"{w}.grid_shift must be a positive number, got {self.grid_shift!r}")
        object.__setattr__(self, "grid_shift", float(self.grid_shift))
        if self.grid_shift != 1.0 and self.grid != "uniform":
            raise ValueError(f"{w}.grid_shift applies to the uniform grid only, not to grid={self._grid_name()}")
        if self.eta is not None:
            if isinstance(self.eta, bool) or not isinstance(self.eta, (int, float)) or not 0 <= self.eta < math.inf:
                raise ValueError(f"{w}.eta must be a number >= 0 or None, got {self.eta!r}")
            if self.eta != 0 and self.sampler not in ("ddim", "ddpm"):
                raise ValueError(f"{w}.eta is only used by ddim / ddpm, got eta={self.eta} for {self.sampler!r}")
            object.__setattr__(self, "eta", float(self.eta))
        object.__setattr__(self, "guidance", guidance_setting(self.guidance, w))
        object.__setattr__(self, "cross_guidance", cross_guidance_setting(self.cross_guidance, w))

    def _grid_name(self) -> str:
        return repr(self.grid) if isinstance(self.grid, str) else f"<{len(self.grid)} values>"

    def _check_grid(self) -> None:
        w = self.where
        if isinstance(self.grid, str):
            if self.grid not in GRIDS:
                raise ValueError(f"{w}.grid must be one of {GRIDS} or a sequence of clock values, got {self.grid!r}")
        elif isinstance(self.grid, Sequence):
            try:
                values = check_grid(self.grid)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{w}.grid: {err}") from None
            object.__setattr__(self, "grid", tuple(values))
            object.__setattr__(self, "steps", len(values) - 1)
        else:
            raise ValueError(f"{w}.grid must be one of {GRIDS} or a sequence of clock values, got {self.grid!r}")
        if not isinstance(self.grid_args, Mapping):
            raise ValueError(f"{w}.grid_args must map ladder arguments to numbers, got {self.grid_args!r}")
        allowed = LADDER_ARGS.get(self.grid, ()) if isinstance(self.grid, str) else ()
        bad = sorted(set(self.grid_args) - set(allowed))
        if bad:
            raise ValueError(f"{w}.grid_args {bad} do not apply to grid={self._grid_name()} (takes {list(allowed)})")
        for key, value in self.grid_args.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= math.inf:
                raise ValueError(f"{w}.grid_args[{key!r}] must be a positive number, got {value!r}")
        object.__setattr__(self, "grid_args", {str(k): float(v) for k, v in self.grid_args.items()})

    # ------------------------------------------------------------------ use
    def make_grid(self, process: Process) -> list[float]:
        """The clock values (host floats, 1 -> 0) this sampler visits on `process`."""
        if not isinstance(self.grid, str):
            return list(self.grid)
        return make_grid(self.grid, process, self.steps, shift=self.grid_shift, **self.grid_args)

    @property
    def cross(self) -> CrossGuidance | None:
        """`cross_guidance` as a CrossGuidance (a float is the switch level, MoMu's T_c / T)."""
        c = self.cross_guidance
        return CrossGuidance(switch=c) if isinstance(c, float) else c

    def sampling(self) -> SamplingSettings:
        """The plain SamplingSettings of these fields (drops what a subclass adds)."""
        names = [f.name for f in dataclasses.fields(SamplingSettings)]
        return SamplingSettings(**{n: getattr(self, n) for n in names})

    def merged(self, overrides: Mapping[str, Any] | None = None, **more: Any) -> SamplingSettings:
        """A copy with the given fields replaced; None values mean "not given" and are skipped.

        Giving `steps` without `grid` while the grid is explicit clock values raises (they disagree)."""
        values = {k: v for k, v in {**dict(overrides or {}), **more}.items() if v is not None}
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"unknown sampling settings {unknown}; known: {sorted(known)}")
        if not values:
            return self
        explicit = not isinstance(self.grid, str)
        if explicit and "grid" not in values and values.get("steps", self.steps) != self.steps:
            raise ValueError(
                    f"steps={values['steps']!r} conflicts with the explicit {self.steps}-step grid; "
                    "give grid='uniform' / 'log_snr' / 'karras' with it"
                )
        if "grid" in values and values["grid"] != self.grid:  # a new grid drops the old one's arguments
            values.setdefault("grid_args", {})
            if values["grid"] != "uniform":
                values.setdefault("grid_shift", 1.0)
        return dataclasses.replace(self, **values)

    # ------------------------------------------------------------------ YAML
    def to_dict(self) -> dict[str, Any]:
        """Plain values (YAML-safe): an explicit grid as a list, CrossGuidance as a mapping."""
        out = dataclasses.asdict(self)
        if not isinstance(self.grid, str):
            out["grid"] = list(self.grid)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SamplingSettings:
        """From a mapping of fields (e.g. pipeline.yaml's `defaults:`); unknown keys raise."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.where} {unknown}; known: {sorted(known)}")
        return cls(**values)


def guidance_setting(value: Any, where: str = "settings") -> dict[str, float]:
    """{group: finite scale}, order kept."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}.guidance must map groups to scales (e.g. {{'motion': 2.0}}), got {value!r}")
    out = {}
    for group, scale in value.items():
        if isinstance(scale, bool) or not (isinstance(scale, (int, float)) and math.isfinite(scale)):
            raise ValueError(f"{where}.guidance[{group!r}] must be a finite number, got {scale!r}")
        out[str(group)] = float(scale)
    return out


def cross_guidance_setting(value: Any, where: str = "settings") -> float | CrossGuidance | None:
    """A switch level in [0, 1], a CrossGuidance or its mapping, or None."""
    if value is None or isinstance(value, CrossGuidance):
        return value
    if isinstance(value, Mapping):
        try:
            return CrossGuidance(**value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}.cross_guidance: {err}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{where}.cross_guidance must be in [0, 1], a mapping of CrossGuidance or null, got {value!r}"
        )
    return float(value)


def resolve_settings(settings: SamplingSettings | None, overrides: Mapping[str, Any]) -> SamplingSettings:
    """`settings` (default SamplingSettings()) with keyword overrides; refuses a non-settings object."""
    if settings is None:
        settings = SamplingSettings()
    elif not isinstance(settings, SamplingSettings):
        raise TypeError(f"settings must be a SamplingSettings, got {type(settings).__name__}")
    return settings.merged(overrides)
