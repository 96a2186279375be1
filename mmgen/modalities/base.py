"""What every modality VAE shares: the posterior, latent normalization and the VAE protocol.

Latents leave a VAE channels-last, in the layout the DiT consumes:

    sequence modalities (audio, motion)   [B, T, C]
    video                                 [B, T, h, w, C]

so that `encode -> LatentStats.normalize -> DiT -> LatentStats.denormalize -> decode` needs no
reshaping outside the VAE.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from mmgen.core.pretrained import PretrainedMixin
from mmgen.core.timeline import ModalitySpec


@dataclass(frozen=True)
class LossWeights:
    """Base of the per-modality loss-weight dataclasses: every field a finite number >= 0."""

    def __post_init__(self) -> None:
        for name, w in asdict(self).items():
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"{type(self).__name__}.{name} must be a finite number >= 0, got {w!r}")


class DiagonalGaussian:
    """Posterior N(mean, exp(logvar)) of a KL-regularized VAE (any shape, elementwise)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        if mean.shape != logvar.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} must have the same shape")
        self.mean = mean
        self.logvar = logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) summed over all non-batch dims, per example: [B]."""
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).sum(1)


class LatentStats(nn.Module):
    """Per-channel mean/std of a VAE's latents on training data, so the DiT sees unit variance.

    Stored as buffers, so they travel inside the VAE's `model.safetensors`.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """[..., C] raw latents -> unit-variance latents."""
        return (z - self.mean.to(z.dtype)) / self.std.to(z.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """[..., C] unit-variance latents -> raw latents."""
        return z * self.std.to(z.dtype) + self.mean.to(z.dtype)

    @torch.no_grad()
    def fit(self, latents: Iterable[torch.Tensor], eps: float = 1e-5) -> LatentStats:
        """Measure mean/std over every position of every batch (channels last), in float64."""
        total = sq = None
        count = 0
        for z in latents:
            flat = z.detach().reshape(-1, z.shape[-1]).double()
            if flat.shape[1] != self.mean.numel():
                raise ValueError(f"latents have {flat.shape[1]} channels, stats expect {self.mean.numel()}")
            total = flat.sum(0) if total is None else total + flat.sum(0)
            sq = flat.pow(2).sum(0) if sq is None else sq + flat.pow(2).sum(0)
            count += flat.shape[0]
        if count < 2 or total is None or sq is None:
            raise ValueError("LatentStats.fit needs at least two latent frames")
        mean = total / count
        var = (sq / count - mean.pow(2)).clamp_min(0.0) * count / (count - 1)
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(var.sqrt().clamp_min(eps).to(self.std))
        return self


class ModalityVAE(PretrainedMixin, nn.Module, abc.ABC):
    """Protocol shared by the mel, waveform, motion and video VAEs.

    Subclasses implement `encode` / `decode` on *features* (the codec's output, e.g. log-mel or
    normalized kinematic features) and expose `latent_channels`, `latent_rate_hz` and, for video,
    `latent_spatial`. Each owns a `LatentStats` as `self.latent_stats`.
    """

    latent_stats: LatentStats
    #: state_dict prefixes that only `decode` uses. The fingerprint (what a latent cache records)
    #: leaves them out: fine-tuning the decoder alone keeps every latent, so caches made with the
    #: VAE, and DiTs trained on them, stay valid.
    decoder_prefixes: tuple[str, ...] = ("decoder.",)

    def fingerprinted_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith(self.decoder_prefixes)}

    @property
    @abc.abstractmethod
    def latent_channels(self) -> int: ...

    @property
    @abc.abstractmethod
    def latent_rate_hz(self) -> float: ...

    @property
    def latent_spatial(self) -> tuple[int, int] | None:
        """(h, w) of each latent frame for video-like modalities; None for sequences."""
        return None

    @abc.abstractmethod
    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features -> (mean, logvar), each channels-last ([B, T, C] or [B, T, h, w, C])."""

    @abc.abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (channels-last, un-normalized) -> features."""

    @property
    def spec(self) -> ModalitySpec:
        return ModalitySpec(self.latent_channels, self.latent_rate_hz, self.latent_spatial)

    def posterior(self, features: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(*self.encode(features))

    def encode_normalized(
        self, features: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """features -> unit-variance latents for the DiT (the posterior mode unless `sample`)."""
        q = self.posterior(features)
        z = q.sample(generator) if sample else q.mode()
        return self.latent_stats.normalize(z)

    def decode_normalized(self, z: torch.Tensor) -> torch.Tensor:
        """unit-variance latents from the DiT -> features."""
        return self.decode(self.latent_stats.denormalize(z))
