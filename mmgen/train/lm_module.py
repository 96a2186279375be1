"""Training the codebook LM baseline (`mmgen.lm`) from the DiT's latent cache.

Two systems, both fed by `LatentCacheDataModule` (batches {"latents": {m: [B, T_m, ...]}, "features": ...}):

    RVQModule: fits a `ResidualVQ` on the audio latents (k-means init, EMA, dead-code restarts,
               quantizer dropout; no optimizer) and exports it.
    LMModule:  audio latents ──frozen RVQ──► codes [B, K, T] ──CodebookLM teacher forcing──► CE;
               conditions = other modalities' latents (motion, video) and cached features
               (melody chroma, text), each dropped per example with `cond_drop` (CFG), all
               together with `cond_drop_all`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from mmgen.lm.model import CodebookLM, condition_frames
from mmgen.lm.quantizer import ResidualVQ
from mmgen.train.guards import LossWatch, check_export
from mmgen.train.schedule import warmup_cosine_scheduler

log = logging.getLogger(__name__)


def audio_frames(latents: torch.Tensor) -> torch.Tensor:
    """Audio latents [B, T, C] (or [B, T, h, w, C]) -> frames [B, T, D] the RVQ quantizes."""
    return latents.reshape(latents.shape[0], latents.shape[1], -1)


def batch_conditions(batch: Mapping[str, Any], names: tuple[str, ...], audio: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The LM's named conditions found in a cache batch: a modality's latents or a cached feature."""
    out = {}
    latents, features = batch.get("latents", {}), batch.get("features") or {}
    for name in names:
        if name == audio:
            continue
        if name in latents:
            x = condition_frames(latents[name])
            out[name] = (x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))
        elif name in features:
            f = features[name]
            out[name] = (f["values"], f["mask"])
    return out


