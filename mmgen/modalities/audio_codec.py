"""Raw audio <-> features: input checks, resampling, log-mel spectrograms and Griffin-Lim.

Waveform layouts accepted everywhere in mmgen's audio code:

    [S]          one mono clip
    [B, S]       a batch of mono clips
    [B, C, S]    a batch of C-channel clips (C = 1 mono, 2 stereo)

(a single stereo clip is therefore `[1, 2, S]`: a 2-D tensor is always a batch of mono clips).

Log-mel frames are centred like librosa (`center=True`, zero padding): frame i is centred on
sample i * hop. Of librosa's `1 + S // hop` frames we keep the `ceil(S / hop)` whose centre lies
inside the clip, so a clip of S samples always gives exactly `ceil(S / hop)` frames, and
vocoding N frames gives N * hop samples (cropped back to S when the length is known).

    samples   |0 ........ hop ........ 2hop ........ 3hop ..... S-1|      (S = 2.4 hop)
    frames     f0          f1           f2                              -> ceil(2.4) = 3 frames
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from scipy.signal import resample_poly
from torch import nn

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Input checks and resampling
# ----------------------------------------------------------------------------------------------


def as_batch(wave: torch.Tensor | np.ndarray, where: str = "audio") -> torch.Tensor:
    """Any accepted layout -> float [B, C, S] (see the module docstring)."""
    x = torch.as_tensor(wave)
    if not torch.is_floating_point(x):
        raise ValueError(f"{where}: expected a float waveform, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, None]  # [1, 1, S]
    elif x.ndim == 2:
        x = x[:, None]  # [B, 1, S]
    elif x.ndim != 3:
        raise ValueError(f"{where}: expected [S], [B, S] or [B, C, S], got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where}: empty batch or channel dimension in shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{where}: waveform contains NaN or infinite samples")
    return x


def resample(wave: torch.Tensor, orig_rate: int, target_rate: int) -> torch.Tensor:
    """Polyphase resampling (scipy `resample_poly`) along the last axis.

    torchaudio is not a dependency, so this runs on the CPU in float64 and moves the result back
    to the input's device and dtype. Resample once when loading data, not inside training loops.
    """
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
    if orig_rate == target_rate:
        return wave
    ratio = Fraction(int(target_rate), int(orig_rate))
    logger.debug(
        "resampling %d Hz -> %d Hz (up %d, down %d)",
        orig_rate,
        target_rate,
        ratio.numerator,
        ratio.denominator,
    )
    out = resample_poly(wave.detach().cpu().double().numpy(), ratio.numerator, ratio.denominator, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(out)).to(device=wave.device, dtype=wave.dtype)


def prepare_waveform(
    wave: torch.Tensor | np.ndarray,
    sample_rate: int,
    target_rate: int,
    channels: int,
    min_samples: int = 1,
    where: str = "audio",
) -> torch.Tensor:
    """Check, resample and channel-convert raw audio to the model's [B, channels, S].

    Stereo -> mono averages the channels; mono -> stereo duplicates the channel. Any other channel
    count, NaN/inf samples or fewer than `min_samples` samples (after resampling) raise ValueError.
    """
    x = as_batch(wave, where)
    if x.shape[1] not in (1, 2):
        raise ValueError(
            f"{where}: expected 1 (mono) or 2 (stereo) channels, got {x.shape[1]} in shape {tuple(x.shape)}"
        )
    if channels not in (1, 2):
        raise ValueError(f"{where}: models take 1 or 2 channels, not {channels}")
    x = resample(x, int(sample_rate), int(target_rate))
    if x.shape[1] != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1)
    if x.shape[-1] < min_samples:
        raise ValueError(
            f"{where}: clip too short: {x.shape[-1]} samples at {target_rate} Hz, need at least {min_samples}"
        )
    return x.contiguous()


# ----------------------------------------------------------------------------------------------
# Mel filterbank and log-mel features
# ----------------------------------------------------------------------------------------------


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> torch.Tensor:
    """Triangular slaney-normalized mel filters [n_mels, n_fft // 2 + 1]: `librosa.filters.mel`,
    computed in float64 and rounded once to float32; too many mels for the FFT raise (librosa warns)."""
    import librosa

    with warnings.catch_warnings():  # librosa warns about empty filters; they raise below
        warnings.filterwarnings("ignore", message="Empty filters detected")
        weights = librosa.filters.mel(
            sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float64
        )  # [n_mels, n_bins]
    if np.any(weights.max(axis=1) == 0):
        raise ValueError(
            f"empty mel filters: n_mels={n_mels} is too many for n_fft={n_fft} at {sample_rate} Hz"
        )
    return torch.from_numpy(weights).float()


@dataclass(frozen=True)
class MelSpec:
    """Log-mel feature settings. The ToyDance defaults give 75 frames/s (22,050 / 294).

    Features are `log(max(mel, log_floor))` with mel = filterbank @ |STFT|^power (power 1 =
    magnitude, as in HiFi-GAN / Vocos); Hann window of n_fft samples.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 294
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 1.0
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"MelSpec: sample_rate, n_fft, hop_length and n_mels must be positive: {self}")
        if self.hop_length > self.n_fft:
            raise ValueError(
                f"MelSpec: hop_length {self.hop_length} > n_fft {self.n_fft} leaves gaps between frames"
            )
        fmax = self.sample_rate / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < fmax <= self.sample_rate / 2:
            raise ValueError(
                f"MelSpec: need 0 <= fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, fmax={fmax}"
            )
        if self.power <= 0 or self.log_floor <= 0:
            raise ValueError(f"MelSpec: power and log_floor must be positive: {self}")

    @property
    def frame_rate(self) -> float:
        """Mel frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """ceil(S / hop): frames whose centre lies inside a clip of S samples."""
        return -(-int(num_samples) // self.hop_length)

    def filterbank(self) -> torch.Tensor:
        return mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)


def stft(
    wave: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, win_length: int | None = None
) -> torch.Tensor:
    """Centred, zero-padded complex STFT in float32 (also under bf16 autocast): [..., S] -> [..., F, 1 + S // hop]."""
    lead = wave.shape[:-1]
    flat = wave.reshape(-1, wave.shape[-1]).float()  # [N, S]
    with torch.autocast(device_type=wave.device.type, enabled=False):
        spec = torch.stft(
            flat,
            n_fft,
            hop_length,
            win_length or n_fft,
            window.float(),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
    return spec.reshape(*lead, *spec.shape[-2:])


def log_mel(
    wave: torch.Tensor, spec: MelSpec, filterbank: torch.Tensor, window: torch.Tensor
) -> torch.Tensor:
    """[..., S] waveform -> [..., n_mels, ceil(S / hop)] log-mel (float32, also under autocast)."""
    frames = spec.num_frames(wave.shape[-1])
    mag = stft(wave, spec.n_fft, spec.hop_length, window)[..., :frames].abs()  # [..., F, N]
    with torch.autocast(device_type=wave.device.type, enabled=False):
        if spec.power != 1.0:
            mag = mag.pow(spec.power)
        mel = torch.matmul(filterbank.float(), mag)  # [..., n_mels, N]
        return mel.clamp_min(spec.log_floor).log()


# ----------------------------------------------------------------------------------------------
# Griffin-Lim (no training needed)
# ----------------------------------------------------------------------------------------------


def griffin_lim(
    magnitude: torch.Tensor,
    n_fft: int,
    hop_length: int,
    window: torch.Tensor,
    num_samples: int,
    n_iter: int = 32,
    momentum: float = 0.99,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013, as librosa): [B, F, N] magnitude -> [B, num_samples].

    Frames are centred (frame i at sample i * hop), matching `stft` above.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"griffin_lim: momentum must be in [0, 1), got {momentum}")
    mag = magnitude.float()
    frames = mag.shape[-1]
    phase = torch.rand(mag.shape, generator=generator, device=mag.device)
    angles = torch.polar(torch.ones_like(mag), 2 * math.pi * phase)
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        audio = torch.istft(
            mag * angles, n_fft, hop_length, window=window, center=True, length=frames * hop_length
        )
        rebuilt = stft(audio, n_fft, hop_length, window)[..., :frames]
        angles = rebuilt - prev * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        prev = rebuilt
    audio = torch.istft(
        mag * angles, n_fft, hop_length, window=window, center=True, length=frames * hop_length
    )
    return (
        audio[..., :num_samples]
        if num_samples <= audio.shape[-1]
        else torch.nn.functional.pad(audio, (0, num_samples - audio.shape[-1]))
    )


class MelAudioCodec(nn.Module):
    """Waveform <-> log-mel on the module's device; decoding uses `vocoder` if set, else Griffin-Lim.

    Args:
        spec: the log-mel settings (must match the mel VAE's and the vocoder's).
        vocoder: a module mapping log-mel [B, n_mels, N] to waveform [B, N * hop] (e.g.
            `mmgen.modalities.vocoder.VocosVocoder`); None -> Griffin-Lim.
        griffin_lim_iters: iterations of the fallback.
    """

    filterbank: torch.Tensor
    window: torch.Tensor

    def __init__(
        self, spec: MelSpec | None = None, vocoder: nn.Module | None = None, griffin_lim_iters: int = 32
    ) -> None:
        super().__init__()
        self.spec = spec or MelSpec()
        self.vocoder = vocoder
        self.griffin_lim_iters = griffin_lim_iters
        fb = self.spec.filterbank()
        self.register_buffer("filterbank", fb, persistent=False)
        self._pinv: torch.Tensor | None = None  # filterbank pseudo-inverse, made on first Griffin-Lim use
        self.register_buffer("window", torch.hann_window(self.spec.n_fft), persistent=False)

    @property
    def min_samples(self) -> int:
        """Shortest clip accepted: one full analysis window."""
        return self.spec.n_fft

    def encode(self, wave: torch.Tensor | np.ndarray, sample_rate: int | None = None) -> torch.Tensor:
        """Raw audio (any accepted layout) -> log-mel [B, n_mels, ceil(S / hop)].

        Stereo is averaged to mono; another sample rate is resampled (on the CPU, see `resample`).
        """
        x = prepare_waveform(
            wave,
            self.spec.sample_rate if sample_rate is None else sample_rate,
            self.spec.sample_rate,
            1,
            self.min_samples,
            "MelAudioCodec.encode",
        )
        x = x[:, 0].to(self.filterbank.device)  # [B, S]
        return log_mel(x, self.spec, self.filterbank, self.window)

    def mel_to_magnitude(self, features: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, n_mels, N] -> non-negative least-norm linear magnitude [B, F, N] (pseudo-inverse)."""
        if self._pinv is None or self._pinv.device != self.filterbank.device:
            self._pinv = torch.linalg.pinv(self.filterbank.double()).float()  # [F, n_mels]
        mel = features.float().exp()
        lin = torch.matmul(self._pinv, mel).clamp_min(0.0)  # [B, F, N]
        return lin.pow(1.0 / self.spec.power) if self.spec.power != 1.0 else lin

    def decode(
        self, features: torch.Tensor, num_samples: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Log-mel [B, n_mels, N] -> waveform [B, num_samples or N * hop]."""
        if features.ndim != 3 or features.shape[1] != self.spec.n_mels:
            raise ValueError(
                f"MelAudioCodec.decode: expected [B, {self.spec.n_mels}, N] log-mel, got {tuple(features.shape)}"
            )
        if not bool(torch.isfinite(features).all()):
            raise ValueError("MelAudioCodec.decode: log-mel contains NaN or infinite values")
        length = num_samples if num_samples is not None else features.shape[-1] * self.spec.hop_length
        if self.vocoder is not None:
            audio = self.vocoder(features)  # [B, N * hop]
            if length <= audio.shape[-1]:
                return audio[..., :length]
            return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))
        mag = self.mel_to_magnitude(features)
        return griffin_lim(
            mag,
            self.spec.n_fft,
            self.spec.hop_length,
            self.window,
            length,
            self.griffin_lim_iters,
            generator=generator,
        )
