"""Input checks of `MultimodalDiT.forward`: clear ValueErrors that say what is wrong and where.

Shape checks are free. Value checks (levels in [0, 1], constant within a segment) read tensor
values and cost one host sync; they run only when the model's `check_levels` is on.
"""

from __future__ import annotations

import torch

from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec
from mmgen.dit.tokens import TokenLayout


def check_inputs(
    specs: dict[str, ModalitySpec],
    x: dict[str, torch.Tensor],
    t: dict[str, torch.Tensor],
    cond: Cond | None,
    token_mask: dict[str, torch.Tensor] | None,
    context_dim: int | None,
    prefix_dim: int | None,
) -> int:
    """Validate shapes and keys; return the batch size."""
    if not isinstance(x, dict) or not x:
        raise ValueError("MultimodalDiT: x must be a non-empty dict {modality: latents}")
    unknown = sorted(set(x) - set(specs))
    if unknown:
        raise ValueError(f"MultimodalDiT: unknown modality {unknown} in x; the model knows {list(specs)}")
    if set(t) != set(x):
        raise ValueError(
            f"MultimodalDiT: x and t must have the same keys, got x {sorted(x)} and t {sorted(t)}"
        )
    batch = None
    for name, z in x.items():
        spec = specs[name]
        layout = "[B, T, C]" if spec.spatial is None else "[B, T, h, w, C]"
        if z.ndim != spec.latent_rank:
            raise ValueError(
                f"MultimodalDiT: x[{name!r}] must be {layout} (rank {spec.latent_rank}), got shape {tuple(z.shape)}"
            )
        if z.shape[-1] != spec.channels:
            raise ValueError(
                f"MultimodalDiT: x[{name!r}] has {z.shape[-1]} channels, the model expects {spec.channels}"
            )
        if spec.spatial is not None and tuple(z.shape[2:4]) != spec.spatial:
            raise ValueError(
                f"MultimodalDiT: x[{name!r}] frames are {tuple(z.shape[2:4])}, the model expects {spec.spatial}"
            )
        if z.shape[1] < 1:
            raise ValueError(f"MultimodalDiT: x[{name!r}] has no frames")
        if batch is None:
            batch = z.shape[0]
        elif z.shape[0] != batch:
            raise ValueError(
                f"MultimodalDiT: x[{name!r}] has batch size {z.shape[0]}, other modalities have {batch}"
            )
        if tuple(t[name].shape) != tuple(z.shape[:2]):
            raise ValueError(
                f"MultimodalDiT: t[{name!r}] must be [B, T] = {tuple(z.shape[:2])}, got {tuple(t[name].shape)}"
            )
        if not t[name].is_floating_point():
            raise ValueError(f"MultimodalDiT: t[{name!r}] must be a float tensor, got {t[name].dtype}")
    assert batch is not None
    _check_cond(cond, batch, context_dim, prefix_dim)
    if token_mask is not None:
        for name, m in token_mask.items():
            if name not in x:
                raise ValueError(
                    f"MultimodalDiT: token_mask[{name!r}] names a modality missing from x {sorted(x)}"
                )
            if m.dtype != torch.bool or tuple(m.shape) != tuple(x[name].shape[:2]):
                raise ValueError(
                    f"MultimodalDiT: token_mask[{name!r}] must be bool [B, T] = {tuple(x[name].shape[:2])}, "
                    f"got {m.dtype} {tuple(m.shape)}"
                )
    return batch


def _check_cond(cond: Cond | None, batch: int, context_dim: int | None, prefix_dim: int | None) -> None:
    context = cond.context if cond is not None else None
    prefix = cond.prefix if cond is not None else None
    for name, tokens, dim, takes in (
        ("context", context, context_dim, "cross-attends"),
        ("prefix", prefix, prefix_dim, "takes prefix tokens"),
    ):
        if tokens is not None and dim is None:
            raise ValueError(f"MultimodalDiT: cond.{name} given but the model has no {name} input ({name}_dim=None)")
        if tokens is None and dim is not None:
            raise ValueError(f"MultimodalDiT: the model {takes} ({name}_dim={dim}) but cond.{name} is missing")
        if tokens is not None and tokens.shape[-1] != dim:
            raise ValueError(f"MultimodalDiT: cond.{name} has width {tokens.shape[-1]}, the model expects {dim}")
    if cond is not None and cond.batch_size is not None and cond.batch_size != batch:
        raise ValueError(f"MultimodalDiT: cond has batch size {cond.batch_size}, the latents have {batch}")


def check_level_values(t: dict[str, torch.Tensor], layout: TokenLayout) -> None:
    """Levels in [0, 1] and constant within each (modality, segment); one host sync for all modalities."""
    flags = []
    for name in layout.names:
        levels = t[name]
        rows = levels[:, layout.segment_start[name]]  # [B, S]
        flags.append(
            torch.stack(
                [
                    ((levels < 0) | (levels > 1) | levels.isnan()).any(),
                    (rows[:, layout.frame_row[name]] != levels).any(),
                ]
            )
        )
    bad = torch.stack(flags).tolist()
    for name, (out_of_range, varies) in zip(layout.names, bad):
        if out_of_range:
            raise ValueError(f"MultimodalDiT: t[{name!r}] has values outside [0, 1]")
        if varies:
            raise ValueError(
                f"MultimodalDiT: t[{name!r}] varies within a segment; noise levels must be constant per "
                f"(modality, segment) (see mmgen.core.timeline.segment_ids)"
            )
