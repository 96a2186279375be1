"""Mel-spectrogram VAE (Make-An-Audio / MoMu style): a 2-D conv VAE over (frequency, time).

    log-mel [B, n_mels, N] ──affine──► [B, 1, n_mels, N'] (N' = T'·f_t, replicate-padded)
      ─► conv3x3 ─► stage_i: res blocks, strided conv (f_i, t_i) ─► res blocks ─► conv3x3
      ─► [B, 2·c_z, n_mels / f, T']  = (mean, logvar)
      ─► channels-last tokens [B, T', c_z · n_mels / f]   ("b c f t -> b t (c f)": channel-major,
                                                           the reduced-frequency index runs fastest)
    decode mirrors it with nearest up-sampling + conv3x3 and crops to `num_frames`.

f = Π f_i (frequency, ×4 in every preset), f_t = Π t_i (time). With the ToyDance mel settings
(22,050 Hz, hop 294 -> 75 frames/s) and f_t = 10 the latent rate is exactly 7.5 Hz, the motion
VAE's 30 fps / 4.

Lengths: a log-mel with N frames is padded on the right to T' · f_t frames (T' = ceil(N / f_t))
by repeating its last frame; `decode(z, num_frames=N)` crops back, so `decode(encode(x), N)` has
x's length. With the codec's ceil(S / hop) frames, a clip of S samples has ceil(S / (hop·f_t))
latent frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mmgen.modalities.audio_codec import MelAudioCodec, MelSpec
from mmgen.modalities.base import DiagonalGaussian, LatentStats, ModalityVAE

MEL_PRESETS: dict[str, dict] = {
    # the project's audio VAE: 80 mels x 75 fps -> 7.5 Hz tokens of 4 x 20 = 80 channels
    "toydance": {
        "z_channels": 4,
        "channels": 64,
        "channel_mults": (1, 2, 4),
        "strides": ((2, 2), (2, 5)),
        "num_res_blocks": 2,
    },
    # tests: same mel settings and latent rate, small widths
    "tiny": {
        "z_channels": 4,
        "channels": 8,
        "channel_mults": (1, 2, 4),
        "strides": ((2, 2), (2, 5)),
        "num_res_blocks": 1,
        "norm_groups": 4,
    },
}


def _groups(channels: int, max_groups: int) -> int:
    return math.gcd(channels, max_groups)


class ResBlock2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, max_groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in, max_groups), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(c_out, max_groups), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


def _down_conv(c_in: int, c_out: int, stride: tuple[int, int]) -> nn.Conv2d:
    """Strided conv whose output is exactly (F / f, T / t) when F, T are multiples of the strides."""
    pads = tuple(max(1, s // 2) for s in stride)
    kernel = tuple(s + 2 * p for s, p in zip(stride, pads))
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pads)


class MelVAE(ModalityVAE):
    """2-D conv VAE on log-mel features [B, n_mels, N]; latents [B, T', z_channels · n_mels / f].

    Args:
        mel: the log-mel settings the features were made with (sets the frame rate).
        z_channels: latent channels per reduced-frequency bin.
        channels: width of the first stage; stage i has channels × channel_mults[i].
        channel_mults: one per resolution (len(strides) + 1).
        strides: per-stage (frequency, time) down-sampling factors.
        num_res_blocks: residual blocks per stage.
        norm_groups: at most this many GroupNorm groups.
        feature_shift, feature_scale: fixed affine mapping log-mel to roughly unit scale inside
            the network ((x - shift) / scale); decode undoes it.
    """

    decoder_prefixes = ("dec_",)  # dec_in, dec_mid, dec_stages, dec_norm, dec_out

    def __init__(
        self,
        mel: MelSpec | None = None,
        z_channels: int = 4,
        channels: int = 64,
        channel_mults: Sequence[int] = (1, 2, 4),
        strides: Sequence[Sequence[int]] = ((2, 2), (2, 5)),
        num_res_blocks: int = 2,
        norm_groups: int = 8,
        feature_shift: float = -4.0,
        feature_scale: float = 3.0,
    ) -> None:
        super().__init__()
        self.mel = mel or MelSpec()
        strides_t = [(int(f), int(t)) for f, t in strides]
        if len(channel_mults) != len(strides_t) + 1:
            raise ValueError(
                f"MelVAE: need len(channel_mults) == len(strides) + 1, got {list(channel_mults)} and {strides_t}"
            )
        if (
            any(min(s) < 1 for s in strides_t)
            or min(z_channels, channels, num_res_blocks + 1, feature_scale) <= 0
        ):
            raise ValueError("MelVAE: strides, z_channels, channels and feature_scale must be positive")
        self.freq_factor = math.prod(f for f, _ in strides_t)
        self.time_factor = math.prod(t for _, t in strides_t)
        if self.mel.n_mels % self.freq_factor:
            raise ValueError(
                f"MelVAE: n_mels {self.mel.n_mels} is not divisible by the frequency factor {self.freq_factor}"
            )
        self.z_channels = z_channels
        self.latent_freqs = self.mel.n_mels // self.freq_factor
        self.feature_shift, self.feature_scale = float(feature_shift), float(feature_scale)
        widths = [channels * m for m in channel_mults]

        # encoder
        self.enc_in = nn.Conv2d(1, widths[0], 3, padding=1)
        self.enc_stages = nn.ModuleList()
        for i, stride in enumerate(strides_t):
            blocks = [ResBlock2d(widths[i], widths[i], norm_groups) for _ in range(num_res_blocks)]
            self.enc_stages.append(nn.Sequential(*blocks, _down_conv(widths[i], widths[i + 1], stride)))
        self.enc_mid = nn.Sequential(
            *[ResBlock2d(widths[-1], widths[-1], norm_groups) for _ in range(num_res_blocks)]
        )
        self.enc_norm = nn.GroupNorm(_groups(widths[-1], norm_groups), widths[-1])
        self.enc_out = nn.Conv2d(widths[-1], 2 * z_channels, 3, padding=1)

        # decoder
        self.dec_in = nn.Conv2d(z_channels, widths[-1], 3, padding=1)
        self.dec_mid = nn.Sequential(
            *[ResBlock2d(widths[-1], widths[-1], norm_groups) for _ in range(num_res_blocks)]
        )
        self.dec_stages = nn.ModuleList()
        self.dec_strides = strides_t[::-1]
        for i in reversed(range(len(strides_t))):
            blocks = [ResBlock2d(widths[i], widths[i], norm_groups) for _ in range(num_res_blocks)]
            self.dec_stages.append(nn.Sequential(nn.Conv2d(widths[i + 1], widths[i], 3, padding=1), *blocks))
        self.dec_norm = nn.GroupNorm(_groups(widths[0], norm_groups), widths[0])
        self.dec_out = nn.Conv2d(widths[0], 1, 3, padding=1)

        self.latent_stats = LatentStats(self.latent_channels)

    @classmethod
    def from_preset(cls, name: str, mel: MelSpec | None = None, **overrides) -> MelVAE:
        """`toydance` (the project's audio VAE) or `tiny` (tests); both at 7.5 Hz with the default MelSpec."""
        if name not in MEL_PRESETS:
            raise ValueError(f"unknown MelVAE preset {name!r}; choose one of {sorted(MEL_PRESETS)}")
        return cls(mel=mel, **{**MEL_PRESETS[name], **overrides})

    @property
    def latent_channels(self) -> int:
        return self.z_channels * self.latent_freqs

    @property
    def latent_rate_hz(self) -> float:
        return self.mel.frame_rate / self.time_factor

    def num_latent_frames(self, num_frames: int) -> int:
        return -(-int(num_frames) // self.time_factor)

    def codec(self, vocoder: nn.Module | None = None) -> MelAudioCodec:
        """The waveform <-> log-mel codec these features come from."""
        return MelAudioCodec(self.mel, vocoder).to(self.enc_in.weight.device)

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log-mel [B, n_mels, N] -> (mean, logvar), each [B, ceil(N / f_t), c_z · n_mels / f]."""
        if features.ndim != 3 or features.shape[1] != self.mel.n_mels or features.shape[-1] < 1:
            raise ValueError(
                f"MelVAE.encode: expected [B, {self.mel.n_mels}, N >= 1] log-mel, got {tuple(features.shape)}"
            )
        pad = self.num_latent_frames(features.shape[-1]) * self.time_factor - features.shape[-1]
        x = (features - self.feature_shift) / self.feature_scale
        x = F.pad(x, (0, pad), mode="replicate") if pad else x
        h = self.enc_in(x[:, None])  # [B, C0, n_mels, N']
        for stage in self.enc_stages:
            h = stage(h)
        h = self.enc_out(F.silu(self.enc_norm(self.enc_mid(h))))  # [B, 2 c_z, F', T']
        mean, logvar = h.chunk(2, dim=1)
        return rearrange(mean, "b c f t -> b t (c f)"), rearrange(logvar, "b c f t -> b t (c f)")

    def decode(self, z: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """[B, T', c_z · n_mels / f] latents -> log-mel [B, n_mels, num_frames or T' · f_t]."""
        if z.ndim != 3 or z.shape[-1] != self.latent_channels:
            raise ValueError(
                f"MelVAE.decode: expected [B, T, {self.latent_channels}] latents, got {tuple(z.shape)}"
            )
        h = self.dec_in(rearrange(z, "b t (c f) -> b c f t", f=self.latent_freqs))  # [B, C, F', T']
        h = self.dec_mid(h)
        for stride, stage in zip(self.dec_strides, self.dec_stages):
            h = stage(F.interpolate(h, scale_factor=stride, mode="nearest"))
        mel = self.dec_out(F.silu(self.dec_norm(h)))[:, 0]  # [B, n_mels, T' * f_t]
        mel = mel * self.feature_scale + self.feature_shift
        return mel if num_frames is None else mel[..., :num_frames]

    def forward(
        self, features: torch.Tensor, sample_posterior: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct: returns (log-mel [B, n_mels, N], mean, logvar)."""
        mean, logvar = self.encode(features)
        posterior = DiagonalGaussian(mean, logvar)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z, features.shape[-1]), mean, logvar
