"""Contrastive audio-visual sync pre-training of `VideoSyncEncoder` (Synchformer-style InfoNCE).

Per step, B crops of T frames (the fixed front ends of the video at rate_hz and of the audio under
it, `mmgen.train.sync_data`):

    video features V [B, T, F]  (VideoSyncEncoder)      audio features A [B, T, F]  (AudioSyncEncoder)
    a window of W frames at s, and the same window shifted by k = -K..K frames, all at least
    R frames (the larger receptive radius) from the crop's ends:

        time ─────────────────────────────────────────►
        V_b      [s ........ s+W)                               anchor (shift 0)
        A_b,k        [s+k ........ s+k+W)   k = -K..K          2K+1 candidates per clip
        A_b',k   (other clips in the batch, every shift)       easy negatives

    score(V_b, A_b',k) = scale * mean_t <V_b[t], A_b',k[t]>     (per-frame cosine, averaged)
    loss = CE over all B (2K+1) candidates, target (b, k=0); and the same with audio as anchor.

The margin matters: features near a crop's end see the zero padding, so both encoders could
learn "distance from the crop's end", which matches for the true pair only: a shortcut that says
nothing about motion. Frames >= R inside do not depend on where the crop starts.

The score is a sum of per-frame similarities, so it rewards features whose frame t agrees with
the audio at the same instant: exactly what a time-aligned DiT condition needs. The shifted
windows of the same clip are the hard negatives: they share the clip's style, tempo and dancer
and differ only in *when* things happen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from mmgen.conditioning.video_sync import VideoSyncEncoder, front_features
from mmgen.train.guards import check_export
from mmgen.train.schedule import warmup_cosine_scheduler
from mmgen.train.sync_audio import AudioSyncEncoder


def shifted_windows(features: torch.Tensor, start: int, width: int, max_shift: int) -> torch.Tensor:
    """[B, T, F] -> [B, 2K+1, W, F]: windows [start + k, start + k + W) for k = -K..K."""
    lo, hi = start - max_shift, start + max_shift + width
    if lo < 0 or hi > features.shape[1]:
        raise ValueError(f"shifted_windows: frames [{lo}, {hi}) fall outside a crop of {features.shape[1]}")
    return features[:, lo:hi].unfold(1, width, 1).permute(0, 1, 3, 2)  # [B, 2K+1, W, F]


def sync_scores(anchor: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """anchor [B, W, F], candidates [B, S, W, F] -> [B, B*S] mean per-frame dot products."""
    b, s, w, f = candidates.shape
    return torch.einsum("bwf,nwf->bn", anchor, candidates.reshape(b * s, w, f)) / w


def sync_infonce(video: torch.Tensor, audio: torch.Tensor, start: int, width: int, max_shift: int, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE of video / audio features [B, T, F] (see module doc) and retrieval stats.

    Returns loss, acc_shift (own clip: the true offset wins among its 2K+1 shifts), acc_shift_1
    (within one frame), acc_clip (the true clip wins among the B clips at shift 0).
    """
    k = max_shift
    v_win, a_win = shifted_windows(video, start, width, k), shifted_windows(audio, start, width, k)
    b, s = v_win.shape[:2]
    target = torch.arange(b, device=video.device) * s + k
    v2a = sync_scores(v_win[:, k], a_win) * scale  # [B, B*S]
    a2v = sync_scores(a_win[:, k], v_win) * scale
    loss = 0.5 * (F.cross_entropy(v2a, target) + F.cross_entropy(a2v, target))
    with torch.no_grad():
        own = v2a.reshape(b, b, s)[torch.arange(b), torch.arange(b)]  # [B, S]: own clip's shifts
        best = own.argmax(dim=1)
        clip = v2a.reshape(b, b, s)[:, :, k].argmax(dim=1)
        stats = {
            "acc_shift": (best == k).float().mean(),
            "acc_shift_1": ((best - k).abs() <= 1).float().mean(),
            "acc_clip": (clip == torch.arange(b, device=video.device)).float().mean(),
        }
    return {"loss": loss, **stats}


