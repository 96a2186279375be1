"""Inference precision: `generate(..., dtype="bf16")` runs the DiT under autocast.

    fp32   no autocast (the default; what every test and number in the docs uses)
    bf16   torch.autocast(bfloat16) on the DiT: CPUs with AVX512-BF16 / AMX and GPUs from Ampere on
    fp16   torch.autocast(float16) on the DiT: GPUs; on CPU it runs but is slow (docs/inference.md)

Only the DiT's calls are autocast: the sampler's arithmetic (levels, multistep history, guidance
mixing) stays float32, since the DiT's outputs are cast back before the sampler sees them, and the
VAEs encode / decode in float32 (Griffin-Lim phase retrieval and the motion integration
accumulate rounding; they are a small share of the time, docs/inference.md).
"""

from __future__ import annotations

from typing import Any

import torch

from mmgen.core.cond import Cond
from mmgen.diffusion.guidance import Latents, Levels

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}


def parse_dtype(value: Any) -> torch.dtype:
    """"fp32" / "bf16" / "fp16" (or float32, bfloat16, float16, a torch.dtype, None = fp32)."""
    if value is None:
        return torch.float32
    if isinstance(value, torch.dtype):
        if value in DTYPES.values():
            return value
    elif isinstance(value, str):
        key = _ALIASES.get(value.lower(), value.lower())
        if key in DTYPES:
            return DTYPES[key]
    raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (or a torch float32 / bfloat16 / float16), got {value!r}")


class AutocastModel:
    """`model(x, t, cond)` under torch.autocast(dtype), its outputs cast back to float32."""

    def __init__(self, model: Any, device: torch.device, dtype: torch.dtype) -> None:
        if not torch.amp.is_autocast_available(device.type):
            raise ValueError(f"dtype {dtype}: autocast is not available on {device.type}; use dtype='fp32'")
        self.model, self.device_type, self.dtype = model, device.type, dtype

    def __call__(self, x: Latents, t: Levels, cond: Cond | None = None) -> Latents:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.model(x, t, cond)
        return {m: v.float() for m, v in out.items()}


def with_precision(model: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """The model itself for float32, else wrapped in `AutocastModel`."""
    return model if dtype == torch.float32 else AutocastModel(model, device, dtype)
