"""Masked-token training (MDT / QA-MDT): drop latent frames from the transformer input.

The variant implemented here, the simplest that is correct for every block:

    tokens   p  a0 a1 a2 a3 a4 v0 v0 v0 v0 v1 v1 v1 v1     token_mask: a2, a3 and v1 dropped
    keep     1  1  1  0  0  1  1  1  1  1  0  0  0  0
    encoder  p  a0 a1 a4 v0 v0 v0 v0                      blocks[:depth - k] see K = 8 kept tokens
    restore  p  a0 a1 M  M  a4 v0 v0 v0 v0 M  M  M  M      M = learned mask token + modality embedding
    decoder  every position                                the last k = mask_decoder_depth blocks
    final    every position -> outputs of the full shape

Dropping is per latent frame (all patches of a video frame go together); every example keeps
the same number of tokens, so the kept tokens are one [B, K] gather, with no padding. Kept
tokens keep their own time position (RoPE) and noise-level row, and the positions of dropped
tokens are known to the decoder through RoPE. Loss is taken on all positions as usual (tokens
with t > 0), so the decoder learns to fill in the dropped ones from context.
"""

from __future__ import annotations

import torch

from mmgen.dit.blocks import gather_rows
from mmgen.dit.tokens import TokenLayout


def random_token_mask(
    t: dict[str, torch.Tensor], ratio: float, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Draw a token mask for training: {modality: [B, T_m] bool}, True = keep.

    Every example drops exactly floor(ratio * T_m) frames of each modality (so all examples keep
    the same number of tokens), chosen at random among its NOISY frames (t > 0) first; clean
    (given) frames are dropped only if an example has fewer noisy frames than that. No host sync.

    Args:
        t: noise levels {modality: [B, T_m]} of the training batch.
        ratio: fraction of frames to drop per modality, in [0, 1).
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"random_token_mask: ratio must be in [0, 1), got {ratio}")
    masks = {}
    for name, levels in t.items():
        if levels.ndim != 2:
            raise ValueError(
                f"random_token_mask: t[{name!r}] must be [B, T], got shape {tuple(levels.shape)}"
            )
        n_drop = int(ratio * levels.shape[1])
        score = torch.rand(levels.shape, generator=generator, device=levels.device)
        score = score + (levels <= 0).to(score.dtype)  # clean frames rank after every noisy one
        drop = score.argsort(dim=1)[:, :n_drop]  # [B, n_drop]
        keep = torch.ones(levels.shape, dtype=torch.bool, device=levels.device)
        masks[name] = keep.scatter(1, drop, False)
    return masks


def kept_token_index(
    layout: TokenLayout, token_mask: dict[str, torch.Tensor], batch_size: int
) -> torch.Tensor:
    """Positions of the kept tokens in the full sequence, ascending: [B, K].

    One host sync (K must be a Python int) which also checks every example keeps the same count.
    """
    parts = [torch.ones(batch_size, layout.num_prefix, dtype=torch.bool, device=layout.device)]
    for name in layout.names:
        frames = layout.frame[layout.slices[name]]  # [N_m] frame of each token
        if name in token_mask:
            parts.append(token_mask[name][:, frames])  # [B, N_m]
        else:
            parts.append(torch.ones(batch_size, frames.numel(), dtype=torch.bool, device=layout.device))
    keep = torch.cat(parts, dim=1)  # [B, N]
    counts = keep.sum(dim=1)
    low, high = torch.stack([counts.min(), counts.max()]).tolist()
    if low != high:
        raise ValueError(
            f"token_mask must keep the same number of tokens in every example, got {low} to {high}"
        )
    if low == 0:
        raise ValueError("token_mask drops every token")
    # stable sort puts kept positions (key 0) first, in their original order
    return torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)[:, :low]  # [B, K]


def restore_tokens(kept: torch.Tensor, index: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Scatter kept tokens [B, K, D] back to their positions `index` [B, K] in `fill` [B, N, D]."""
    return fill.scatter(1, index[..., None].expand(-1, -1, kept.shape[-1]), kept.to(fill.dtype))


def take_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[B, N, D] and index [B, K] -> [B, K, D]."""
    return gather_rows(x, index)
