"""Anchor decoded motion to the given frames around it (in-betweening, continuation, editing).

The motion VAE stores the horizontal root as a per-frame velocity, so decoded motion drifts away
from the true root path (on held-out ToyDance clips the VAE round trip alone is 2 cm off after
1-3 s). When the given frames are pasted back around a generated span, that drift shows up as a
jump at each join, and an in-between no longer arrives at its end keyframe. As is usual for root
trajectories in motion in-betweening, each generated span is shifted horizontally. The shift ramps
linearly from the root error at the last given frame before the span to the error at the first
given frame after it. When only one side is given, the shift is constant. The pose and the root
height are left as decoded.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def anchor_to_given(
    decoded: torch.Tensor,
    reference: torch.Tensor,
    given: torch.Tensor,
    root: Callable[[torch.Tensor], torch.Tensor],
    up_axis: int = 1,
) -> torch.Tensor:
    """Shift the generated frames of `decoded` so their root meets `reference` at the given frames.

    Args:
        decoded: joints [B, N, J, D] decoded from latents (given spans included).
        reference: joints [B or 1, N, J, D] whose frames marked by `given` are the true ones.
        given: bool [N], True where the frame was given (it will be pasted from `reference`).
        root: joints [B, N, J, D] -> root positions [B, N, D] (the skeleton's root definition).
        up_axis: the vertical axis, which is not shifted.

    Returns:
        `decoded` with every frame not given translated by the ramped root offset. Frames that are
        given are returned unchanged; with no given frame at all, nothing changes.
    """
    if reference.shape[1:] != decoded.shape[1:] or reference.shape[0] not in (1, decoded.shape[0]):
        raise ValueError(f"anchor_to_given: reference {tuple(reference.shape)} does not match decoded {tuple(decoded.shape)}")
    n = decoded.shape[1]
    if given.shape != (n,):
        raise ValueError(f"anchor_to_given: given must be [{n}], got {tuple(given.shape)}")
    given = given.to(decoded.device, torch.bool)
    if not bool(given.any()) or bool(given.all()):
        return decoded
    offset = (root(reference) - root(decoded)).to(decoded.dtype)  # [B, N, D]
    offset[..., up_axis] = 0
    idx = torch.arange(n, device=decoded.device)
    prev = torch.cummax(torch.where(given, idx, -1), dim=0).values  # last given frame <= t (-1: none)
    nxt = torch.where(given, idx, n).flip(0).cummin(dim=0).values.flip(0)  # first given frame >= t (n: none)
    has_prev, has_next = prev >= 0, nxt < n
    off_prev = offset[:, prev.clamp(min=0)]  # [B, N, D]
    off_next = offset[:, nxt.clamp(max=n - 1)]
    w = ((idx - prev) / (nxt - prev).clamp(min=1)).to(decoded.dtype)  # 0 at prev, 1 at next
    w = torch.where(has_prev & has_next, w, torch.where(has_next, 1.0, 0.0).to(decoded.dtype))
    shift = off_prev * (1 - w)[None, :, None] + off_next * w[None, :, None]
    shift = shift * (~given & (has_prev | has_next))[None, :, None].to(decoded.dtype)
    return decoded + shift.unsqueeze(2)
