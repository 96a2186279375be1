"""Anchor decoded motion to the given frames around it (in-betweening, continuation, editing).

The motion VAE stores the horizontal root as a per-frame velocity, so decoded motion drifts away
from the true root path (on held-out ToyDance clips the VAE round trip alone is 2 cm off after
1-3 s). When the given frames are pasted back around a generated span, that drift shows up as a
jump at each join, and an in-between no longer arrives at its end keyframe. As is usual for root
trajectories in motion in-betweening, each generated span is shifted horizontally. The shift ramps
linearly from the root error at the last given frame before the span to the error at the first
given frame after it. When only one side is given, the shift is constant.

What is left at a join is the pose (and the root height): the decoded frame next to a given one
is a slightly different pose, which shows as a pop. `ease_into_given` fades that mismatch in over
a few frames on the generated side of each join (an offset blend, as in inertialization), so the
motion leaves and meets the given frames continuously; frames farther from a join stay as decoded.
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
    prev, nxt = _nearest_given(given)
    has_prev, has_next = prev >= 0, nxt < n
    off_prev = offset[:, prev.clamp(min=0)]  # [B, N, D]
    off_next = offset[:, nxt.clamp(max=n - 1)]
    w = ((idx - prev) / (nxt - prev).clamp(min=1)).to(decoded.dtype)  # 0 at prev, 1 at next
    w = torch.where(has_prev & has_next, w, torch.where(has_next, 1.0, 0.0).to(decoded.dtype))
    shift = off_prev * (1 - w)[None, :, None] + off_next * w[None, :, None]
    shift = shift * (~given & (has_prev | has_next))[None, :, None].to(decoded.dtype)
    return decoded + shift.unsqueeze(2)


def _nearest_given(given: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(last given frame <= t, -1 if none; first given frame >= t, N if none), each [N]."""
    n = given.shape[0]
    idx = torch.arange(n, device=given.device)
    prev = torch.cummax(torch.where(given, idx, -1), dim=0).values
    nxt = torch.where(given, idx, n).flip(0).cummin(dim=0).values.flip(0)
    return prev, nxt


def ease_into_given(decoded: torch.Tensor, reference: torch.Tensor, given: torch.Tensor, frames: int) -> torch.Tensor:
    """Fade the mismatch at each join between given and generated frames into the generated side.

    The offset `reference - decoded` at the given frame of a join is added to the generated frames
    next to it with weight 1 - smoothstep(k / (frames + 1)) at distance k, reaching 0 after
    `frames` frames; a span between two joins gets both. Shapes as in `anchor_to_given`; given
    frames and frames farther than `frames` from every join are returned unchanged.
    """
    if frames < 1:
        raise ValueError(f"ease_into_given: frames must be >= 1, got {frames}")
    n = decoded.shape[1]
    if reference.shape[1:] != decoded.shape[1:] or given.shape != (n,):
        raise ValueError(
            f"ease_into_given: reference {tuple(reference.shape)}, given {tuple(given.shape)} do not match decoded {tuple(decoded.shape)}"
        )
    given = given.to(decoded.device, torch.bool)
    if not bool(given.any()) or bool(given.all()):
        return decoded
    prev, nxt = _nearest_given(given)
    idx = torch.arange(n, device=decoded.device)
    residual = (reference - decoded).to(decoded.dtype)  # [B, N, J, D]

    def weight(distance: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        u = (distance.to(decoded.dtype) / (frames + 1)).clamp(0, 1)
        w = 1 - u * u * (3 - 2 * u)
        return (w * (present & ~given)).reshape(1, n, *([1] * (decoded.ndim - 2)))

    eased = decoded + residual[:, prev.clamp(min=0)] * weight(idx - prev, prev >= 0)
    return eased + residual[:, nxt.clamp(max=n - 1)] * weight(nxt - idx, nxt < n)
