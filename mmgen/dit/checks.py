"""Input checks of `MultimodalDiT.forward`: clear ValueErrors that say what is wrong and where.

Shape checks are free. Value checks (levels in [0, 1], constant within a segment) read tensor
values and cost one host sync; they run only when the model's `check_levels` is on.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping

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
    dims: dict[str, int | None],
) -> int:
    """Validate shapes and keys; return the batch size. `dims`: the model's width of each Cond field."""
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
    _check_cond(cond, batch, dims)
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


_TAKES = {
    "context": "cross-attends",
    "prefix": "takes prefix tokens",
    "pooled": "takes a global condition",
    "aligned": "takes a time-aligned stream",
    "maps": "takes pose maps",
}


def _check_cond(cond: Cond | None, batch: int, dims: dict[str, int | None]) -> None:
    if cond is not None and not isinstance(cond, Cond):
        raise TypeError(
            f"MultimodalDiT: cond must be a Cond, got {type(cond).__name__} (a GroupedCond is for the samplers)"
        )
    for name, takes in _TAKES.items():
        tokens, dim = (getattr(cond, name) if cond is not None else None), dims.get(name)
        if tokens is not None and dim is None:
            raise ValueError(f"MultimodalDiT: cond.{name} given but the model has no {name} input")
        if tokens is None and dim is not None:
            raise ValueError(f"MultimodalDiT: the model {takes} (width {dim}) but cond.{name} is missing")
        if tokens is not None and tokens.shape[-1] != dim:
            raise ValueError(
                f"MultimodalDiT: cond.{name} has width {tokens.shape[-1]}, the model expects {dim}"
            )
    if cond is not None and cond.aligned is not None and cond.aligned.shape[1] < 1:
        raise ValueError("MultimodalDiT: cond.aligned has no frames")
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


def check_config(
    specs: dict[str, ModalitySpec],
    d_model: int,
    depth: int,
    num_heads: int,
    segment_seconds: float,
    patch_size: int,
    adaln: str,
    sola_rank: int,
    mask_decoder_depth: int | None,
    pooled_dim: int | None = None,
    aligned_dim: int | None = None,
    aligned_rate_hz: float | None = None,
    aligned_targets: list[str] | tuple[str, ...] | None = None,
    map_channels: int | None = None,
    map_size: int | None = None,
) -> tuple[str, ...]:
    """Validate the constructor settings; return the aligned target modalities in model order."""
    if not specs:
        raise ValueError("MultimodalDiT: modalities must name at least one modality")
    for name in specs:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"MultimodalDiT: modality names must be non-empty strings without '.', got {name!r}"
            )
    if depth < 1 or num_heads < 1 or d_model % num_heads:
        raise ValueError(
            f"MultimodalDiT: need depth >= 1 and d_model divisible by num_heads, got {depth}, {d_model}, {num_heads}"
        )
    if patch_size < 1 or segment_seconds <= 0:
        raise ValueError(
            f"MultimodalDiT: need patch_size >= 1 and segment_seconds > 0, got {patch_size}, {segment_seconds}"
        )
    if adaln not in ("block", "sola") or sola_rank < 1:
        raise ValueError(
            f"MultimodalDiT: adaln must be 'block' or 'sola' with sola_rank >= 1, got {adaln!r}, {sola_rank}"
        )
    if mask_decoder_depth is not None and not 0 <= mask_decoder_depth <= depth:
        raise ValueError(
            f"MultimodalDiT: mask_decoder_depth must be None or in [0, depth={depth}], got {mask_decoder_depth}"
        )
    if (map_channels is None) != (map_size is None) or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (map_channels, map_size) if v is not None
    ):
        raise ValueError(
            f"MultimodalDiT: map_channels and map_size go together, positive ints, got {map_channels!r}, {map_size!r}"
        )
    return _check_conditions(specs, pooled_dim, aligned_dim, aligned_rate_hz, aligned_targets, map_channels is not None)


def map_target_of(specs: Mapping[str, ModalitySpec], target: str | None) -> str:
    """The video modality that receives the map input: `target`, or the one video modality."""
    videos = [n for n, s in specs.items() if s.spatial is not None]
    if target is None and len(videos) == 1:
        return videos[0]
    if target is None or target not in videos:
        raise ValueError(
            f"MultimodalDiT: map_target must name one of the video modalities {videos}, got {target!r}"
        )
    return target


def token_dim(spec: ModalitySpec, patch_size: int) -> int:
    """Numbers in one token of a modality: its channels, times p x p for a video patch."""
    return spec.channels * (patch_size**2 if spec.spatial is not None else 1)


def wider_than_model(specs: Mapping[str, ModalitySpec], d_model: int, patch_size: int) -> dict[str, int]:
    """{modality: numbers per token} of the modalities whose tokens hold more than d_model numbers."""
    return {n: dim for n, s in specs.items() if (dim := token_dim(s, patch_size)) > d_model}


def warn_narrow_tokens(
    specs: Mapping[str, ModalitySpec], d_model: int, patch_size: int, wide_heads: Collection[str] = ()
) -> None:
    """Warn when a token holds more numbers than the model is wide and has no wide head. A linear
    output projection then spans only d_model of them, and in the rest the sampler carries the
    starting noise to the end (with v or eps prediction those directions are never predicted):
    the ToyDance DiT with patch 4 (192 numbers per video token, d_model 128) made video that
    flickered frame to frame until it got a wide head. Called when training starts (DiTModule),
    where the setting can still be changed."""
    for name, numbers in wider_than_model(specs, d_model, patch_size).items():
        if name not in wide_heads:
            warnings.warn(
                f"MultimodalDiT: a {name!r} token holds {numbers} numbers but d_model is {d_model}: sampling "
                f"cannot remove noise in {numbers - d_model} of them; use a smaller patch_size, d_model >= "
                f"{numbers} or wide_heads=True",
                stacklevel=2,
            )


def _check_conditions(
    specs: dict[str, ModalitySpec],
    pooled_dim: int | None,
    aligned_dim: int | None,
    aligned_rate_hz: float | None,
    aligned_targets: list[str] | tuple[str, ...] | None,
    maps: bool = False,
) -> tuple[str, ...]:
    """Validate the global / aligned settings; return the aligned target modalities in model order.
    The map input (`maps`) runs at aligned_rate_hz too, with or without an aligned stream."""
    for name, dim in (("pooled_dim", pooled_dim), ("aligned_dim", aligned_dim)):
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ValueError(f"MultimodalDiT: {name} must be None or a positive int, got {dim!r}")
    if aligned_dim is None:
        if aligned_targets is not None or (aligned_rate_hz is not None and not maps):
            raise ValueError("MultimodalDiT: aligned_rate_hz / aligned_targets given without aligned_dim")
        if not maps:
            return ()
    if aligned_rate_hz is None or not (
        isinstance(aligned_rate_hz, (int, float)) and 0 < aligned_rate_hz < float("inf")
    ):
        raise ValueError(
            f"MultimodalDiT: aligned_dim (and map_channels) needs aligned_rate_hz, a positive frame rate of the stream, "
            f"got {aligned_rate_hz!r}"
        )
    if aligned_dim is None:
        return ()
    targets = list(specs) if aligned_targets is None else list(aligned_targets)
    unknown = sorted(set(targets) - set(specs))
    if unknown or not targets or len(set(targets)) != len(targets):
        raise ValueError(
            f"MultimodalDiT: aligned_targets must name distinct modalities of {list(specs)}, got {aligned_targets!r}"
        )
    return tuple(n for n in specs if n in targets)
