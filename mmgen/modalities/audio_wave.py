"""DAC / Stable Audio "Oobleck" waveform VAE: Snake activations, weight-normed convs, KL bottleneck.

    wave [B, C, S] ──pad to k·hop──► conv7 ─► EncoderBlock(s_1) ─► … ─► EncoderBlock(s_n) ─► snake ─► conv3
                                         each block: 3 residual units (dilation 1/3/9), snake, strided conv
    ──► [B, 2L, T] = (mean, scale);  std = softplus(scale) + 1e-4, logvar = 2·log std   (T = ceil(S / hop))
    z [B, T, L] (channels last) ─► conv7 ─► DecoderBlock(s_n) ─► … ─► DecoderBlock(s_1) ─► snake ─► conv7 ─► [B, C, T·hop]

Module and parameter names mirror diffusers' `AutoencoderOobleck`, so a state dict of that model
(e.g. the Stable Audio Open VAE) loads into the `sao` preset unchanged (`load_state_dict(..., strict=False)`
leaves only our `latent_stats` buffers untouched).

Speed: the weight-norm product g·v/‖v‖ is cached while the module is in eval mode under no-grad
(keyed on the parameters' in-place version counters, so optimizer steps and `load_state_dict`
invalidate it; the cache costs one extra copy of the conv weights), and Snake runs as 4 kernels
(mul, sin, square, addcmul) with in-place steps at inference. See bench/wave_vae_vs_oobleck.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mmgen.modalities.audio_codec import prepare_waveform
from mmgen.modalities.base import DiagonalGaussian, LatentStats, ModalityVAE

SNAKE_EPS = 1e-9
STD_EPS = 1e-4

WAVE_PRESETS: dict[str, dict] = {
    # Stable Audio Open / diffusers AutoencoderOobleck defaults: 44.1 kHz, hop 2048 -> 21.53 Hz, 64 channels
    "sao": {
        "sample_rate": 44100,
        "audio_channels": 2,
        "latent_channels": 64,
        "encoder_channels": 128,
        "decoder_channels": 128,
        "ratios": (2, 4, 4, 8, 8),
        "channel_mults": (1, 2, 4, 8, 16),
    },
    # ToyDance: 22.05 kHz mono, hop 2940 -> exactly 7.5 Hz (the motion VAE's rate)
    "toydance": {
        "sample_rate": 22050,
        "audio_channels": 1,
        "latent_channels": 32,
        "encoder_channels": 32,
        "decoder_channels": 32,
        "ratios": (2, 2, 3, 5, 7, 7),
        "channel_mults": (1, 2, 4, 8, 8, 16),
    },
    # tests: 22.05 kHz mono, hop 64 -> 344.5 Hz x 16 channels (4:1 compression)
    "tiny": {
        "sample_rate": 22050,
        "audio_channels": 1,
        "latent_channels": 16,
        "encoder_channels": 16,
        "decoder_channels": 16,
        "ratios": (2, 4, 8),
        "channel_mults": (1, 2, 4),
    },
}


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


class Snake1d(nn.Module):
    """Snake with per-channel log-scale α, β: x + 1/(e^β + ε) · sin²(e^α · x) on [B, C, T]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.exp().to(x.dtype)
        inv_beta = (self.beta.exp() + SNAKE_EPS).reciprocal().to(x.dtype)
        if torch.is_grad_enabled() and (x.requires_grad or self.alpha.requires_grad):
            return torch.addcmul(x, torch.sin(x * alpha).square(), inv_beta)
        s = x * alpha
        s.sin_().square_()
        return torch.addcmul(x, s, inv_beta)


class _WeightNormMixin:
    """weight = g · v / ‖v‖ (norm over all dims but 0, as torch's legacy `weight_norm(dim=0)`).

    Stores `weight_g` [d0, 1, 1] and `weight_v` instead of `weight` (diffusers' names).
    """

    weight_g: nn.Parameter
    weight_v: nn.Parameter
    training: bool

    def _init_weight_norm(self) -> None:
        v = self.weight.detach().clone()  # type: ignore[attr-defined]
        del self.weight  # type: ignore[attr-defined]
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(-1, 1, 1))
        self._cache: torch.Tensor | None = None
        self._cache_key: tuple | None = None

    def _compute_weight(self) -> torch.Tensor:
        v = self.weight_v
        return v * (self.weight_g / v.flatten(1).norm(dim=1).view(-1, 1, 1))

    def fused_weight(self) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            self._cache = self._cache_key = None
            return self._compute_weight()
        g, v = self.weight_g, self.weight_v
        key = (g._version, v._version, g.data_ptr(), v.data_ptr(), g.dtype, v.device)
        if self._cache is None or key != self._cache_key:
            self._cache, self._cache_key = self._compute_weight(), key
        return self._cache


