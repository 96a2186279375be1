"""The DiT training system: MoNL noise levels, the masked denoising loss, CFG dropout, EMA.

It receives a built `MultimodalDiT` (and optionally a `ConditionEncoder`); all diffusion maths is
`mmgen.diffusion` (`sample_levels`, `denoising_loss`), so what trains here is exactly what the
samplers assume. Batches come from `LatentCacheDataModule`: {"latents": {m: [B, T_m, ...]}, ...},
and, when the cache stores condition features, "features": {name: {"values", "mask"}}: those
conditioners are not run (their frozen encoders are never loaded), the rest encode raw batch values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch

from mmgen.conditioning import ConditionEncoder, Features
from mmgen.conditioning.base import TIME_AXIS_TARGETS
from mmgen.core.cond import Cond
from mmgen.core.pretrained import load_weights
from mmgen.data.cached_features import as_features, feature_fingerprint
from mmgen.diffusion.loss import denoising_loss
from mmgen.diffusion.noise_levels import MoNLConfig, NoiseLevels, sample_levels
from mmgen.diffusion.process import Process, VPCosine
from mmgen.dit.checks import warn_narrow_tokens
from mmgen.dit.masking import random_token_mask
from mmgen.dit.model import MultimodalDiT
from mmgen.dit.streams import stream_given_mask
from mmgen.train.ema import EMA
from mmgen.train.guards import LossWatch, check_export
from mmgen.train.schedule import warmup_cosine_scheduler


class DiTModule(L.LightningModule):
    """Trains a MultimodalDiT on cached latents.

    Args:
        model: the DiT.
        process: diffusion process and parameterisation (default VP-cosine, v-prediction).
        monl: mixture-of-noise-levels training sampler settings.
        condition: optional condition encoder; its raw inputs are read from the batch keys it
            declares (e.g. "caption"); rows MoNL marks `text_null` get its null embedding.
        lr, weight_decay, betas: AdamW.
        lr_scales: {parameter-name prefix: factor}: those parameters learn at lr x factor (e.g.
            `{"model.maps.": 3.0}`: a new part starting at zero catches up while the pretrained
            model keeps its learning rate); a parameter takes its longest matching prefix.
        warmup_steps, total_steps, min_lr_ratio: warmup + cosine schedule (total_steps defaults to
            the trainer's max_steps).
        ema_decay: EMA of the weights (None disables); sampling and `save_pretrained` use the EMA.
        token_mask_ratio: fraction of noisy latent frames dropped from the DiT input (MDT);
            needs a model built with `mask_decoder_depth`.
        modality_weights: per-modality factors of the loss.
        export_dir: where `save_pretrained` writes the sampling weights (EMA if any) after fit.
        condition_export_dir: where the trained condition encoder is written after fit.
        init_weights: a pretrained DiT directory (or its model.safetensors) whose weights start
            this run: fine-tuning, e.g. after a modality's VAE changed its latent rate (RoPE
            positions are in seconds, so a rate change needs no new parameters). Resuming a
            Lightning checkpoint overrides it.
        init_new: parameter-name prefixes that `init_weights` may lack or hold in another shape:
            parts this run adds to or rebuilds in the pretrained DiT (e.g. `aligned.` when a
            time-aligned stream joins; its projections start at zero, so the run starts from
            exactly the pretrained model; `in_proj.video.` when the video patch size changes).
        condition_init_weights: a trained condition encoder's folder (a `condition_export_dir`)
            whose projections start this run; without it they start from their initialisation
            even when `init_weights` brings a DiT trained with them.
        overwrite_export: let the exports replace folders an earlier export wrote (checked
            before the first step; a folder mmgen did not write is never replaced).
        nan_check_every: steps between checks that the loss stayed finite (also checked before
            every checkpoint and the export; a non-finite loss stops the run naming its step).
        group_drop: {guidance group: probability} of dropping that group's conditioners to their
            null embedding on its own, on top of `monl.p_drop_text` (which drops them all), so
            guidance per condition group (`guidance={"melody": 3, "text": 2}`) samples states the
            model has seen: melody kept while text is dropped, and so on.
    """

    def __init__(
        self,
        model: MultimodalDiT,
        process: Process | None = None,
        monl: MoNLConfig | None = None,
        condition: ConditionEncoder | None = None,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.99),
        warmup_steps: int = 200,
        total_steps: int | None = None,
        min_lr_ratio: float = 0.1,
        ema_decay: float | None = 0.999,
        token_mask_ratio: float = 0.0,
        modality_weights: Mapping[str, float] | None = None,
        export_dir: str | None = None,
        condition_export_dir: str | None = None,
        init_weights: str | None = None,
        init_new: Sequence[str] = (),
        condition_init_weights: str | None = None,
        overwrite_export: bool = False,
        nan_check_every: int = 50,
        group_drop: Mapping[str, float] | None = None,
        lr_scales: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "condition"])
        self.loss_watch = LossWatch(nan_check_every)
        if init_weights is not None:
            load_weights(model, init_weights, new=tuple(init_new))
        self.model = model
        warn_narrow_tokens(model.specs, model.d_model, model.patch_size, tuple(model.wide_heads or ()))
        self.process = process or VPCosine(prediction="v")
        self.monl = monl or MoNLConfig(segment_seconds=model.segment_seconds)
        if abs(self.monl.segment_seconds - model.segment_seconds) > 1e-9:
            raise ValueError(
                f"MoNL segment_seconds {self.monl.segment_seconds} differs from the DiT's {model.segment_seconds}"
            )
        if token_mask_ratio and model.mask_decoder_depth is None:
            raise ValueError("token_mask_ratio > 0 needs a MultimodalDiT built with mask_decoder_depth")
        self.condition = condition
        if condition_init_weights is not None:
            if condition is None:
                raise ValueError("condition_init_weights given but the DiTModule has no condition encoder")
            load_weights(condition, condition_init_weights)
        bad = {g: p for g, p in (group_drop or {}).items() if not 0.0 <= float(p) <= 1.0}
        if bad:
            raise ValueError(f"group_drop probabilities must be in [0, 1], got {bad}")
        names = [n for n, _ in self.named_parameters()]
        for prefix, factor in (lr_scales or {}).items():
            if not float(factor) > 0:
                raise ValueError(f"lr_scales[{prefix!r}] must be a positive factor, got {factor!r}")
            if not any(n.startswith(prefix) for n in names):
                raise ValueError(f"lr_scales names {prefix!r}, but no parameter starts with it (e.g. 'model.maps.')")
        self.model.check_levels = False  # no host sync per step; levels come from sample_levels
        self.ema = EMA(model, ema_decay) if ema_decay is not None else None  # a copy: checks off too

    # ----------------------------------------------------------------- steps
    def _cond(self, batch: Mapping[str, Any], levels: NoiseLevels | None) -> tuple[Cond | None, NoiseLevels | None]:
        if self.condition is None:
            return None, levels
        drop = self._drops(batch, levels.text_null) if levels is not None else None
        cached = {n: f for n, f in as_features(batch.get("features")).items() if n in self.condition.conditioners}
        if levels is not None:
            cached = self._only_where_given(batch, cached, levels)
        cond = self.condition(batch=batch, features=cached, drop=drop)
        if levels is not None:
            levels = dataclasses.replace(levels, text_null=None)  # the null rows are already in `cond`
        return cond, levels

    def _drops(self, batch: Mapping[str, Any], text_null: torch.Tensor | None) -> Any:
        """CFG dropout: every conditioner where `text_null`, and each `group_drop` group on its own."""
        group_drop = self.hparams.get("group_drop") or {}
        if not group_drop:
            return text_null
        assert self.condition is not None
        size = next(iter(batch["latents"].values())).shape[0]
        base = text_null if text_null is not None else torch.zeros(size, dtype=torch.bool, device=self.device)
        drops = {g: base for g in self.condition.groups}
        for group, p in group_drop.items():
            if group not in drops:
                raise ValueError(f"group_drop names {group!r}, not a guidance group of the condition encoder "
                                 f"{sorted(self.condition.groups)}")
            drops[group] = base | (torch.rand(size, device=self.device) < float(p))
        return drops

    def _only_where_given(
        self, batch: Mapping[str, Any], features: dict[str, Features], levels: NoiseLevels
    ) -> dict[str, Features]:
        """Time-aligned streams made from a modality (group "video": sync features of the true
        frames) are present only where that modality is given (clean) in the example: elsewhere
        they would hand the model the answer it is asked to generate. Their frames where the
        modality is noisy or absent get mask False (the learned null)."""
        assert self.condition is not None
        out = dict(features)
        for name, c in self.condition.conditioners.items():
            group = getattr(c, "group", None)
            if getattr(c, "target", None) not in TIME_AXIS_TARGETS or group not in self.model.specs:
                continue
            f = out[name] if name in out else c.encode(batch, self.device)
            f = f.to(self.device)
            if group in levels.levels:
                given = stream_given_mask(levels.levels[group], self.model.specs[group].rate_hz, f.mask.shape[1], c.rate_hz)
            else:  # the modality is absent from this batch
                given = torch.zeros_like(f.mask)
            out[name] = Features(f.values, f.mask & given)
        return out

    def _model_fn(self, levels: NoiseLevels):  # type: ignore[no-untyped-def]
        ratio = self.hparams.token_mask_ratio
        if not ratio:
            return self.model
        mask = random_token_mask(levels.levels, ratio)
        return lambda x, t, cond: self.model(x, t, cond, token_mask={m: mask[m] for m in x})

    def _loss(
        self, batch: Mapping[str, Any], model: MultimodalDiT | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Denoising loss of `model` (default: the training weights, with token masking if set)."""
        x0 = batch["latents"]
        levels = sample_levels(x0, self.model.specs, self.monl)
        cond, levels = self._cond(batch, levels)
        assert levels is not None
        return denoising_loss(
            model if model is not None else self._model_fn(levels), self.process, x0, levels, cond,
            modality_weights=self.hparams.modality_weights,
        )

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss, logs = self._loss(batch)
        self.loss_watch.observe(loss, self.global_step)
        size = next(iter(batch["latents"].values())).shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=size)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """`val/loss`: the weights that are exported and sampled with (the EMA copy when there is
        one), so checkpoints are chosen by the number of the model that ships. `val/raw/loss`: the
        training weights, comparable with `train/loss`. Both see the same levels and noise."""
        size = next(iter(batch["latents"].values())).shape[0]
        passes = {"val": self.sampling_model()}
        if self.ema is not None:
            passes["val/raw"] = None
        for prefix, model in passes.items():
            # a fixed generator per batch: validation losses are comparable across epochs and
            # passes; every stream (CUDA too) is put back, so validating does not shift training's
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(1234 + batch_idx)
                loss, logs = self._loss(batch, model)
            self.log(f"{prefix}/loss", loss, prog_bar=prefix == "val", batch_size=size, sync_dist=True)
            self.log_dict({f"{prefix}/{k}": v for k, v in logs.items()}, batch_size=size, sync_dist=True)

    def check_cached_features(self) -> None:
        """Refuse cached condition features made by other encoders than this run's conditioners."""
        cache = getattr(getattr(self.trainer, "datamodule", None), "cache", None)
        if self.condition is None or cache is None or not getattr(cache, "features", None):
            return
        cache.check_feature_fingerprints(
            {n: feature_fingerprint(c) for n, c in self.condition.conditioners.items() if n in cache.features}
        )

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then the EMA step. Not in `on_train_batch_end`: Lightning runs the
        callbacks' hooks (ModelCheckpoint) before the module's, so a checkpoint would hold the new
        weights with the EMA one update behind, and every resume would lose that update."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.model)

    # ----------------------------------------------------------- optimizers
    def configure_optimizers(self) -> dict[str, Any]:
        scales = dict(self.hparams.lr_scales or {})
        # the two unscaled groups first, always: checkpoints of runs without lr_scales resume as before
        groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
        for name, p in self.named_parameters():
            if not p.requires_grad or name.startswith("ema."):
                continue
            prefix = max((k for k in scales if name.startswith(k)), key=len, default=None)
            decays = not (p.ndim < 2 or "embed" in name)
            groups.setdefault((decays, float(scales[prefix]) if prefix else 1.0), []).append(p)
        optimizer = torch.optim.AdamW(
            [
                {"params": ps, "weight_decay": self.hparams.weight_decay if decays else 0.0, "lr": self.hparams.lr * f}
                for (decays, f), ps in groups.items()
            ],
            lr=self.hparams.lr, betas=tuple(self.hparams.betas),
        )
        total = self.hparams.total_steps or (self.trainer.max_steps if self.trainer.max_steps > 0 else 10_000)
        scheduler = warmup_cosine_scheduler(optimizer, self.hparams.warmup_steps, total, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------- export
    def sampling_model(self) -> MultimodalDiT:
        """The weights to sample with: the EMA copy when there is one."""
        return self.ema.ema if self.ema is not None else self.model  # type: ignore[return-value]

    # ------------------------------------------------------------- guards
    def on_fit_start(self) -> None:
        self.check_exports()
        self.check_cached_features()

    def check_exports(self) -> None:
        """Export folders are checked before training, not after the last step."""
        hp = self.hparams
        check_export(hp.export_dir, "pretrained model", hp.overwrite_export, "--model.init_args.export_dir")
        if self.condition is not None:
            check_export(hp.condition_export_dir, "pretrained model", hp.overwrite_export,
                         "--model.init_args.condition_export_dir")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.loss_watch.due(self.global_step):
            self.loss_watch.check()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.loss_watch.check()  # no checkpoint holds weights a NaN step has touched

    def on_fit_end(self) -> None:
        self.loss_watch.check()
        if self.hparams.export_dir and self.trainer.is_global_zero:
            model = self.sampling_model()
            model.check_levels = True  # users' calls get the input checks back
            model.save_pretrained(self.hparams.export_dir, overwrite=self.hparams.overwrite_export)
        if self.hparams.condition_export_dir and self.condition is not None and self.trainer.is_global_zero:
            self.condition.save_pretrained(self.hparams.condition_export_dir, overwrite=self.hparams.overwrite_export)
