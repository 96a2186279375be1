"""Time-aligned condition streams: resampling onto a latent grid, and the DiT's per-token addition.

A stream is a sequence of feature frames [B, S, F] at `src_rate` frames per second; frame s sits
at time s / src_rate on the seconds axis that `mmgen.core.timeline` and RoPE use, and holds the
stream's value over [s / src_rate, (s + 1) / src_rate). Latent frame i of a modality at rate r
covers [i / r, (i + 1) / r). `resample_stream` gives each latent frame one feature vector:

    stream finer than the grid (src_rate >= r): AREA AVERAGE over the latent frame's interval,
    each stream frame weighted by how much of it falls inside (partial frames count partly)

        stream  |s0 |s1 |s2 |s3 |s4 |s5 |s6 |        src_rate = 3 r / 2 -> q = 1.5 stream frames per latent frame
        latent  |    i0    |    i1    |    i2    |
                 i0 = (1 s0 + 0.5 s1) / 1.5      i1 = (0.5 s1 + 1 s2) / 1.5    ...

    stream coarser than the grid (src_rate < r): LINEAR INTERPOLATION between the stream frames
    around the latent frame's start time i / r

        stream  s0          s1          s2                 q = 1/2
        latent  i0    i1    i2    i3    i4    i5           i1 = (s0 + s1) / 2,  i2 = s1,  i5 = s2 (held)

Both are a weighted average of at most K stream frames per latent frame, with weights that sum
to 1 (the two rules agree at src_rate = r: latent frame i is stream frame i). A `mask` (True =
present) removes absent stream frames from the average (the rest are renormalised); a latent
frame with no present stream frame under it, e.g. past the end of the stream, comes back with
mask False and the DiT puts a learned null vector there. Because the weights depend only on
the phase of i * q, shifting the stream by k frames shifts the result by k / q latent frames
exactly whenever k / q is a whole number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn

_EPS = 1e-9  # frame boundaries closer than this (in stream frames) are treated as exact


def _check_rate(rate: float, what: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{what} must be a positive number of frames per second, got {rate!r}")
    return float(rate)


@lru_cache(maxsize=256)
def _plan(
    num_src: int, num_dst: int, src_rate: float, dst_rate: float, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(index [T, K] long, weight [T, K] float32) of the stream frames under each latent frame.

    Built in float64 on the CPU, moved to `device` once (cached). Weights of stream frames past the
    stream's end are 0 (their index is clamped to stay in range).
    """
    q = src_rate / dst_rate  # stream frames per latent frame
    i = torch.arange(num_dst, dtype=torch.float64)[:, None]  # [T, 1]
    if q >= 1.0:
        k = math.ceil(q - _EPS) + 1
        lo = i * q  # [T, 1] interval start in stream frames
        s = torch.floor(lo + _EPS) + torch.arange(k, dtype=torch.float64)  # [T, K] candidate stream frames
        overlap = torch.minimum(lo + q, s + 1) - torch.maximum(lo, s)
        weight = overlap.clamp_min(0.0) / q
    else:
        u = i * q  # [T, 1] latent frame start in stream frames
        first = torch.floor(u + _EPS)
        frac = (u - first).clamp_min(0.0)
        s = first + torch.arange(2, dtype=torch.float64)  # [T, 2]
        weight = torch.cat([1.0 - frac, frac], dim=1)  # [T, 2]
    weight = torch.where((weight < _EPS) | (s >= num_src), torch.zeros_like(weight), weight)
    index = s.clamp(max=num_src - 1).long()
    return index.to(device), weight.float().to(device)


