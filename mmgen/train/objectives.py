"""What each autoencoder trains on: one objective per model, all driven by `VAEModule`.

An objective owns the model being trained (`model`, exported at the end), an optional
discriminator, and turns a raw batch into named losses with the modality's own loss functions
(`mmgen.modalities.*`). Every objective returns `"loss"` (the weighted total) plus each named
term, so logs carry the same names as the loss weights in the config.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from mmgen.modalities.audio_codec import MelAudioCodec
from mmgen.modalities.audio_discriminators import AudioDiscriminator, MelPatchDiscriminator
from mmgen.modalities.audio_losses import AudioReconstructionLoss, discriminator_adversarial_loss
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.audio_wave import WaveVAE
from mmgen.modalities.motion import MotionVAE
from mmgen.modalities.motion_rhythm import RhythmContrastive, beat_windows, motion_beat_frames
from mmgen.modalities.motion_train import MotionLossWeights, motion_vae_losses
from mmgen.modalities.video import VideoVAE
from mmgen.modalities.video_codec import frames_to_features
from mmgen.modalities.video_train import (
    PatchDiscriminator,
    VideoLossWeights,
    hinge_discriminator_loss,
    video_vae_losses,
)
from mmgen.modalities.vocoder import VocosVocoder

Losses = dict[str, torch.Tensor]


class Objective(nn.Module):
    """Base: `generator_losses`, `discriminator_losses`, `latents` (posterior means for LatentStats)."""

    model: nn.Module
    discriminator: nn.Module | None = None
    input_key: str = ""

    def inputs(self, batch: Mapping[str, Any]) -> torch.Tensor:
        if self.input_key not in batch:
            raise ValueError(f"{type(self).__name__}: the batch has no {self.input_key!r} (keys {sorted(batch)})")
        return batch[self.input_key]

    def generator_parameters(self) -> list[nn.Parameter]:
        """What the generator optimizer updates: the model (plus objective-only heads, if any)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def generator_losses(
        self, batch: Mapping[str, Any], adversarial: bool
    ) -> tuple[Losses, torch.Tensor | None, torch.Tensor | None]:
        """(named losses with "loss", fake, real) — fake/real feed the discriminator step."""
        raise TypeError(f"{type(self).__name__} must define generator_losses")

    def discriminator_losses(self, fake: torch.Tensor, real: torch.Tensor) -> Losses:
        raise TypeError(f"{type(self).__name__} has no discriminator")

    @torch.no_grad()
    def latents(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        """Posterior means [B, T, ..., C] of a batch (None when the model is not a VAE)."""
        return None

    def fit_data_stats(self, batches: Iterable[Mapping[str, Any]]) -> None:
        """Measure input normalisation on training batches before the first step (default: none needed)."""


def _renamed(terms: Losses) -> Losses:
    """The audio losses call their weighted total "total"; every objective reports it as "loss"."""
    return {("loss" if k == "total" else k): v for k, v in terms.items()}


class AudioObjective(Objective):
    """Audio objectives share `AudioReconstructionLoss` and its adversarial terms."""

    input_key = "audio"
    loss: AudioReconstructionLoss

    def discriminator_losses(self, fake: torch.Tensor, real: torch.Tensor) -> Losses:
        assert self.discriminator is not None
        terms = discriminator_adversarial_loss(self.discriminator(real), self.discriminator(fake), self.loss.adv_kind)
        terms["loss"] = terms.pop("disc")
        return terms


class MelVAEObjective(AudioObjective):
    """Mel VAE on log-mel of the batch's "audio" waveforms: L1 + KL (+ mel PatchGAN)."""

    def __init__(
        self, vae: MelVAE, loss: AudioReconstructionLoss | None = None, discriminator: MelPatchDiscriminator | None = None
    ) -> None:
        super().__init__()
        self.model = vae
        self.codec = MelAudioCodec(vae.mel)
        self.loss = loss or AudioReconstructionLoss(vae.mel.sample_rate, l1_weight=1.0, stft_weight=0.0, mel_weight=0.0)
        self.discriminator = discriminator

    def generator_losses(self, batch: Mapping[str, Any], adversarial: bool) -> tuple[Losses, torch.Tensor, torch.Tensor]:
        mel = self.codec.encode(self.inputs(batch))  # [B, n_mels, N]
        recon, mean, logvar = self.model(mel, sample_posterior=True)
        terms = self.loss(recon, mel, mean, logvar, self.discriminator if adversarial else None)
        return _renamed(terms), recon, mel

    @torch.no_grad()
    def latents(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.model.encode(self.codec.encode(self.inputs(batch)))[0]


class VocoderObjective(AudioObjective):
    """Vocoder: waveform -> log-mel -> waveform; multi-resolution STFT + mel (+ MPD/MRSD GAN)."""

    def __init__(
        self, vocoder: VocosVocoder, loss: AudioReconstructionLoss | None = None, discriminator: AudioDiscriminator | None = None
    ) -> None:
        super().__init__()
        self.model = vocoder
        self.loss = loss or AudioReconstructionLoss(vocoder.mel.sample_rate, kl_weight=0.0)
        self.discriminator = discriminator

    def generator_losses(self, batch: Mapping[str, Any], adversarial: bool) -> tuple[Losses, torch.Tensor, torch.Tensor]:
        wave = self.inputs(batch)
        pred = self.model.reconstruct(wave)
        terms = self.loss(pred, wave, None, None, self.discriminator if adversarial else None)
        return _renamed(terms), pred, wave


class WaveVAEObjective(AudioObjective):
    """Waveform VAE (Oobleck/DAC style): STFT + mel + KL (+ MPD/MRSD GAN with feature matching)."""

    def __init__(
        self, vae: WaveVAE, loss: AudioReconstructionLoss | None = None, discriminator: AudioDiscriminator | None = None
    ) -> None:
        super().__init__()
        self.model = vae
        self.loss = loss or AudioReconstructionLoss(vae.sample_rate)
        self.discriminator = discriminator

    def _prepare(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.model.prepare(self.inputs(batch), self.model.sample_rate)

    def generator_losses(self, batch: Mapping[str, Any], adversarial: bool) -> tuple[Losses, torch.Tensor, torch.Tensor]:
        wave = self._prepare(batch)
        recon, mean, logvar = self.model(wave, sample_posterior=True)
        terms = self.loss(recon, wave, mean, logvar, self.discriminator if adversarial else None)
        return _renamed(terms), recon, wave

    @torch.no_grad()
    def latents(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.model.encode(self._prepare(batch))[0]


class MotionVAEObjective(Objective):
    """Motion VAE on the batch's "motion" joints; with `music_vae` the rhythm-contrastive term too.

    Args:
        music_vae: directory of a trained (frozen) MelVAE at the same latent rate; its posterior
            means of the batch's "audio" are the music side of the rhythm-contrastive loss.
        beat_method: "speed" (joint-speed minima) or "amplitude" (MoMu's kinematic amplitude).
    """

    input_key = "motion"

    def __init__(
        self,
        vae: MotionVAE,
        weights: MotionLossWeights | None = None,
        music_vae: str | None = None,
        rhythm_dim: int = 64,
        rhythm_temperature: float = 0.1,
        beat_method: str = "speed",
    ) -> None:
        super().__init__()
        self.model = vae
        self.weights = weights or MotionLossWeights()
        self.beat_method = beat_method
        self.register_buffer("codec_fitted", torch.zeros((), dtype=torch.bool))  # in the Lightning checkpoint
        self.music: MelVAE | None = None
        self.rhythm: RhythmContrastive | None = None
        if music_vae is not None and self.weights.rhythm > 0:
            if not os.path.isdir(music_vae):
                raise FileNotFoundError(f"{music_vae}: the music VAE for the rhythm-contrastive term is missing")
            music = MelVAE.from_pretrained(music_vae).requires_grad_(False)
            if abs(music.latent_rate_hz - vae.latent_rate_hz) > 1e-9:
                raise ValueError(f"music VAE runs at {music.latent_rate_hz} Hz, the motion VAE at {vae.latent_rate_hz} Hz")
            self.music = music
            self.music_codec = MelAudioCodec(music.mel)
            self.rhythm = RhythmContrastive(vae.latent_channels, music.latent_channels, rhythm_dim, rhythm_temperature)

    def fit_data_stats(self, batches: Iterable[Mapping[str, Any]]) -> None:
        """Fit the kinematic codec's per-dimension normalisation once (a resumed run keeps it)."""
        if bool(self.codec_fitted):
            return
        self.model.codec.fit(batch[self.input_key] for batch in batches)
        self.codec_fitted.fill_(True)

    def generator_parameters(self) -> list[nn.Parameter]:
        # the rhythm projection heads train with the VAE but are not part of the exported model
        heads = list(self.rhythm.parameters()) if self.rhythm is not None else []
        return super().generator_parameters() + heads

    def train(self, mode: bool = True) -> MotionVAEObjective:
        super().train(mode)
        if self.music is not None:
            self.music.eval()  # frozen: keep its normalisation in inference mode
        return self

    def _rhythm_inputs(self, batch: Mapping[str, Any], joints: torch.Tensor) -> dict[str, Any]:
        if self.rhythm is None or self.music is None:
            return {}
        if "audio" not in batch:
            raise ValueError("the rhythm-contrastive term needs the paired 'audio' in each batch")
        with torch.no_grad():
            music = self.music.encode(self.music_codec.encode(batch["audio"]))[0]  # [B, T', C_music]
        t_lat = self.model.num_latent_frames(joints.shape[1])
        music = music[:, :t_lat]
        beats = [motion_beat_frames(j, self.model.fps, self.beat_method) for j in joints.detach().cpu().numpy()]
        beats = [b[b < joints.shape[1]] if len(b) else np.zeros(0, dtype=np.int64) for b in beats]
        index, mask = beat_windows(beats, self.model.fps, self.model.latent_rate_hz, t_lat)
        return {"rhythm": self.rhythm, "music_latents": music, "beat_index": index.to(joints.device),
                "beat_mask": mask.to(joints.device)}

    def generator_losses(self, batch: Mapping[str, Any], adversarial: bool) -> tuple[Losses, None, None]:
        joints = self.inputs(batch)
        losses = motion_vae_losses(self.model, joints, self.weights, **self._rhythm_inputs(batch, joints))
        return losses, None, None

    @torch.no_grad()
    def latents(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.model.encode_joints(self.inputs(batch))[0]


class VideoVAEObjective(Objective):
    """Causal video VAE on the batch's "video" frames: L1 + gradient + KL (+ frame PatchGAN)."""

    input_key = "video"

    def __init__(
        self, vae: VideoVAE, weights: VideoLossWeights | None = None, discriminator: PatchDiscriminator | None = None
    ) -> None:
        super().__init__()
        self.model = vae
        self.weights = weights or VideoLossWeights()
        self.discriminator = discriminator

    def generator_losses(self, batch: Mapping[str, Any], adversarial: bool) -> tuple[Losses, torch.Tensor, torch.Tensor]:
        frames = self.inputs(batch)
        losses, recon = video_vae_losses(self.model, frames, self.weights, self.discriminator if adversarial else None)
        return losses, recon, frames_to_features(frames).to(recon.device)

    def discriminator_losses(self, fake: torch.Tensor, real: torch.Tensor) -> Losses:
        assert self.discriminator is not None
        return {"loss": hinge_discriminator_loss(self.discriminator(real), self.discriminator(fake))}

    @torch.no_grad()
    def latents(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.model.encode(frames_to_features(self.inputs(batch)).to(next(self.model.parameters()).device))[0]