class SyncModule(L.LightningModule):
    """Trains `encoder` (and its audio partner) by contrastive sync; exports the video encoder.

    Args:
        encoder: the VideoSyncEncoder to train (its front end is fixed; the temporal net trains).
        audio: the AudioSyncEncoder partner (default: matching rate and feature_dim, 22050 Hz).
        window_seconds: the compared window W; max_shift_frames: K (candidates k = -K..K frames).
        init_scale: initial logit scale (learned, clamped to [1, 100]).
        lr, weight_decay, warmup_steps, total_steps, min_lr_ratio: AdamW + warmup/cosine.
        gain_augment: random per-crop contrast factor in [1 / (1 + g), 1 + g] on the frames (it
            scales every frame difference) and a random gain of up to ±(6 g) dB on the audio.
        export_dir: where the trained VideoSyncEncoder is saved (save_pretrained) after fit, with
            its front-end statistics measured on every training clip (`set_front_stats`).
        audio_export_dir: where its audio partner is saved (only sync evaluation needs it).
        overwrite_export: let the exports replace folders an earlier export wrote (checked
            before the first step; a folder mmgen did not write is never replaced).
    """

    def __init__(
        self,
        encoder: VideoSyncEncoder | None = None,
        audio: AudioSyncEncoder | None = None,
        window_seconds: float = 2.0,
        max_shift_frames: int = 8,
        init_scale: float = 10.0,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        total_steps: int | None = None,
        min_lr_ratio: float = 0.05,
        gain_augment: float = 0.5,
        export_dir: str | None = None,
        audio_export_dir: str | None = None,
        overwrite_export: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "audio"])
        self.encoder = encoder or VideoSyncEncoder()
        self.audio = audio or AudioSyncEncoder(rate_hz=self.encoder.rate_hz, feature_dim=self.encoder.feature_dim)
        if self.audio.rate_hz != self.encoder.rate_hz:
            raise ValueError(f"SyncModule: audio rate {self.audio.rate_hz} Hz != video rate {self.encoder.rate_hz} Hz")
        if max_shift_frames < 1:
            raise ValueError(f"SyncModule: max_shift_frames must be >= 1, got {max_shift_frames}")
        self.width = round(window_seconds * self.encoder.rate_hz)
        if self.width < 1:
            raise ValueError(f"SyncModule: window_seconds {window_seconds} is shorter than one frame")
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.margin = max(self.encoder.receptive_radius, self.audio.receptive_radius)

    def starts(self, num_frames: int) -> range:
        """Window starts whose shifted windows stay `margin` frames inside a crop."""
        k, r = self.hparams.max_shift_frames, self.margin
        return range(r + k, num_frames - r - k - self.width + 1)

    def _check(self, batch: Mapping[str, Any]) -> int:
        """Crop length T of a batch {"diffs": [B, T-1, C], "mel": [B, n_mels, 3T]} (see sync_data)."""
        diffs, mel = batch["diffs"], batch["mel"]
        c, n_mels = self.encoder.front_channels // 2, self.audio.front.n_mels
        if diffs.ndim != 3 or diffs.shape[-1] != c or mel.ndim != 3 or mel.shape[1] != n_mels:
            raise ValueError(
                f"SyncModule: the data gives diffs {tuple(diffs.shape)} and mel {tuple(mel.shape)}; the encoders "
                f"take [B, T-1, {c}] and [B, {n_mels}, 3T] (set the data module's grid / n_mels to match)"
            )
        t = diffs.shape[1] + 1
        if mel.shape[2] != 3 * t:
            raise ValueError(f"SyncModule: {t} video frames but {mel.shape[2]} mel frames (expected {3 * t})")
        need = self.width + 2 * (self.hparams.max_shift_frames + self.margin)
        if t < need:
            raise ValueError(
                f"SyncModule: crops of {t} frames, need >= W + 2 (K + R) = {need} "
                f"({need / self.encoder.rate_hz:g} s; raise the data module's crop_seconds)"
            )
        return t

    def features(self, batch: Mapping[str, Any], augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(video [B, T, F], audio [B, T, F]) features of a batch of front-end crops."""
        t = self._check(batch)
        diffs, mel = batch["diffs"].float(), batch["mel"].float()
        if augment and self.hparams.gain_augment > 0:  # exact: both front ends are linear in these
            g, b = self.hparams.gain_augment, diffs.shape[0]
            diffs = diffs * torch.exp((torch.rand(b, 1, 1, device=diffs.device) * 2 - 1) * math.log1p(g))
            mel = mel * 10 ** ((torch.rand(b, 1, 1, device=mel.device) * 2 - 1) * 6 * g / 20)
        video = self.encoder.net(front_features(diffs, self.encoder.eps))  # [B, T, F]
        return video, self.audio.net(mel, t)

    def _step(self, batch: Mapping[str, Any], start: int, augment: bool) -> dict[str, torch.Tensor]:
        video, audio = self.features(batch, augment)
        scale = self.log_scale.clamp(0.0, math.log(100.0)).exp()
        return sync_infonce(video, audio, start, self.width, self.hparams.max_shift_frames, scale)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        starts = self.starts(self._check(batch))
        out = self._step(batch, starts[int(torch.randint(len(starts), ()))], augment=True)
        size = batch["diffs"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=size)
        self.log_dict({f"train/{n}": v for n, v in out.items() if n != "loss"}, batch_size=size)
        self.log("train/scale", self.log_scale.exp(), batch_size=size)
        return out["loss"]

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        size = batch["diffs"].shape[0]
        starts = self.starts(self._check(batch))
        outs = [self._step(batch, s, augment=False) for s in starts[:: self.width]]
        means = {n: torch.stack([o[n] for o in outs]).mean() for n in outs[0]}
        self.log_dict({f"val/{n}": v for n, v in means.items()}, batch_size=size, prog_bar=True)

    def configure_optimizers(self) -> dict[str, Any]:
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr,
        )
        total = self.hparams.total_steps or (self.trainer.max_steps if self.trainer.max_steps > 0 else 10_000)
        scheduler = warmup_cosine_scheduler(optimizer, self.hparams.warmup_steps, total, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_fit_start(self) -> None:
        """The export folders are checked before training, not after the last step."""
        hp = self.hparams
        check_export(hp.export_dir, "pretrained model", hp.overwrite_export, "--model.init_args.export_dir")
        check_export(hp.audio_export_dir, "pretrained model", hp.overwrite_export, "--model.init_args.audio_export_dir")

    def on_fit_end(self) -> None:
        """Measure the streamed front end's statistics on every training clip, then export."""
        train = getattr(getattr(self.trainer, "datamodule", None), "train_set", None)
        if train is not None and hasattr(train, "clips"):
            self.encoder.set_front_stats([c.diffs.to(self.device) for c in train.clips])
        if self.hparams.export_dir and self.trainer.is_global_zero:
            self.encoder.save_pretrained(self.hparams.export_dir, overwrite=self.hparams.overwrite_export)
        if self.hparams.audio_export_dir and self.trainer.is_global_zero:
            self.audio.save_pretrained(self.hparams.audio_export_dir, overwrite=self.hparams.overwrite_export)
