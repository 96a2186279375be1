"""Melody conditioning (MusicGen): chromagram -> dominant pitch class per frame -> context tokens.

    wave [B, S] ──|STFT|² (hann, centre, constant pad)──► [B, n_fft/2+1, T]
        ──librosa chroma filterbank (tuning 0)──► [B, 12, T] ──max-normalise per frame──► chroma
        ──argmax one-hot (the information bottleneck: only the dominant pitch class survives,
          so the model cannot copy timbre or loudness from the reference)──► [B, T, 12]  (cacheable)
        ──Linear(12, dim)──► context tokens [B, T, dim] at sample_rate / hop_length frames per second

`chroma` (before the bottleneck) equals `librosa.feature.chroma_stft(..., tuning=0, norm=inf)`.
MusicGen first removes drums and bass with a source separator; mmgen takes the waveform as
given (pass a stem if you have one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmgen.conditioning.base import Conditioner, Features, get_values


class ChromaExtractor(nn.Module):
    """Waveform [B, S] -> chroma [B, T, n_chroma] (max-normalised per frame) on any device."""

    window: torch.Tensor
    filters: torch.Tensor

    def __init__(
        self, sample_rate: int, n_fft: int = 4096, hop_length: int = 1024, n_chroma: int = 12
    ) -> None:
        super().__init__()
        import librosa

        if n_fft <= 0 or hop_length <= 0 or sample_rate <= 0:
            raise ValueError(
                f"ChromaExtractor: sample_rate, n_fft, hop_length must be positive, got {sample_rate}, {n_fft}, {hop_length}"
            )
        self.sample_rate, self.n_fft, self.hop_length, self.n_chroma = (
            sample_rate,
            n_fft,
            hop_length,
            n_chroma,
        )
        fb = librosa.filters.chroma(
            sr=sample_rate, n_fft=n_fft, tuning=0.0, n_chroma=n_chroma
        )  # [12, n_fft/2+1]
        self.register_buffer("filters", torch.from_numpy(np.asarray(fb, dtype=np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.hop_length + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim != 2:
            raise ValueError(f"ChromaExtractor: expected waveforms [B, S], got {tuple(wave.shape)}")
        wave = wave.float()
        if wave.shape[-1] < self.n_fft // 2 + 1:  # constant padding needs nothing, but keep frames meaningful
            raise ValueError(
                f"ChromaExtractor: waveform of {wave.shape[-1]} samples is shorter than n_fft/2 = {self.n_fft // 2}"
            )
        spec = torch.stft(
            wave,
            self.n_fft,
            self.hop_length,
            window=self.window.to(wave.device),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # [B, F, T]
        power = spec.real.square() + spec.imag.square()
        chroma = torch.einsum("cf,bft->btc", self.filters.to(wave.device), power)  # [B, T, 12]
        return chroma / chroma.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(chroma.dtype).tiny)


def dominant_one_hot(chroma: torch.Tensor) -> torch.Tensor:
    """[..., 12] -> one-hot of the argmax pitch class (MusicGen's `argmax=True`)."""
    return F.one_hot(chroma.argmax(dim=-1), chroma.shape[-1]).to(chroma.dtype)


class MelodyConditioner(Conditioner):
    """Context tokens from a reference melody's dominant-pitch chromagram.

    Args:
        dim: output width (the DiT's context_dim).
        sample_rate: rate of the waveforms in the batch.
        n_fft, hop_length, n_chroma: chromagram settings (frames per second = sample_rate / hop_length).
        argmax: keep only the dominant pitch class per frame (MusicGen's bottleneck).
        key: batch key of the waveforms [B, S].
        target: "context" (cross-attention tokens) or "aligned" (a stream at `rate_hz`, added to
            the tokens at the same seconds).
    """

    def __init__(
        self,
        dim: int,
        sample_rate: int = 22050,
        n_fft: int = 4096,
        hop_length: int = 1024,
        n_chroma: int = 12,
        argmax: bool = True,
        key: str = "melody",
        target: str | None = None,
    ) -> None:
        super().__init__(dim, target=target)
        self.chroma = ChromaExtractor(sample_rate, n_fft, hop_length, n_chroma)
        self.argmax, self.key = argmax, key
        self.proj = nn.Linear(n_chroma, dim)

    @property
    def rate_hz(self) -> float:  # type: ignore[override]
        """Chroma frames per second (frame s at s * hop_length / sample_rate seconds)."""
        return self.chroma.frame_rate

    @torch.no_grad()
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        device = device or self.device
        wave = get_values(batch, self.key, "MelodyConditioner")
        wave = (wave if isinstance(wave, torch.Tensor) else torch.as_tensor(np.asarray(wave))).to(
            device, torch.float32
        )
        if wave.ndim == 1:
            wave = wave[None]
        if not torch.isfinite(wave).all():
            raise ValueError(f"MelodyConditioner: batch[{self.key!r}] holds NaN or infinite samples")
        chroma = self.chroma(wave)  # [B, T, 12]
        if self.argmax:
            chroma = dominant_one_hot(chroma)
        return Features(chroma, torch.ones(chroma.shape[:2], dtype=torch.bool, device=device))

    def project(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(features.values), features.mask  # [B, T, dim]