class WNConv1d(_WeightNormMixin, nn.Conv1d):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.fused_weight(), self.bias)


class WNConvTranspose1d(_WeightNormMixin, nn.ConvTranspose1d):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(
            x,
            self.fused_weight(),
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )


class ResidualUnit(nn.Module):
    """x + conv1x1(snake(conv7_dilated(snake(x)))), length preserved."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.snake1 = Snake1d(channels)
        self.conv1 = WNConv1d(channels, channels, kernel_size=7, dilation=dilation, padding=3 * dilation)
        self.snake2 = Snake1d(channels)
        self.conv2 = WNConv1d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.snake2(self.conv1(self.snake1(x))))


class EncoderBlock(nn.Module):
    """Residual units (dilations 1, 3, 9) then a strided conv: [B, c_in, T] -> [B, c_out, T / stride]."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.res_unit1 = ResidualUnit(c_in, 1)
        self.res_unit2 = ResidualUnit(c_in, 3)
        self.res_unit3 = ResidualUnit(c_in, 9)
        self.snake1 = Snake1d(c_in)
        self.conv1 = WNConv1d(
            c_in, c_out, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.snake1(self.res_unit3(self.res_unit2(self.res_unit1(x)))))


class DecoderBlock(nn.Module):
    """Transposed strided conv then residual units: [B, c_in, T] -> [B, c_out, T · stride].

    `output_padding = stride % 2` makes odd strides exact (diffusers' layout is exact for even ones).
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.snake1 = Snake1d(c_in)
        self.conv_t1 = WNConvTranspose1d(
            c_in,
            c_out,
            kernel_size=2 * stride,
            stride=stride,
            padding=math.ceil(stride / 2),
            output_padding=stride % 2,
        )
        self.res_unit1 = ResidualUnit(c_out, 1)
        self.res_unit2 = ResidualUnit(c_out, 3)
        self.res_unit3 = ResidualUnit(c_out, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_unit3(self.res_unit2(self.res_unit1(self.conv_t1(self.snake1(x)))))


class WaveEncoder(nn.Module):
    def __init__(
        self, audio_channels: int, channels: int, out_channels: int, ratios: list[int], mults: list[int]
    ) -> None:
        super().__init__()
        widths = [channels * m for m in [1, *mults]]
        self.conv1 = WNConv1d(audio_channels, widths[0], kernel_size=7, padding=3)
        self.block = nn.ModuleList(EncoderBlock(widths[i], widths[i + 1], s) for i, s in enumerate(ratios))
        self.snake1 = Snake1d(widths[-1])
        self.conv2 = WNConv1d(widths[-1], out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for block in self.block:
            x = block(x)
        return self.conv2(self.snake1(x))


class WaveDecoder(nn.Module):
    def __init__(
        self, latent_channels: int, channels: int, audio_channels: int, ratios: list[int], mults: list[int]
    ) -> None:
        super().__init__()
        widths = [channels * m for m in [1, *mults]][::-1]  # deepest first
        self.conv1 = WNConv1d(latent_channels, widths[0], kernel_size=7, padding=3)
        self.block = nn.ModuleList(
            DecoderBlock(widths[i], widths[i + 1], s) for i, s in enumerate(ratios[::-1])
        )
        self.snake1 = Snake1d(widths[-1])
        self.conv2 = WNConv1d(widths[-1], audio_channels, kernel_size=7, padding=3, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv1(z)
        for block in self.block:
            x = block(x)
        return self.conv2(self.snake1(x))


# ----------------------------------------------------------------------------------------------
# The VAE
# ----------------------------------------------------------------------------------------------


class WaveVAE(ModalityVAE):
    """Oobleck-style waveform VAE on [B, audio_channels, S] at `sample_rate`.

    Args:
        sample_rate: model sample rate (Hz).
        audio_channels: 1 (mono) or 2 (stereo).
        latent_channels: L, channels of the latent tokens.
        encoder_channels, decoder_channels: width at full sample rate; stage i has width × mult_i.
        ratios: per-stage down-sampling factors (hop = their product); the decoder mirrors them.
        channel_mults: per-stage width multipliers (same length as `ratios`).

    Lengths: `encode` zero-pads S on the right to T · hop with T = ceil(S / hop); `decode(z,
    num_samples=S)` crops back, so `decode(encode(x), S)` has x's length.
    """

    def __init__(
        self,
        sample_rate: int = 44100,
        audio_channels: int = 2,
        latent_channels: int = 64,
        encoder_channels: int = 128,
        decoder_channels: int = 128,
        ratios: tuple[int, ...] | list[int] = (2, 4, 4, 8, 8),
        channel_mults: tuple[int, ...] | list[int] = (1, 2, 4, 8, 16),
    ) -> None:
        super().__init__()
        if audio_channels not in (1, 2):
            raise ValueError(f"WaveVAE: audio_channels must be 1 or 2, got {audio_channels}")
        if len(ratios) == 0 or len(ratios) != len(channel_mults):
            raise ValueError(
                f"WaveVAE: ratios {list(ratios)} and channel_mults {list(channel_mults)} must be non-empty and of equal length"
            )
        if min(ratios) < 2:
            raise ValueError(
                f"WaveVAE: every ratio must be >= 2 (a stride-1 transposed conv of kernel 2 is not length-exact), got {list(ratios)}"
            )
        if (
            min(channel_mults) < 1
            or min(latent_channels, encoder_channels, decoder_channels, sample_rate) < 1
        ):
            raise ValueError(
                "WaveVAE: ratios, channel_mults, channel counts and sample_rate must be positive"
            )
        self.sample_rate = int(sample_rate)
        self.audio_channels = int(audio_channels)
        self._latent_channels = int(latent_channels)
        self.hop_length = int(np.prod(ratios))
        self.encoder = WaveEncoder(
            audio_channels, encoder_channels, 2 * latent_channels, list(ratios), list(channel_mults)
        )
        self.decoder = WaveDecoder(
            latent_channels, decoder_channels, audio_channels, list(ratios), list(channel_mults)
        )
        self.latent_stats = LatentStats(latent_channels)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> WaveVAE:
        """`sao` (Stable Audio Open size), `toydance` (22.05 kHz mono, 7.5 Hz) or `tiny` (tests)."""
        if name not in WAVE_PRESETS:
            raise ValueError(f"unknown WaveVAE preset {name!r}; choose one of {sorted(WAVE_PRESETS)}")
        return cls(**{**WAVE_PRESETS[name], **overrides})

    @property
    def latent_channels(self) -> int:
        return self._latent_channels

    @property
    def latent_rate_hz(self) -> float:
        return self.sample_rate / self.hop_length

    def num_latent_frames(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.hop_length)

    def prepare(self, wave: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """Raw audio -> [B, audio_channels, S] on the model's device (resampled, channels converted,
        at least one hop long; NaN and too-short clips raise ValueError)."""
        x = prepare_waveform(
            wave, sample_rate, self.sample_rate, self.audio_channels, self.hop_length, "WaveVAE.prepare"
        )
        return x.to(self.encoder.conv1.weight_v.device)

    def _check_wave(self, wave: torch.Tensor) -> None:
        if wave.ndim != 3 or wave.shape[1] != self.audio_channels:
            raise ValueError(
                f"WaveVAE.encode: expected [B, {self.audio_channels}, S] audio, got {tuple(wave.shape)} "
                "(use WaveVAE.prepare to convert raw audio)"
            )
        if wave.shape[-1] < 1:
            raise ValueError("WaveVAE.encode: empty waveform")

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, C, S] waveform -> (mean, logvar), each [B, ceil(S / hop), L]."""
        self._check_wave(features)
        pad = self.num_latent_frames(features.shape[-1]) * self.hop_length - features.shape[-1]
        h = self.encoder(F.pad(features, (0, pad)))  # [B, 2L, T]
        mean, scale = h.chunk(2, dim=1)
        logvar = 2.0 * torch.log(F.softplus(scale) + STD_EPS)
        return rearrange(mean, "b c t -> b t c"), rearrange(logvar, "b c t -> b t c")

    def decode(self, z: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        """[B, T, L] latents -> [B, C, num_samples or T · hop] waveform."""
        if z.ndim != 3 or z.shape[-1] != self.latent_channels:
            raise ValueError(
                f"WaveVAE.decode: expected [B, T, {self.latent_channels}] latents, got {tuple(z.shape)}"
            )
        wave = self.decoder(rearrange(z, "b t c -> b c t"))  # [B, C, T * hop]
        return wave if num_samples is None else wave[..., :num_samples]

    def forward(
        self, wave: torch.Tensor, sample_posterior: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct: returns (reconstruction [B, C, S], mean, logvar)."""
        mean, logvar = self.encode(wave)
        posterior = DiagonalGaussian(mean, logvar)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z, wave.shape[-1]), mean, logvar
