"""`SampleLogger`: a DiT run you can watch. Every `every_n_steps` it samples a task on the first
validation batch and logs to TensorBoard what the samples look and sound like.

    samples/<modality>/audio     the waveform              (TensorBoard "audio" tab)
    samples/<modality>/mel       its log-mel spectrogram   ("images")
    samples/<modality>/video     motion as a stick-figure GIF, video frames as a GIF ("images")
    samples/<modality>/given     the same for the validation clip's own latents, logged once

The modalities' VAEs come from a pipeline folder (`pipeline:`, e.g. checkpoints/toydance: its DiT is
not used). Sampling uses the run's sampling weights (the EMA copy), its process, and a fixed seed,
so successive logs differ only by training. Needs a TensorBoardLogger on the trainer (the
shipped trainer configs have one); with another logger it warns once and logs nothing.

    trainer:
      callbacks:
        - class_path: mmgen.train.sample_logging.SampleLogger
          init_args: {pipeline: checkpoints/toydance, every_n_steps: 1000, task: dance2music}
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import numpy as np
import torch

from mmgen.diffusion.samplers import sample
from mmgen.diffusion.settings import SamplingSettings
from mmgen.modalities.media import MediaModality
from mmgen.pipeline.media import resolve_task

log = logging.getLogger(__name__)


class SampleLogger(L.Callback):
    """Log sampled audio, mel images and stick-figure / video GIFs at set training steps.

    Args:
        pipeline: pipeline folder whose modality VAEs decode the latents.
        every_n_steps: log at the first validation at or after every multiple of this step.
        task: the task to sample (its GIVEN modalities come from the validation batch).
        num_samples: clips of the first validation batch to sample.
        steps, sampler, grid: sampling settings (12-step UniPC on the log-SNR grid by default).
        seed: noise seed, the same at every log.
        gif_fps: frame rate of the logged GIFs (motion is rendered at this rate).
    """

    def __init__(
        self,
        pipeline: str,
        every_n_steps: int = 1000,
        task: str = "joint",
        num_samples: int = 2,
        steps: int = 12,
        sampler: str = "unipc2",
        grid: str = "log_snr",
        seed: int = 0,
        gif_fps: float = 10.0,
    ) -> None:
        super().__init__()
        if every_n_steps < 1 or num_samples < 1:
            raise ValueError(f"every_n_steps and num_samples must be >= 1, got {every_n_steps}, {num_samples}")
        self.pipeline, self.every_n_steps, self.task = str(pipeline), int(every_n_steps), task
        self.num_samples, self.seed, self.gif_fps = int(num_samples), int(seed), float(gif_fps)
        self.settings = SamplingSettings(steps=steps, sampler=sampler, grid=grid)
        self._media: dict[str, MediaModality] | None = None
        self._next = 0
        self._given_logged = False
        self._warned = False

    # ------------------------------------------------------------------ hooks
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or trainer.global_step < self._next or not trainer.is_global_zero:
            return
        writer = self._writer(trainer)
        if writer is None:
            return
        self._next = (trainer.global_step // self.every_n_steps + 1) * self.every_n_steps
        latents = {m: z[: self.num_samples] for m, z in batch["latents"].items()}
        media = self._load_media(pl_module.device)
        if not self._given_logged:
            self._log_latents(writer, "given", latents, media, trainer.global_step)
            self._given_logged = True
        with torch.no_grad():
            model = pl_module.sampling_model()
            was_training, check = model.training, model.check_levels
            model.eval()
            model.check_levels = False
            try:
                task = resolve_task(self.task, list(model.specs), list(latents))  # joint: every modality
                out = sample(
                    model, task, model.specs, {m: z for m, z in latents.items() if m in task.modalities}, process=pl_module.process, settings=self.settings,
                    segment_seconds=model.segment_seconds,
                    generator=torch.Generator(device=pl_module.device).manual_seed(self.seed), progress=False,
                )
            finally:
                model.train(was_training)
                model.check_levels = check
        self._log_latents(writer, "sample", out, media, trainer.global_step)
        writer.flush()

    # ------------------------------------------------------------------ parts
    def _writer(self, trainer: L.Trainer) -> Any:
        from lightning.pytorch.loggers import TensorBoardLogger

        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        if not self._warned:
            log.warning("SampleLogger: the trainer has no TensorBoardLogger; no samples are logged")
            self._warned = True
        return None

    def _load_media(self, device: torch.device) -> dict[str, MediaModality]:
        if self._media is None:
            from mmgen.pipeline.config import read_config
            from mmgen.pipeline.hub import locate
            from mmgen.pipeline.load import load_modalities

            directory = locate(self.pipeline)
            self._media = load_modalities(directory, read_config(directory), device)
            for mod in self._media.values():
                mod.eval()
        return self._media

    def _log_latents(
        self, writer: Any, kind: str, latents: Mapping[str, torch.Tensor], media: Mapping[str, MediaModality], step: int
    ) -> None:
        for name, z in latents.items():
            mod = media.get(name)
            if mod is None:
                continue
            with torch.no_grad():
                raw = self._decode(mod, z.to(mod.device).float())
            for i, x in enumerate(raw):
                tag = f"samples/{name}/{kind}/{i}"
                if mod.kind.startswith("audio"):
                    wave = np.clip(x.float().numpy(), -1.0, 1.0)
                    writer.add_audio(f"{tag}/audio", torch.from_numpy(wave)[None], step, sample_rate=int(mod.raw_rate))
                    writer.add_image(f"{tag}/mel", mel_image(wave, int(mod.raw_rate)), step, dataformats="HWC")
                elif mod.kind == "motion":
                    from mmgen.io.render import render_stick_figure

                    frames = render_stick_figure(x.float().numpy(), mod.raw_rate, size=96, out_fps=self.gif_fps)
                    add_gif(writer, f"{tag}/video", frames, self.gif_fps, step)
                else:
                    add_gif(writer, f"{tag}/video", x.to(torch.uint8).numpy(), mod.raw_rate, step)

    @staticmethod
    def _decode(mod: MediaModality, z: torch.Tensor) -> torch.Tensor:
        """Latents [B, T, ...] -> raw [B, N, ...] on the CPU (motion from the origin)."""
        if mod.kind == "motion":
            return mod.decode(z, None, None).cpu()
        if mod.kind == "video":
            return mod.decode(z, None).cpu()
        return mod.decode(z, None, generator=torch.Generator(device=mod.device).manual_seed(0)).cpu()


def mel_image(wave: np.ndarray, sample_rate: int, n_mels: int = 80) -> np.ndarray:
    """uint8 [n_mels, frames, 3]: the log-mel spectrogram, low frequencies at the bottom (magma)."""
    import librosa
    from matplotlib import colormaps

    mel = librosa.feature.melspectrogram(y=wave.astype(np.float32), sr=sample_rate, n_fft=1024, hop_length=256,
                                         n_mels=n_mels)
    db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)  # [n_mels, frames] in [-80, 0]
    rgb = colormaps["magma"]((db[::-1] + 80.0) / 80.0)[..., :3]
    return (rgb * 255).round().astype(np.uint8)


def add_gif(writer: Any, tag: str, frames: np.ndarray, fps: float, step: int) -> None:
    """Log frames [F, H, W, 3] uint8 as an animated GIF image (what `add_video` writes, without moviepy)."""
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, round(1000 / fps)), loop=0)
    h, w = frames.shape[1:3]
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=buf.getvalue())
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