def resample_plan(
    num_src: int, num_dst: int, src_rate: float, dst_rate: float, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (index [T, K], weight [T, K]) table of `resample_stream` on `device` (cached per size and rate)."""
    if num_src < 1 or num_dst < 1:
        raise ValueError(
            f"resample_stream: need at least one stream and one target frame, got {num_src}, {num_dst}"
        )
    src_rate, dst_rate = _check_rate(src_rate, "src_rate"), _check_rate(dst_rate, "dst_rate")
    return _plan(int(num_src), int(num_dst), src_rate, dst_rate, str(torch.device(device)))


def resample_stream(
    values: torch.Tensor,
    mask: torch.Tensor | None,
    src_rate: float,
    dst_rate: float,
    num_frames: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stream values [B, S, F] at src_rate -> [B, num_frames, F] at dst_rate, and mask [B, num_frames].

    See the module docstring for the rule. `mask` [B, S] bool (True = present) or None (all present).
    Latent frames without any present stream frame get value 0 and mask False.
    """
    if values.ndim != 3:
        raise ValueError(f"resample_stream: values must be [B, S, F], got shape {tuple(values.shape)}")
    b, s = values.shape[:2]
    if mask is not None and (mask.dtype != torch.bool or tuple(mask.shape) != (b, s)):
        raise ValueError(
            f"resample_stream: mask must be bool [B, S] = {(b, s)}, got {mask.dtype} {tuple(mask.shape)}"
        )
    index, weight = resample_plan(s, num_frames, src_rate, dst_rate, values.device)  # [T, K] each
    w = weight.to(values.dtype).expand(b, -1, -1)  # [B, T, K]
    if mask is not None:
        w = w * mask[:, index].to(values.dtype)  # [B, T, K]
    total = w.sum(dim=-1)  # [B, T]
    present = total > 0
    w = w / torch.where(present, total, torch.ones_like(total))[..., None]
    gathered = values[:, index]  # [B, T, K, F]
    out = torch.einsum("btk,btkf->btf", w, gathered)  # [B, T, F]
    return out, present


def stream_frames(seconds: float, rate_hz: float) -> int:
    """Frames of a stream at `rate_hz` that cover `seconds`: ceil(seconds * rate), at least 1."""
    return max(1, math.ceil(seconds * _check_rate(rate_hz, "rate_hz") - _EPS))


def stream_given_mask(levels: torch.Tensor, levels_rate: float, frames: int, rate: float) -> torch.Tensor:
    """levels [B, T_m] of a modality at `levels_rate` -> bool [B, frames]: True where the stream's
    frame s (at s / rate seconds) falls in a latent frame of that modality with level 0 (given).

        latent frames (3.75 Hz)  |   0   |   1   |   2   |      levels  0   0.7   0
        stream frames (15 Hz)    |0 1 2 3|4 5 6 7|8 9 ...       given   T T T T F F F F T ...
    """
    t = torch.arange(frames, device=levels.device, dtype=torch.float64) / rate
    idx = torch.floor(t * levels_rate + 1e-6).long().clamp(max=levels.shape[1] - 1)  # [frames]
    return levels[:, idx] == 0  # [B, frames]


class AlignedStream(nn.Module):
    """The DiT's time-aligned input: Cond.aligned -> an addition to every token of each target modality.

        aligned [B, S, A] at rate_hz ──resample to m's latent frames──► [B, T_m, A], mask [B, T_m]
            ──Linear_m(A, D) (zero at init)──► [B, T_m, D]; masked-out frames: null_m [D] (zero at init)
            ──broadcast over video patches──► added to m's token embeddings [B, T_m * gh * gw, D]

    A Linear on the channels [latent, stream] of a token equals Linear(latent) + Linear(stream),
    so this is "channel-concat" conditioning with the stream resampled to the token grid.
    """

    def __init__(self, aligned_dim: int, rate_hz: float, targets: Sequence[str], d_model: int) -> None:
        super().__init__()
        self.aligned_dim, self.rate_hz, self.targets = aligned_dim, float(rate_hz), tuple(targets)
        self.proj = nn.ModuleDict({name: nn.Linear(aligned_dim, d_model) for name in self.targets})
        self.null = nn.Parameter(torch.zeros(len(self.targets), d_model))

    def reset_parameters(self) -> None:
        for proj in self.proj.values():
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)
        nn.init.zeros_(self.null)

    def forward(
        self, aligned: torch.Tensor, mask: torch.Tensor | None, name: str, rate_hz: float, num_frames: int
    ) -> torch.Tensor:
        """The addition for modality `name`'s latent frames: [B, num_frames, D]."""
        values, present = resample_stream(
            aligned, mask, self.rate_hz, rate_hz, num_frames
        )  # [B, T, A], [B, T]
        added = self.proj[name](values)  # [B, T, D]
        null = self.null[self.targets.index(name)].to(added.dtype)
        return torch.where(present[..., None], added, null)
