"""The long-form window and hop of a `Pipeline.generate` call, from the pipeline defaults and the
caller's `hop` / `overlap` (seconds; any values, each modality rounds them on its own latent grid,
`mmgen.diffusion.window_plan`).

    window = the training window (defaults.window_seconds)
    neither given         hop = defaults.hop (half the window unless the checkpoint says otherwise)
    hop given             overlap = window - hop
    overlap given         hop = window - overlap
    both given            window = hop + overlap (at most the training window)
"""

from __future__ import annotations

import math

from mmgen.core.errors import MmgenError


class LongFormError(MmgenError, ValueError):
    """A hop / overlap that cannot tile a clip."""


def window_and_hop(
    window: float | None, default_hop: float | None, hop: float | None, overlap: float | None
) -> tuple[float, float]:
    """(window, hop) seconds for long form (see the module table); raises naming the argument."""
    if window is None:
        raise LongFormError("long form needs defaults.window_seconds (the training window) in the pipeline")
    for name, value in (("hop", hop), ("overlap", overlap)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise LongFormError(f"{name} must be a number of seconds, got {value!r}")
    if hop is not None and not 0 < hop <= window:
        raise LongFormError(f"hop must be in (0, {window:g}] seconds (the training window), got {hop:g}")
    if overlap is not None and not 0 <= overlap < window:
        raise LongFormError(f"overlap must be in [0, {window:g}) seconds (the training window), got {overlap:g}")
    if hop is not None and overlap is not None:
        if hop + overlap > window + 1e-9:
            raise LongFormError(
                f"hop + overlap ({hop:g} + {overlap:g} s) exceed the training window ({window:g} s)"
            )
        return hop + overlap, float(hop)
    if overlap is not None:
        return float(window), window - overlap
    if hop is not None:
        return float(window), float(hop)
    return float(window), float(default_hop if default_hop is not None else window / 2)
