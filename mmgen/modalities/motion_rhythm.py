"""Rhythm-contrastive loss (MoMu-Diffusion's BiCoR idea) between motion and music latents.

At each motion beat, a window of latent frames around the beat is max-pooled in both modalities
(motion latents from the VAE being trained, music latents from a frozen music encoder at the
same latent rate); projection heads map both to a shared space, and a bidirectional InfoNCE
pulls the two windows of the same moment together. Every other window of the batch (other beats
of the same clip and beats of other clips) is a negative:

    beats (latent idx)   clip 0: 2  5  9      clip 1: 3  7  (pad)
    pooled windows        m00 m01 m02             m10 m11        (motion, [N, d])
                          a00 a01 a02             a10 a11        (music,  [N, d])
    logits[i, j] = cos(a_i, m_j) / tau over the N = 5 valid windows; targets on the diagonal
    loss = 1/2 CE(logits, diag) + 1/2 CE(logits^T, diag)

Beats are found on the host (data pipeline) with `mmgen.metrics.motion_beats` and turned into
a padded index tensor by `beat_windows`; the loss itself is host-sync free.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmgen.core.pretrained import PretrainedMixin


def motion_beat_frames(joints: np.ndarray | torch.Tensor, fps: float, method: str = "speed") -> np.ndarray:
    """Beat frames of one clip [T, J, D] from `mmgen.metrics`.

    "speed": minima of the smoothed mean joint speed (`motion_beats`, Bailando's rule);
    "amplitude": peaks of MoMu/LORIS's kinematic amplitude indicator (directogram flux,
    `kinematic_amplitude` + `rhythm_peaks`; the frontal x-y plane for 3-D joints).
    """
    from mmgen import metrics

    if method == "speed":
        return np.asarray(metrics.motion_beats(joints, fps), dtype=np.int64)
    if method == "amplitude":
        peaks = metrics.rhythm_peaks(metrics.kinematic_amplitude(np.asarray(joints, dtype=np.float32)))
        return np.flatnonzero(peaks).astype(np.int64)
    raise ValueError(f"unknown beat method {method!r}; use 'speed' or 'amplitude'")


def beat_windows(
    beat_frames: Sequence[np.ndarray | Sequence[int]],
    fps: float,
    latent_rate_hz: float,
    num_latent_frames: int,
    max_beats: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Motion beat frames per clip -> padded latent indices [B, K] (int64) and a validity mask [B, K].

    A beat at motion frame f lies at f / fps seconds and falls in latent frame
    floor(f / fps * latent_rate_hz). Beats landing in the same latent frame count once; beats
    outside the clip are an error. K = the most beats of any clip (or `max_beats`, keeping the
    first ones).
    """
    if not beat_frames:
        raise ValueError("beat_windows: no clips given")
    per_clip = []
    for b, frames in enumerate(beat_frames):
        f = np.asarray(frames, dtype=np.float64).reshape(-1)
        idx = np.floor(f / fps * latent_rate_hz + 1e-9).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= num_latent_frames):
            raise ValueError(
                f"beat_windows: clip {b} has beats outside its {num_latent_frames} latent frames (frames {f.tolist()})"
            )
        idx = np.unique(idx)
        per_clip.append(idx if max_beats is None else idx[:max_beats])
    k = max(1, max(len(i) for i in per_clip))
    index = torch.zeros(len(per_clip), k, dtype=torch.long)
    mask = torch.zeros(len(per_clip), k, dtype=torch.bool)
    for b, idx in enumerate(per_clip):
        index[b, : len(idx)] = torch.from_numpy(idx)
        mask[b, : len(idx)] = True
    return index, mask


