"""The audio side of sync pre-training: waveform -> per-frame features on the video features' grid.

    wave [B, N] at sample_rate ──MelFrontEnd: |STFT| (hann, n_fft, hop = sample_rate / (3 rate),
        centred) -> mel──► [B, n_mels, M], mel frame j at j hop samples (3 per video frame)
        ──log-mel + spectral flux (mean positive log-mel rise)──► [B, n_mels + 1, M]
        ──Conv1d + dilated residual blocks at 3 x rate──► strided Conv1d (k=3, stride 3, centred on
          mel frame 3k = video frame k)──► residual blocks at rate──► unit-norm [B, T, F]

Only training uses it: the InfoNCE partner of `VideoSyncEncoder`. Frame k of the output is
centred on sample k * sample_rate / rate, the time of video frame k. The mel front end is fixed,
so sync training computes it once per clip (`mmgen.train.sync_data`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmgen.conditioning.video_sync import TemporalBlock
from mmgen.core.pretrained import PretrainedMixin

LOG_FLOOR = 1e-4


class MelFrontEnd(nn.Module):
    """Waveform [B, N] -> mel magnitudes [B, n_mels, N // hop + 1], 3 frames per `rate_hz` frame."""

    window: torch.Tensor
    mel: torch.Tensor

    def __init__(self, sample_rate: int = 22050, rate_hz: float = 15.0, n_fft: int = 1024, n_mels: int = 48) -> None:
        super().__init__()
        import librosa

        hop = sample_rate / (3 * rate_hz)
        if abs(hop - round(hop)) > 1e-9 or hop < 1:
            raise ValueError(f"MelFrontEnd: sample_rate / (3 rate_hz) = {hop:g} must be a whole number of samples")
        self.sample_rate, self.rate_hz, self.hop, self.n_fft, self.n_mels = (
            int(sample_rate), float(rate_hz), round(hop), int(n_fft), int(n_mels),
        )
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=30.0)  # [n_mels, n_fft/2+1]
        self.register_buffer("mel", torch.from_numpy(np.asarray(fb, np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim != 2 or wave.shape[1] < self.n_fft:
            raise ValueError(f"MelFrontEnd: expected waveforms [B, N >= {self.n_fft}], got {tuple(wave.shape)}")
        spec = torch.stft(
            wave.float(), self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant", return_complex=True
        ).abs()  # [B, n_fft/2+1, M]
        return torch.einsum("mf,bft->bmt", self.mel, spec)  # [B, n_mels, M]


def spectral_input(mel: torch.Tensor) -> torch.Tensor:
    """Mel magnitudes [B, n_mels, M] -> [B, n_mels + 1, M]: log-mel (scaled to about unit range)
    and spectral flux (the mean rise of log-mel from the previous frame; 0 at the first)."""
    logmel = torch.log(mel + LOG_FLOOR)
    flux = F.relu(logmel[:, :, 1:] - logmel[:, :, :-1]).mean(dim=1, keepdim=True)  # [B, 1, M-1]
    flux = torch.cat([flux[:, :, :1], flux], dim=2)  # [B, 1, M]
    return torch.cat([(logmel + 4.0) / 4.0, flux], dim=1)


class AudioSyncEncoder(PretrainedMixin, nn.Module):
    """Waveform -> unit-norm features [B, T, feature_dim] at `rate_hz` (T = round(N rate / sr)).

    Args:
        sample_rate: rate of the waveforms (resample to it first); sample_rate / (3 rate_hz) must
            be a whole number of samples (22050 / 45 = 490).
        rate_hz: output rate (the video encoder's); n_fft, n_mels: mel settings.
        hidden, feature_dim: widths; fine_dilations / coarse_dilations: residual blocks at 3 x rate and at rate.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        rate_hz: float = 15.0,
        n_fft: int = 1024,
        n_mels: int = 48,
        hidden: int = 64,
        feature_dim: int = 32,
        fine_dilations: Sequence[int] = (1, 2, 4),
        coarse_dilations: Sequence[int] = (1, 2, 4, 8),
    ) -> None:
        super().__init__()
        self.front = MelFrontEnd(sample_rate, rate_hz, n_fft, n_mels)
        self.sample_rate, self.rate_hz = self.front.sample_rate, self.front.rate_hz
        self.inp = nn.Conv1d(n_mels + 1, hidden, 3, padding=1)
        self.fine = nn.ModuleList(TemporalBlock(hidden, d) for d in fine_dilations)
        self.down = nn.Conv1d(hidden, hidden, 3, stride=3, padding=1)
        self.coarse = nn.ModuleList(TemporalBlock(hidden, d) for d in coarse_dilations)
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, feature_dim)
        # frames (at rate_hz) on each side that reach an output frame: STFT window + flux + input
        # conv + fine blocks (mel frames, 3 per frame), the strided conv, the coarse blocks
        mel_radius = math.ceil(n_fft / 2 / self.front.hop) + 1 + 1 + sum(fine_dilations)
        self.receptive_radius = math.ceil(mel_radius / 3) + 1 + sum(coarse_dilations)

    def num_frames(self, num_samples: int) -> int:
        return round(num_samples * self.rate_hz / self.sample_rate)

    def net(self, mel: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The learned part: mel magnitudes [B, n_mels, M] -> [B, num_frames, F] (num_frames <= ceil(M / 3))."""
        if mel.ndim != 3 or mel.shape[1] != self.front.n_mels:
            raise ValueError(f"AudioSyncEncoder: expected mel [B, {self.front.n_mels}, M], got {tuple(mel.shape)}")
        h = self.inp(spectral_input(mel)).transpose(1, 2)  # [B, M, hidden]
        for block in self.fine:
            h = block(h)
        h = self.down(h.transpose(1, 2)).transpose(1, 2)  # [B, ceil(M / 3), hidden]: frame k <- mel 3k
        for block in self.coarse:
            h = block(h)
        return F.normalize(self.out(self.out_norm(h[:, :num_frames])), dim=-1)  # [B, T, F]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.net(self.front(wave), self.num_frames(wave.shape[1]))
