"""The autoencoder training system: any `Objective`, with an optional GAN by manual optimization.

Per step: the generator (VAE / vocoder) is updated on the objective's weighted total; then, once
`disc_start_step` is reached, the discriminator on the detached reconstruction (hinge or LSGAN
as the objective's loss says). Every named term is logged as `train/<name>` (discriminator terms
as `train/disc/<name>`). At the end of `fit` the model's `LatentStats` are measured on training
batches and, with `export_dir`, the model is written with `save_pretrained`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch

from mmgen.core.pretrained import load_weights
from mmgen.train.guards import LossWatch, check_export
from mmgen.train.objectives import Objective
from mmgen.train.schedule import warmup_cosine_scheduler

log = logging.getLogger(__name__)


class VAEModule(L.LightningModule):
    """Trains `objective.model` (and `objective.discriminator` when present).

    Args:
        objective: the model, its losses and discriminator (`mmgen.train.objectives`).
        lr, disc_lr, betas, weight_decay: AdamW for generator / discriminator (disc_lr = lr if None).
        warmup_steps, total_steps, min_lr_ratio: generator LR schedule (total defaults to max_steps).
        max_grad_norm: clip the generator's gradient norm (None disables).
        disc_start_step: generator steps before the adversarial terms switch on.
        export_dir: where `save_pretrained` writes the trained model after fit.
        stats_batches: training batches used to measure LatentStats after fit (0 keeps the stats), and
            the input normalisation some objectives fit before the first step (at least one batch).
        init_weights: a pretrained directory (or its model.safetensors) of the model to start from;
            its input normalisation comes with it and is not measured again.
        freeze: names of the model's submodules that do not train (e.g. ["encoder"]).
        overwrite_export: let the export replace a folder an earlier export wrote (checked before
            the first step; a folder mmgen did not write is never replaced).
        nan_check_every: steps between checks that the loss stayed finite (also checked before
            every checkpoint and the export; a non-finite loss stops the run naming its step).

    Fine-tuning only the decoder (`init_weights` + `freeze: [encoder]` + `stats_batches: 0`) keeps
    every latent the same, so latent caches and a DiT trained on them stay valid.
    """

    def __init__(
        self,
        objective: Objective,
        lr: float = 3e-4,
        disc_lr: float | None = None,
        betas: tuple[float, float] = (0.8, 0.99),
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        total_steps: int | None = None,
        min_lr_ratio: float = 0.1,
        max_grad_norm: float | None = 1.0,
        disc_start_step: int = 0,
        export_dir: str | None = None,
        stats_batches: int = 32,
        init_weights: str | None = None,
        freeze: Sequence[str] = (),
        overwrite_export: bool = False,
        nan_check_every: int = 50,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["objective"])
        self.loss_watch = LossWatch(nan_check_every)
        if init_weights is not None:
            load_weights(objective.model, init_weights)
        submodules = dict(objective.model.named_modules())
        for name in freeze:
            if not name or name not in submodules:
                children = [n for n, _ in objective.model.named_children()]
                raise ValueError(f"freeze: {type(objective.model).__name__} has no submodule {name!r} (it has {children})")
            submodules[name].requires_grad_(False)
        self.objective = objective
        self.automatic_optimization = False

    @property
    def has_discriminator(self) -> bool:
        return self.objective.discriminator is not None

    def on_train_start(self) -> None:
        """Input normalisation (e.g. the motion codec) from training batches, before the first step."""
        hp = self.hparams
        if hp.init_weights is not None or self.trainer.ckpt_path is not None:
            return  # the pretrained model or the resumed checkpoint brought its normalisation
        batches = (self.transfer_batch_to_device(b, self.device, 0)
                   for i, b in zip(range(max(hp.stats_batches, 1)), self.trainer.train_dataloader))
        self.objective.fit_data_stats(batches)

    def _adversarial_on(self) -> bool:
        return self.has_discriminator and self.global_step >= self.hparams.disc_start_step

    def _batch_size(self, batch: Mapping[str, Any]) -> int:
        return len(batch["id"]) if "id" in batch else 1

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        opts = self.optimizers()
        opt_g, opt_d = (opts[0], opts[1]) if isinstance(opts, list) else (opts, None)
        adversarial = self._adversarial_on()
        disc = self.objective.discriminator
        if disc is not None:
            disc.requires_grad_(False)  # the generator step leaves the discriminator alone
        try:
            losses, fake, real = self.objective.generator_losses(batch, adversarial)
            self.loss_watch.observe(losses["loss"], self.global_step)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(losses["loss"])
        finally:
            if disc is not None:
                disc.requires_grad_(True)
        if self.hparams.max_grad_norm is not None:
            losses["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.objective.generator_parameters(), self.hparams.max_grad_norm)
        opt_g.step()
        self.lr_schedulers().step()  # type: ignore[union-attr]
        size = self._batch_size(batch)
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=size)
        if adversarial and opt_d is not None and fake is not None and real is not None:
            d_losses = self.objective.discriminator_losses(fake.detach(), real)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_losses["loss"])
            opt_d.step()
            self.log_dict({f"train/disc/{k}": v for k, v in d_losses.items()}, batch_size=size)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        # the same posterior samples every validation; every stream is put back afterwards
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(1234 + batch_idx)
            losses, _, _ = self.objective.generator_losses(batch, adversarial=False)
        size = self._batch_size(batch)
        self.log("val/loss", losses["loss"], prog_bar=True, batch_size=size, sync_dist=True)
        self.log_dict({f"val/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=size, sync_dist=True)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        gen = torch.optim.AdamW(self.objective.generator_parameters(), lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        total = hp.total_steps or (self.trainer.max_steps if self.trainer.max_steps > 0 else 10_000)
        schedule = {"scheduler": warmup_cosine_scheduler(gen, hp.warmup_steps, total, hp.min_lr_ratio), "interval": "step"}
        if not self.has_discriminator:
            return [gen], [schedule]
        disc = torch.optim.AdamW(self.objective.discriminator.parameters(), lr=hp.disc_lr or hp.lr, betas=tuple(hp.betas))
        return [gen, disc], [schedule]

    # ----------------------------------------------------------------- export
    @torch.no_grad()
    def fit_latent_stats(self, batches: Any) -> None:
        """Measure the model's LatentStats on posterior means of `batches` (skipped for non-VAEs)."""
        stats = getattr(self.objective.model, "latent_stats", None)
        if stats is None or self.hparams.stats_batches <= 0:
            return
        was_training = self.objective.training
        self.objective.eval()
        device = self.device

        def means() -> Any:
            for i, batch in enumerate(batches):
                if i >= self.hparams.stats_batches:
                    break
                batch = self.transfer_batch_to_device(batch, device, 0)
                z = self.objective.latents(batch)
                if z is not None:
                    yield z
        try:
            stats.fit(means())
        finally:
            self.objective.train(was_training)
        log.info("latent stats: mean |mu| %.3f, std range %.3f-%.3f",
                 float(stats.mean.abs().mean()), float(stats.std.min()), float(stats.std.max()))

    # ----------------------------------------------------------------- guards
    def on_fit_start(self) -> None:
        self.check_exports()

    def check_exports(self) -> None:
        """The export folder is checked before training, not after the last step."""
        hp = self.hparams
        check_export(hp.export_dir, "pretrained model", hp.overwrite_export, "--model.init_args.export_dir")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.loss_watch.due(self.global_step):
            self.loss_watch.check()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.loss_watch.check()  # no checkpoint holds weights a NaN step has touched

    def on_fit_end(self) -> None:
        self.loss_watch.check()
        self.fit_latent_stats(self.trainer.train_dataloader)
        if self.hparams.export_dir and self.trainer.is_global_zero:
            self.objective.model.save_pretrained(self.hparams.export_dir, overwrite=self.hparams.overwrite_export)
            log.info("exported %s to %s", type(self.objective.model).__name__, self.hparams.export_dir)