def window_max_pool(z: torch.Tensor, index: torch.Tensor, radius: int) -> torch.Tensor:
    """Max over latent frames [i - radius, i + radius] (clipped to the clip) at each index.

    z [B, T, C], index [B, K] -> [B, K, C].
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    c = z.shape[-1]
    padded = F.pad(z.transpose(1, 2), (radius, radius), value=float("-inf"))  # [B, C, T + 2r]
    pooled = F.max_pool1d(padded, kernel_size=2 * radius + 1, stride=1).transpose(1, 2)  # [B, T, C]
    return torch.gather(pooled, 1, index.unsqueeze(-1).expand(-1, -1, c))


def bidirectional_info_nce(
    a: torch.Tensor, m: torch.Tensor, temperature: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE over N pairs (a_i, m_i); cosine similarity / temperature.

    a [N, d], m [N, d], mask [N] bool (False rows/columns are neither anchors nor negatives).
    Returns 1/2 mean_i -log softmax_j(s_ij)[i] + 1/2 mean_j -log softmax_i(s_ij)[j].
    """
    if a.shape != m.shape or a.ndim != 2:
        raise ValueError(f"a {tuple(a.shape)} and m {tuple(m.shape)} must both be [N, d]")
    logits = F.normalize(a, dim=-1) @ F.normalize(m, dim=-1).T / temperature  # [N, N]
    n = a.shape[0]
    target = torch.arange(n, device=a.device)
    if mask is None:
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    invalid = ~mask
    logits = logits.masked_fill(invalid.unsqueeze(0) | invalid.unsqueeze(1), float("-inf"))
    # an invalid row is all -inf: give it a finite diagonal so its (ignored) loss is 0, not NaN
    logits = logits.masked_fill(torch.diag(invalid), 0.0)
    w = mask.to(logits.dtype)
    denom = w.sum().clamp_min(1.0)
    rows = F.cross_entropy(logits, target, reduction="none")
    cols = F.cross_entropy(logits.T, target, reduction="none")
    return 0.5 * ((rows * w).sum() + (cols * w).sum()) / denom


class RhythmContrastive(PretrainedMixin, nn.Module):
    """Projection heads + the bidirectional InfoNCE at beat windows.

    Args:
        motion_channels: C of the motion latents.
        music_channels: C of the (frozen) music latents.
        dim: shared projection size.
        temperature: InfoNCE temperature tau.
        radius: half-width of the max-pooled window, in latent frames.
    """

    def __init__(
        self, motion_channels: int, music_channels: int, dim: int = 64, temperature: float = 0.1, radius: int = 1
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.radius = int(radius)
        self.motion_head = nn.Sequential(nn.Linear(motion_channels, dim), nn.GELU(), nn.Linear(dim, dim))
        self.music_head = nn.Sequential(nn.Linear(music_channels, dim), nn.GELU(), nn.Linear(dim, dim))

    def pooled(
        self, motion: torch.Tensor, music: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected window features: ([B, K, dim] music, [B, K, dim] motion)."""
        if motion.ndim != 3 or music.ndim != 3 or motion.shape[:2] != music.shape[:2]:
            raise ValueError(
                f"motion latents {tuple(motion.shape)} and music latents {tuple(music.shape)} must be "
                "[B, T, C] with the same B and T (same latent rate)"
            )
        if index.ndim != 2 or index.shape[0] != motion.shape[0]:
            raise ValueError(f"beat index must be [B={motion.shape[0]}, K], got {tuple(index.shape)}")
        m = self.motion_head(window_max_pool(motion, index, self.radius))
        a = self.music_head(window_max_pool(music.detach(), index, self.radius))  # the music encoder is frozen
        return a, m

    def forward(
        self, motion: torch.Tensor, music: torch.Tensor, index: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """motion [B, T, Cm], music [B, T, Ca], beat index/mask [B, K] (from `beat_windows`) -> scalar loss."""
        a, m = self.pooled(motion, music, index)
        return bidirectional_info_nce(a.flatten(0, 1), m.flatten(0, 1), self.temperature, mask.flatten())

    @torch.no_grad()
    def retrieval_accuracy(
        self, motion: torch.Tensor, music: torch.Tensor, index: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Fraction of valid music windows whose most similar motion window is their own (chance = 1/N)."""
        a, m = self.pooled(motion, music, index)
        a, m, valid = a.flatten(0, 1), m.flatten(0, 1), mask.flatten()
        sim = F.normalize(a, dim=-1) @ F.normalize(m, dim=-1).T
        sim = sim.masked_fill(~valid.unsqueeze(0), float("-inf"))
        hit = (sim.argmax(dim=1) == torch.arange(len(a), device=a.device)) & valid
        return hit.sum() / valid.sum().clamp_min(1)
