"""Diffusion maths, model-agnostic and per token: processes, MoNL levels, tasks, samplers.

Takes any callable `model_fn(x_t: dict[str, Tensor], t: dict[str, Tensor], cond) -> dict`;
never imports `mmgen.dit` (or modalities / data / train).
"""

from mmgen.diffusion.grids import GRIDS, check_grid, karras_grid, log_snr_grid, make_grid, uniform_grid
from mmgen.diffusion.guidance import CrossGuidance, GuidedDenoiser
from mmgen.diffusion.longform import sample_long
from mmgen.diffusion.loss import denoising_loss
from mmgen.diffusion.noise_levels import MoNLConfig, NoiseLevels, apply_null_text, sample_levels
from mmgen.diffusion.process import DiscreteVP, Process, RectifiedFlow, VPCosine
from mmgen.diffusion.samplers import prepare_task, sample, sample_masked
from mmgen.diffusion.settings import SAMPLERS, SamplingSettings
from mmgen.diffusion.tasks import (
    ABSENT,
    EDIT,
    GEN,
    GIVEN,
    PRESETS,
    Role,
    Span,
    Task,
    get_task,
)
from mmgen.diffusion.window_plan import plan_windows

__all__ = [
    "ABSENT",
    "EDIT",
    "GEN",
    "GIVEN",
    "GRIDS",
    "PRESETS",
    "SAMPLERS",
    "CrossGuidance",
    "DiscreteVP",
    "GuidedDenoiser",
    "MoNLConfig",
    "NoiseLevels",
    "Process",
    "RectifiedFlow",
    "Role",
    "SamplingSettings",
    "Span",
    "Task",
    "VPCosine",
    "apply_null_text",
    "check_grid",
    "denoising_loss",
    "get_task",
    "karras_grid",
    "log_snr_grid",
    "make_grid",
    "plan_windows",
    "prepare_task",
    "sample",
    "sample_levels",
    "sample_long",
    "sample_masked",
    "uniform_grid",
]
