"""Raw clip lengths: trim or pad a clip to the raw length whole latent frames cover.

A clip of `n` latent frames covers `n / rate_hz * raw_rate` raw samples / frames; the VAEs give
exactly `n` latent frames for that many, so inputs are fit to it (audio padded with silence,
motion / video by holding the last frame) and outputs are cut back to the clip:

    seconds = 4.1, motion 30 fps, latents 7.5 Hz  ->  31 latent frames  <- coverage_length = 124 frames
"""

from __future__ import annotations

import torch

from mmgen.modalities.media import MediaModality


def fit_length(x: torch.Tensor, length: int, pad: str = "edge") -> torch.Tensor:
    """Trim or pad a batch [B, N, ...] along axis 1 to `length` (pad "edge": repeat the last
    sample / frame; "zeros": append zeros, e.g. silence)."""
    if length < 1:
        raise ValueError(f"fit_length: length must be >= 1, got {length}")
    n = x.shape[1]
    if n >= length:
        return x[:, :length]
    if n == 0:
        raise ValueError("fit_length: cannot pad an empty clip")
    if pad == "edge":
        tail = x[:, -1:].expand(-1, length - n, *x.shape[2:])  # [B, length - n, ...]
    elif pad == "zeros":
        tail = x.new_zeros((x.shape[0], length - n, *x.shape[2:]))
    else:
        raise ValueError(f"fit_length: pad must be 'edge' or 'zeros', got {pad!r}")
    return torch.cat([x, tail], dim=1)


def pad_mode(modality: MediaModality) -> str:
    """How a modality's raw clips are padded: audio with silence, motion / video by holding the last frame."""
    return "zeros" if modality.kind.startswith("audio") else "edge"


def coverage_length(modality: MediaModality, num_latent_frames: int) -> int:
    """Raw samples / frames covered by `num_latent_frames` whole latent frames."""
    return round(num_latent_frames / modality.spec.rate_hz * modality.raw_rate)
