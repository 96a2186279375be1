"""The denoising loss over per-token noise levels; the DiT LightningModule calls exactly this.

Per modality m the loss is the mean, over the tokens (latent frames) with t > 0 in the whole
batch, of w(t) * mean-over-channels(pred - target)^2, with w the process's `loss_weight`. Clean
tokens (t = 0: conditions) never enter the loss. Token-level averaging makes an example without
noisy tokens of m contribute nothing (not a zero that drags the mean down). The total is the
modality-weighted mean over the modalities that have any noisy token in the batch, so its scale
does not jump when MoNL happens to leave a modality clean everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mmgen.core.cond import Cond
from mmgen.diffusion.guidance import Latents, ModelFn
from mmgen.diffusion.noise_levels import NoiseLevels, apply_null_text
from mmgen.diffusion.process import Process


def denoising_loss(
    model_fn: ModelFn,
    process: Process,
    x0: Latents,
    levels: NoiseLevels,
    cond: Cond | None = None,
    generator: torch.Generator | None = None,
    *,
    null_cond: Cond | None = None,
    modality_weights: Mapping[str, float] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Noise x0 to `levels`, predict, and return (scalar loss, {"loss/<modality>": detached loss}).

    Args:
        x0: clean latents per modality; modalities in `levels.absent` are left out of the input.
        levels: from `noise_levels.sample_levels` (or built by hand).
        cond / null_cond: text etc.; rows with `levels.text_null` use `null_cond` (batch 1 or B).
        modality_weights: per-modality factor in the total (default 1 each).
    """
    present = list(levels.levels)
    missing = sorted(set(present) - set(x0))
    extra = sorted(set(x0) - set(present) - set(levels.absent))
    if missing or extra:
        raise ValueError(
            f"latents {sorted(x0)} do not match noise levels {sorted(present)} "
            f"(absent {sorted(levels.absent)}): missing {missing}, unexpected {extra}"
        )
    for m in present:
        if x0[m].shape[:2] != levels.levels[m].shape:
            raise ValueError(
                f"{m!r}: latents {tuple(x0[m].shape)} do not match levels {tuple(levels.levels[m].shape)}"
            )
    if cond is not None and levels.text_null is not None and null_cond is None:
        raise ValueError("noise levels drop the text for some examples, but no `null_cond` was given")
    weights = dict(modality_weights or {})
    unknown = sorted(set(weights) - set(present) - set(levels.absent))
    if unknown:
        raise ValueError(f"modality_weights name unknown modalities {unknown}")

    x_t, eps = {}, {}
    for m in sorted(present):  # fixed draw order for reproducibility with `generator`
        x = x0[m].to(torch.promote_types(x0[m].dtype, torch.float32))
        eps[m] = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_t[m] = process.add_noise(x, eps[m], levels.levels[m])
    pred = model_fn(x_t, dict(levels.levels), apply_null_text(cond, null_cond, levels.text_null))
    if set(pred) != set(present):
        raise ValueError(f"model_fn returned modalities {sorted(pred)}, expected {sorted(present)}")

    logs: dict[str, Tensor] = {}
    num: Tensor | None = None
    den: Tensor | None = None
    for m in present:
        t = levels.levels[m]  # [B, T]
        target = process.target(x0[m].to(x_t[m].dtype), eps[m], t)
        err = (pred[m].to(target.dtype) - target).square().flatten(2).mean(-1)  # [B, T]
        mask = (t > 0).to(err.dtype)
        count = mask.sum()
        loss_m = (err * process.loss_weight(t).to(err.dtype) * mask).sum() / count.clamp_min(1.0)
        logs[f"loss/{m}"] = loss_m.detach()
        w = float(weights.get(m, 1.0)) * (count > 0).to(err.dtype)
        num = w * loss_m if num is None else num + w * loss_m
        den = w if den is None else den + w
    total = num / den.clamp_min(1e-12)  # type: ignore[union-attr]
    return total, logs
