"""MoMu / LORIS kinematic amplitude indicator: spectral flux of a motion directogram (torch, batched).

With offsets F(r, j) = p(r, j) - p(r-1, j) of 2-D keypoints (or two chosen axes of 3-D joints):

    D(r, k) = sum_j ||F(r, j)|| * [angle of F(r, j), mod 180 deg, falls in bin k]     (directogram)
    Q(r)    = sum_k max(0, D(r, k) - D(r-1, k))                                      (r >= 2)

Source: MoMu-Diffusion (paper, Sec. "kinematic amplitude indicator") and LORIS
`d2m/loris_modules.py RhythmEncoder` (the code MoMu's benchmark inherits): 10 bins, envelope divided
by its per-clip maximum, peaks from `rhythm_peaks`. Published quirk, selectable with
`binning="loris"`: LORIS bins with `floor(angle_in_degrees) % nbins`, i.e. 1-degree slots taken modulo
10, not 18-degree sectors; `binning="uniform"` (default) uses nbins equal sectors of 180 deg.
LORIS returns T-2 values (Q for r = 2..T-1); `pad=True` prepends two zeros so Q[r] sits on frame r.
For 3-D joints the two `axes` select the projection plane (default x, y: the frontal plane of y-up
joints). Works on numpy (returns numpy) or torch tensors of any leading batch shape, on any device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def _as_tensor(x: Any, what: str) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), True


def directogram(
    offsets: torch.Tensor, nbins: int = 10, binning: str = "uniform", axes: tuple[int, int] = (0, 1)
) -> torch.Tensor:
    """Magnitude-weighted histogram of offset directions: `[..., J, D]` -> `[..., nbins]`."""
    if binning not in ("uniform", "loris"):
        raise ValueError(f"directogram: binning must be 'uniform' or 'loris', got {binning!r}")
    if nbins < 1:
        raise ValueError(f"directogram: nbins must be >= 1, got {nbins}")
    gx, gy = offsets[..., axes[0]].float(), offsets[..., axes[1]].float()  # [..., J]
    magnitude = torch.sqrt(gx**2 + gy**2)
    angle = torch.remainder(torch.atan2(gy, gx) * (180.0 / math.pi), 180.0)  # [0, 180)
    if binning == "loris":
        bins = torch.remainder(angle.floor().long(), nbins)
    else:
        bins = torch.clamp((angle * (nbins / 180.0)).floor().long(), 0, nbins - 1)
    hist = F.one_hot(bins, nbins).to(magnitude.dtype) * magnitude[..., None]  # [..., J, K]
    return hist.sum(dim=-2)  # [..., K]


def kinematic_amplitude(
    joints: Any,
    nbins: int = 10,
    binning: str = "uniform",
    axes: tuple[int, int] = (0, 1),
    normalize: bool = True,
    pad: bool = True,
) -> Any:
    """Kinematic amplitude indicator Q of `joints` `[..., T, J, D]` (D >= 2), T >= 3.

    Returns `[..., T]` (`pad=True`, Q[0] = Q[1] = 0) or `[..., T-2]` (LORIS layout). With `normalize`
    every clip is divided by its maximum (LORIS; an all-still clip stays 0 instead of NaN).
    """
    x, was_numpy = _as_tensor(joints, "joints")
    if x.ndim < 3 or x.shape[-1] < 2 or x.shape[-3] < 3:
        raise ValueError(
            f"kinematic_amplitude: expected joints [..., T >= 3, J, D >= 2], got {tuple(x.shape)}"
        )
    if max(axes) >= x.shape[-1] or axes[0] == axes[1]:
        raise ValueError(f"kinematic_amplitude: axes {axes} invalid for {x.shape[-1]}-D joints")
    if not torch.isfinite(x).all():
        raise ValueError("kinematic_amplitude: joints contain NaN or infinite values")
    offsets = x[..., 1:, :, :] - x[..., :-1, :, :]  # [..., T-1, J, D]
    dg = directogram(offsets, nbins, binning, axes)  # [..., T-1, K]
    flux = torch.relu(dg[..., 1:, :] - dg[..., :-1, :]).sum(dim=-1)  # [..., T-2]
    if normalize:
        flux = flux / flux.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(flux.dtype).tiny)
    if pad:
        flux = F.pad(flux, (2, 0))  # [..., T]
    return flux.cpu().numpy() if was_numpy else flux


def rhythm_peaks(
    envelope: Any,
    pre_avg: int = 2,
    post_avg: int = 2,
    pre_max: int = 3,
    post_max: int = 3,
    threshold: float = 0.1,
) -> Any:
    """LORIS `RhythmEncoder.pick_peak`: boolean peaks `[..., N]` of an envelope `[..., N]`.

    Published details kept: the "local" windows look FORWARD (mean over env[i : i + pre_avg + post_avg],
    max over env[i : i + pre_max + post_max], zero past the end); a peak needs env[i] == local max and
    local max - local mean > threshold * mean(env) (LORIS hard-codes 0.1; its config value is unused);
    of a run of consecutive peaks only the last is kept, and the last frame never is.
    """
    env, was_numpy = _as_tensor(envelope, "envelope")
    win_mean, win_max = pre_avg + post_avg, pre_max + post_max
    n = env.shape[-1]
    if env.ndim < 1 or n < max(win_mean, win_max) or min(win_mean, win_max) < 1:
        raise ValueError(
            f"rhythm_peaks: envelope of length {n} is shorter than the windows ({win_mean}, {win_max})"
        )
    flat = env.reshape(-1, n).float()  # [B, N]
    local_mean = F.pad(flat.unfold(1, win_mean, 1).mean(dim=2), (0, win_mean - 1))  # [B, N]
    local_max = F.pad(flat.unfold(1, win_max, 1).amax(dim=2), (0, win_max - 1))  # [B, N]
    level = threshold * flat.mean(dim=1, keepdim=True)  # [B, 1]
    peak = ((local_max - local_mean) > level) & (local_max == flat)
    keep = F.pad(
        (peak[:, 1:] != peak[:, :-1]).to(torch.uint8), (0, 1)
    ).bool()  # value changes at the next frame
    out = (peak & keep).reshape(env.shape)
    return out.cpu().numpy() if was_numpy else out