class RVQModule(L.LightningModule):
    """Fits `quantizer` on the cache's `audio` latents; `export_dir` gets it after fit.

    The quantizer has no optimizer (k-means init, EMA codebooks), so Lightning's global step, which
    counts optimizer steps, stays 0 and `--trainer.max_steps` would never end the run: the module
    counts its batches (`fit_steps`, saved in checkpoints) and stops the trainer at max_steps.
    """

    def __init__(self, quantizer: ResidualVQ, audio: str = "audio", export_dir: str | None = None,
                 overwrite_export: bool = False, seed: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters(ignore=["quantizer"])
        self.quantizer = quantizer
        self.automatic_optimization = False
        self.generator = torch.Generator().manual_seed(seed)
        self.fit_steps = 0

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        x = audio_frames(batch["latents"][self.hparams.audio])
        stats = self.quantizer.fit_step(x, generator=self.generator)
        self.log_dict({f"train/{k}": v for k, v in stats.items()}, prog_bar=True, batch_size=x.shape[0])
        self.fit_steps += 1
        if 0 < self.trainer.max_steps <= self.fit_steps:
            self.trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rvq_fit_steps"] = self.fit_steps
        checkpoint["rvq_generator"] = self.generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.fit_steps = int(checkpoint.get("rvq_fit_steps", 0))
        if "rvq_generator" in checkpoint:
            self.generator.set_state(checkpoint["rvq_generator"])

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        x = audio_frames(batch["latents"][self.hparams.audio])
        errors = self.quantizer.round_trip(x)
        self.log_dict({f"val/rel_error_{n + 1}": e for n, e in enumerate(errors)}, batch_size=x.shape[0])

    def configure_optimizers(self) -> None:
        return None

    def on_fit_start(self) -> None:
        check_export(self.hparams.export_dir, "pretrained model", self.hparams.overwrite_export,
                     "--model.init_args.export_dir")  # fmt: skip

    def on_fit_end(self) -> None:
        if self.hparams.export_dir and self.trainer.is_global_zero:
            self.quantizer.save_pretrained(self.hparams.export_dir, overwrite=self.hparams.overwrite_export)


class LMModule(L.LightningModule):
    """Trains a CodebookLM on the codes of a frozen RVQ (`quantizer`: its pretrained folder).

    Args:
        model: the LM; its `conditions` name modalities of the cache (their latents) or cached features.
        quantizer: ResidualVQ folder (`RVQModule` export).
        audio: the modality the LM generates.
        cond_drop: per-condition, per-example drop probability (classifier-free guidance).
        cond_drop_all: probability that an example loses every condition at once.
        lr, weight_decay, warmup_steps, total_steps, min_lr_ratio: AdamW + warmup-cosine.
        export_dir: where the LM goes after fit (`save_pretrained`).
        export_best: export the weights of the validation with the lowest `val/loss` instead of the
            last ones (a small data set is memorised within a few hundred steps: ToyDance's 240
            clips drove held-out CE from 4.7 at step 250 to 8.4 at step 750).
    """

    def __init__(
        self,
        model: CodebookLM,
        quantizer: str,
        audio: str = "audio",
        cond_drop: float = 0.1,
        cond_drop_all: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        total_steps: int | None = None,
        min_lr_ratio: float = 0.1,
        export_dir: str | None = None,
        overwrite_export: bool = False,
        export_best: bool = True,
        nan_check_every: int = 50,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        for p, name in ((cond_drop, "cond_drop"), (cond_drop_all, "cond_drop_all")):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"LMModule: {name} must be in [0, 1), got {p}")
        self.model = model
        self.quantizer = ResidualVQ.from_pretrained(quantizer).requires_grad_(False)
        if (self.quantizer.num_codebooks, self.quantizer.codebook_size) != (model.num_codebooks, model.card):
            raise ValueError(
                f"LMModule: the LM is for {model.num_codebooks} codebooks of {model.card}, the quantizer {quantizer} "
                f"has {self.quantizer.num_codebooks} of {self.quantizer.codebook_size}"
            )
        self.loss_watch = LossWatch(nan_check_every)
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None  # (val/loss, step, CPU weights)

    def _drops(self, conds: Mapping[str, Any], B: int) -> dict[str, torch.Tensor]:
        every = torch.rand(B, device=self.device) < self.hparams.cond_drop_all
        return {n: every | (torch.rand(B, device=self.device) < self.hparams.cond_drop) for n in conds}

    def _loss(self, batch: Mapping[str, Any], train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        x = audio_frames(batch["latents"][self.hparams.audio])
        with torch.no_grad():
            codes = self.quantizer.encode(x)  # [B, K, T]
        conds = batch_conditions(batch, self.model.condition_names, self.hparams.audio)
        drop = self._drops(conds, x.shape[0]) if train else None
        return self.model.loss(codes, conds, drop)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss, per_book = self._loss(batch, train=True)
        self.loss_watch.observe(loss, self.global_step)
        B = batch["latents"][self.hparams.audio].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        self.log_dict({f"train/ce_{k}": v for k, v in enumerate(per_book)}, batch_size=B)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        loss, per_book = self._loss(batch, train=False)
        B = batch["latents"][self.hparams.audio].shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=B)
        self.log_dict({f"val/ce_{k}": v for k, v in enumerate(per_book)}, batch_size=B)

    def on_validation_epoch_end(self) -> None:
        loss = self.trainer.callback_metrics.get("val/loss")
        if not self.hparams.export_best or loss is None or self.trainer.sanity_checking:
            return
        if self.best is None or float(loss) < self.best[0]:
            weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            self.best = (float(loss), self.global_step, weights)

    def configure_optimizers(self) -> dict[str, Any]:
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "embed" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr, betas=(0.9, 0.95),
        )  # fmt: skip
        total = self.hparams.total_steps or (self.trainer.max_steps if self.trainer.max_steps > 0 else 10_000)
        scheduler = warmup_cosine_scheduler(optimizer, self.hparams.warmup_steps, total, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_fit_start(self) -> None:
        check_export(self.hparams.export_dir, "pretrained model", self.hparams.overwrite_export,
                     "--model.init_args.export_dir")  # fmt: skip

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.loss_watch.due(self.global_step):
            self.loss_watch.check()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.loss_watch.check()
        if self.best is not None:  # a resumed run still exports the best validation of the whole run
            checkpoint["lm_best"] = {"loss": self.best[0], "step": self.best[1], "weights": self.best[2]}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        best = checkpoint.get("lm_best")
        if best is not None:
            self.best = (float(best["loss"]), int(best["step"]), best["weights"])

    def on_fit_end(self) -> None:
        self.loss_watch.check()
        if self.hparams.export_dir and self.trainer.is_global_zero:
            if self.best is not None:  # the best validation's weights; the run's last stay in its checkpoints
                log.info("LMModule: exporting step %d (val/loss %.4f)", self.best[1], self.best[0])
                self.model.load_state_dict(self.best[2])
            self.model.save_pretrained(self.hparams.export_dir, overwrite=self.hparams.overwrite_export)
