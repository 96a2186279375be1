"""Raw media <-> normalized latents, one class per modality kind.

The latent cache, the Pipeline and the demo all go through these, so "how a waveform becomes DiT
tokens" is written once:

    audio   waveform [B, S] float  --log-mel--> MelVAE --LatentStats--> [B, T, C]      (vocoder or Griffin-Lim back)
            (kind "audio_mel")
    audio   waveform [B, S] float  --WaveVAE (Oobleck)--> [B, T, C]                    (its decoder back)
            (kind "audio_wave")
    motion  joints [B, T, J, D]    --kinematic features--> MotionVAE --> [B, T', C]     (features integrate back to joints)
    video   frames [B, F, H, W, 3] uint8 --[-1, 1]--> VideoVAE --> [B, T', h, w, C]

Each saves itself as a folder of pretrained sub-modules (`vae/`, and `vocoder/` for audio).
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from mmgen.core.timeline import ModalitySpec
from mmgen.modalities.audio_codec import MelAudioCodec
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.audio_wave import WaveVAE
from mmgen.modalities.motion import MotionVAE
from mmgen.modalities.video import VideoVAE
from mmgen.modalities.video_codec import features_to_frames, frames_to_features
from mmgen.modalities.vocoder import VocosVocoder


def _as_tensor(x: Any, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)


class MediaModality(nn.Module, abc.ABC):
    """Base: a modality VAE plus its codec. Subclasses define the raw <-> features steps."""

    kind: ClassVar[str]
    vae_class: ClassVar[type]

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    @property
    def spec(self) -> ModalitySpec:
        return self.vae.spec

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def fingerprint(self) -> str:
        """Fingerprint of what makes the latents (the VAE); caches record it."""
        return self.vae.fingerprint()

    def raw_length(self, seconds: float) -> int:
        """Raw samples/frames covering `seconds`."""
        return round(seconds * self.raw_rate)

    @property
    def raw_rate(self) -> float:
        """Raw samples (audio) or frames (motion, video) per second."""
        return float(self.vae.fps)

    @torch.no_grad()
    def encode_item(self, raw: Any) -> torch.Tensor:
        """One clip (no batch dim) -> normalized latents [T, ...] (for the latent cache)."""
        return self.encode(_as_tensor(raw, self.device)[None])[0]

    def save_pretrained(
        self, directory: str | os.PathLike, dtype: torch.dtype | None = None, overwrite: bool = False
    ) -> None:
        """The VAE's folder under `directory/vae` (and the vocoder's for audio), written atomically;
        `dtype` and `overwrite` as in `PretrainedMixin.save_pretrained`."""
        from mmgen.core.fileio import atomic_dir

        with atomic_dir(directory, "modality folder", overwrite=overwrite) as tmp:
            self._save_parts(tmp, dtype)

    def _save_parts(self, directory: Path, dtype: torch.dtype | None) -> None:
        self.vae.save_pretrained(directory / "vae", dtype)

    @abc.abstractmethod
    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        """A batch of raw media -> normalized latents (posterior mode)."""

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: torch.device | str = "cpu") -> MediaModality:
        return cls(cls.vae_class.from_pretrained(Path(directory) / "vae", device)).to(device)


class AudioModality(MediaModality):
    """Waveforms at the mel spec's sample rate; decoded by the vocoder if given, else Griffin-Lim."""

    kind = "audio_mel"
    vae_class = MelVAE

    def __init__(self, vae: MelVAE, vocoder: VocosVocoder | None = None, griffin_lim_iters: int = 32) -> None:
        super().__init__(vae)
        self.vocoder = vocoder
        self.codec = MelAudioCodec(vae.mel, vocoder, griffin_lim_iters)

    @property
    def raw_rate(self) -> float:
        return float(self.vae.mel.sample_rate)

    @property
    def sample_rate(self) -> int:
        return int(self.vae.mel.sample_rate)

    @torch.no_grad()
    def encode(self, raw: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """[B, S] (or [B, C, S]) waveform -> [B, T, C] normalized latents (posterior mode)."""
        mel = self.codec.encode(raw, sample_rate)  # [B, n_mels, N]
        return self.vae.encode_normalized(mel.to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, num_samples: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """[B, T, C] normalized latents -> [B, S] waveform (S = num_samples or T / rate seconds)."""
        hop = self.vae.mel.hop_length
        num_samples = num_samples or round(z.shape[1] / self.spec.rate_hz * self.sample_rate)
        frames = -(-num_samples // hop)
        mel = self.vae.decode(self.vae.latent_stats.denormalize(z), num_frames=frames)  # [B, n_mels, N]
        return self.codec.decode(mel, num_samples, generator=generator).clamp(-1.0, 1.0)

    def _save_parts(self, directory: Path, dtype: torch.dtype | None) -> None:
        super()._save_parts(directory, dtype)
        if self.vocoder is not None:
            self.vocoder.save_pretrained(directory / "vocoder", dtype)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: torch.device | str = "cpu") -> AudioModality:
        directory = Path(directory)
        vocoder = VocosVocoder.from_pretrained(directory / "vocoder", device) if (directory / "vocoder").exists() else None
        return cls(MelVAE.from_pretrained(directory / "vae", device), vocoder).to(device)


class WaveAudioModality(MediaModality):
    """Mono waveforms [B, S] at the waveform VAE's sample rate; its decoder makes the audio back
    (no vocoder, no Griffin-Lim). A stereo VAE gets the mono signal on both channels and its
    output is averaged back to mono (the pipeline's audio is mono)."""

    kind = "audio_wave"
    vae_class = WaveVAE

    @property
    def raw_rate(self) -> float:
        return float(self.vae.sample_rate)

    @property
    def sample_rate(self) -> int:
        return int(self.vae.sample_rate)

    @torch.no_grad()
    def encode(self, raw: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """[B, S] (or [B, C, S]) waveform -> [B, T, C] normalized latents (posterior mode)."""
        wave = self.vae.prepare(raw, sample_rate or self.sample_rate)  # [B, audio_channels, S]
        return self.vae.encode_normalized(wave)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, num_samples: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """[B, T, C] normalized latents -> [B, S] waveform (S = num_samples or T hops);
        `generator` is unused (the decoder is deterministic), kept for the audio interface."""
        wave = self.vae.decode(self.vae.latent_stats.denormalize(z), num_samples)  # [B, C, S]
        return wave.mean(dim=1).clamp(-1.0, 1.0)


class MotionModality(MediaModality):
    """Joint positions [B, T, J, D] at the VAE's fps (SMPL-24, y-up, metres for 3-D)."""

    kind = "motion"
    vae_class = MotionVAE

    @torch.no_grad()
    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        mean, _ = self.vae.encode_joints(raw.to(self.device, torch.float32))
        return self.vae.latent_stats.normalize(mean)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, num_frames: int | None = None, state: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T', C] normalized latents -> joints [B, T, J, D]; `state` = frame-0 root state (default origin)."""
        return self.vae.decode_joints(self.vae.latent_stats.denormalize(z), num_frames, state)

    def initial_state(self, joints: torch.Tensor) -> torch.Tensor:
        return self.vae.codec.initial_state(joints.to(self.device, torch.float32))

    def root(self, joints: torch.Tensor) -> torch.Tensor:
        """Root positions [B, T, D] of joints [B, T, J, D] (the skeleton's root or hip midpoint)."""
        return self.vae.codec.root(joints)


class VideoModality(MediaModality):
    """RGB frames uint8 [B, F, H, W, 3] at the VAE's fps and frame size."""

    kind = "video"
    vae_class = VideoVAE

    @torch.no_grad()
    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        return self.vae.encode_normalized(frames_to_features(raw).to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        features = self.vae.decode(self.vae.latent_stats.denormalize(z), num_frames)
        return features_to_frames(features)


MEDIA_KINDS: dict[str, type[MediaModality]] = {
    c.kind: c for c in (AudioModality, WaveAudioModality, MotionModality, VideoModality)
}


def media_kind_of(vae: Any) -> type[MediaModality]:
    """The MediaModality class that wraps a VAE instance (MelVAE -> audio_mel, WaveVAE -> audio_wave, ...)."""
    for cls in MEDIA_KINDS.values():
        if isinstance(vae, cls.vae_class):
            return cls
    raise ValueError(f"no media kind wraps a {type(vae).__name__} (known: {sorted(MEDIA_KINDS)})")
