"""Discriminators shared by the waveform VAE and the vocoder, plus a patch discriminator for mel VAEs.

Every discriminator maps a batch to a list over its sub-discriminators of
`(logits, [feature maps])`, the form `audio_losses` consumes (adversarial + feature matching).

- `MultiPeriodDiscriminator` (HiFi-GAN): the waveform folded into [T / p, p] for each period p,
  2-D convs with kernels (k, 1) so each column sees one phase of the period.
- `MultiResolutionSTFTDiscriminator` (EnCodec's MS-STFT-D): 2-D convs over the complex STFT
  (real and imaginary parts as channels) at several resolutions.
- `MelPatchDiscriminator`: a PatchGAN over the log-mel "image" [B, n_mels, N].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from mmgen.modalities.audio_codec import stft

LRELU_SLOPE = 0.1


def _as_channels(x: torch.Tensor) -> torch.Tensor:
    """[B, S] or [B, C, S] -> [B, C, S]."""
    if x.ndim == 2:
        return x[:, None]
    if x.ndim != 3:
        raise ValueError(f"discriminator: expected [B, S] or [B, C, S] audio, got shape {tuple(x.shape)}")
    return x


def _conv_stack(
    convs: nn.ModuleList, post: nn.Module, h: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack then a linear head: (flattened logits, every feature map incl. logits)."""
    feats = []
    for conv in convs:
        h = F.leaky_relu(conv(h), LRELU_SLOPE)
        feats.append(h)
    logits = post(h)
    feats.append(logits)
    return logits.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    def __init__(
        self,
        period: int,
        audio_channels: int = 1,
        channels: Sequence[int] = (32, 128, 512, 1024),
        kernel: int = 5,
    ) -> None:
        super().__init__()
        self.period = period
        widths = [audio_channels, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(widths[i], widths[i + 1], (kernel, 1), (3, 1), padding=(kernel // 2, 0)))
            for i in range(len(channels))
        )
        self.convs.append(
            weight_norm(nn.Conv2d(widths[-1], widths[-1], (kernel, 1), 1, padding=(kernel // 2, 0)))
        )
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = _as_channels(x)
        pad = (-x.shape[-1]) % self.period
        if pad:
            x = F.pad(x, (0, pad), mode="reflect" if pad < x.shape[-1] else "constant")
        h = rearrange(x, "b c (t p) -> b c t p", p=self.period)  # [B, C, S / p, p]
        return _conv_stack(self.convs, self.post, h)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        audio_channels: int = 1,
        channels: Sequence[int] = (32, 128, 512, 1024),
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, audio_channels, channels) for p in periods)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(x) for d in self.discriminators]


class STFTDiscriminator(nn.Module):
    """Convs over [B, 2C, frames, freq] (real/imag parts): time kernel 3 with dilations 1, 2, 4, freq stride 2."""

    def __init__(
        self, n_fft: int, audio_channels: int = 1, channels: int = 32, dilations: Sequence[int] = (1, 2, 4)
    ) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [weight_norm(nn.Conv2d(2 * audio_channels, channels, (3, 9), padding=(1, 4)))]
        for d in dilations:
            convs.append(
                weight_norm(
                    nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4))
                )
            )
        convs.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = stft(_as_channels(x), self.n_fft, self.hop, self.window)  # [B, C, F, N] complex
        h = rearrange(torch.view_as_real(spec), "b c f n ri -> b (c ri) n f").to(x.dtype)  # [B, 2C, N, F]
        return _conv_stack(self.convs, self.post, h)


class MultiResolutionSTFTDiscriminator(nn.Module):
    def __init__(
        self, fft_sizes: Sequence[int] = (2048, 1024, 512), audio_channels: int = 1, channels: int = 32
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, audio_channels, channels) for n in fft_sizes)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(x) for d in self.discriminators]


class AudioDiscriminator(nn.Module):
    """Multi-period + multi-resolution STFT discriminators (the set DAC / Vocos train with)."""

    def __init__(
        self,
        audio_channels: int = 1,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        period_channels: Sequence[int] = (32, 128, 512, 1024),
        fft_sizes: Sequence[int] = (2048, 1024, 512),
        stft_channels: int = 32,
    ) -> None:
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(periods, audio_channels, period_channels)
        self.mrsd = MultiResolutionSTFTDiscriminator(fft_sizes, audio_channels, stft_channels)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return self.mpd(x) + self.mrsd(x)


class MelPatchDiscriminator(nn.Module):
    """PatchGAN on log-mel [B, n_mels, N]: strided 3x3 convs, one logit per patch."""

    def __init__(self, channels: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        widths = [1, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2 if i > 0 else 1, padding=1))
            for i in range(len(channels))
        )
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, 3, padding=1))

    def forward(self, mel: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        if mel.ndim != 3:
            raise ValueError(
                f"MelPatchDiscriminator: expected [B, n_mels, N] log-mel, got shape {tuple(mel.shape)}"
            )
        h = mel[:, None]  # [B, 1, n_mels, N]
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            feats.append(h)
        logits = self.post(h)
        feats.append(logits)
        return [(logits.flatten(1), feats)]
