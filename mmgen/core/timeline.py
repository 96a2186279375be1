"""The shared time axis: latent frame rates, positions in seconds and segments.

Every modality declares how many latent frames it has per second. A latent frame's position is
its index divided by that rate, so tokens of different modalities at the same moment share a
position. Segments are fixed-length spans of this axis; a frame belongs to the segment that
contains its time. Segments are the unit of noise levels (MoNL training) and of task masks.

    seconds        0.0  0.25 0.5  0.75 1.0  1.25 1.5  1.75
    audio  (4 Hz)  a0   a1   a2   a3   a4   a5   a6   a7
    video  (2 Hz)  v0        v1        v2        v3
    segment (0.5s) 0    0    1    1    2    2    3    3      (a_i: i // 2, v_i: i // 1)

`dit/` and `diffusion/` both import this module; it imports nothing from mmgen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# a latent frame lying exactly on a segment boundary belongs to the later segment even when
# i / rate is computed with rounding error (e.g. 3 / 7.5 / 0.4)
_BOUNDARY_EPS = 1e-6


@dataclass(frozen=True)
class ModalitySpec:
    """What the backbone and the diffusion math need to know about one modality's latents.

    Args:
        channels: latent channels per site (C_m).
        rate_hz: latent frames per second.
        spatial: (h, w) of each latent frame for video-like modalities, None for sequences.
    """

    channels: int
    rate_hz: float
    spatial: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.channels <= 0:
            raise ValueError(f"ModalitySpec.channels must be positive, got {self.channels}")
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ValueError(f"ModalitySpec.rate_hz must be a positive finite number, got {self.rate_hz}")
        if self.spatial is not None:
            if len(self.spatial) != 2 or min(self.spatial) <= 0:
                raise ValueError(f"ModalitySpec.spatial must be (h, w) with h, w > 0, got {self.spatial}")
            object.__setattr__(self, "spatial", (int(self.spatial[0]), int(self.spatial[1])))

    @property
    def latent_rank(self) -> int:
        """Rank of a batch of latents: 3 for [B, T, C], 5 for [B, T, h, w, C]."""
        return 3 if self.spatial is None else 5

    def num_frames(self, seconds: float) -> int:
        """Latent frames covering `seconds` (rounded to the nearest frame)."""
        return max(1, round(seconds * self.rate_hz))

    def latent_shape(self, num_frames: int) -> tuple[int, ...]:
        """Shape of one example's latents with `num_frames` frames (no batch dim)."""
        if self.spatial is None:
            return (num_frames, self.channels)
        return (num_frames, *self.spatial, self.channels)


def frame_seconds(num_frames: int, rate_hz: float, device: torch.device | str | None = None) -> torch.Tensor:
    """Time position in seconds of each latent frame: [T] float32."""
    return torch.arange(num_frames, device=device, dtype=torch.float64).div(rate_hz).float()


def segment_ids(
    num_frames: int, rate_hz: float, segment_seconds: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """Segment index of each latent frame: [T] int64, floor(i / rate / segment_seconds)."""
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
    t = torch.arange(num_frames, device=device, dtype=torch.float64) / (rate_hz * segment_seconds)
    return torch.floor(t + _BOUNDARY_EPS).long()


def num_segments(num_frames: int, rate_hz: float, segment_seconds: float) -> int:
    """Number of segments the frames of one modality touch (the last one may be partial)."""
    if num_frames <= 0:
        return 0
    return int(math.floor((num_frames - 1) / (rate_hz * segment_seconds) + _BOUNDARY_EPS)) + 1
