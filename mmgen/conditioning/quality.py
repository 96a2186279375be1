"""Quality conditioning (QA-MDT): train on mixed-quality data, ask for the best at inference.

A quality score per clip (e.g. a predicted MOS in [1, 5]) is quantised into `num_levels` levels
and used twice, as in QA-MDT:
  * as text: `quality_caption("a house dance", 4.6)` -> "high quality, a house dance", so a text
    encoder sees it (the prefix words follow the level: low / medium / high);
  * as a learned token prepended to the DiT sequence (`QualityConditioner`, prefix [B, 1, dim]).
At inference pass the top level (and the "high quality" caption prefix).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mmgen.conditioning.base import Conditioner, Features, as_float_tensor, get_values


def quality_level(
    score: torch.Tensor | float, min_score: float = 1.0, max_score: float = 5.0, num_levels: int = 5
) -> torch.Tensor:
    """Score -> level in {0, ..., num_levels - 1}: equal-width bins over [min_score, max_score]."""
    if not max_score > min_score or num_levels < 2:
        raise ValueError(
            f"need max_score > min_score and num_levels >= 2, got {min_score}, {max_score}, {num_levels}"
        )
    s = torch.as_tensor(score, dtype=torch.float32)
    u = (s.clamp(min_score, max_score) - min_score) / (max_score - min_score)  # [0, 1]
    return torch.clamp((u * num_levels).floor().long(), max=num_levels - 1)


def quality_words(level: int, num_levels: int = 5) -> str:
    """The caption prefix of a level: the bottom 40 % -> "low quality", top 40 % -> "high quality"."""
    frac = (level + 0.5) / num_levels
    return "low quality" if frac < 0.4 else "high quality" if frac > 0.6 else "medium quality"


def quality_caption(
    caption: str, score: float, min_score: float = 1.0, max_score: float = 5.0, num_levels: int = 5
) -> str:
    """ "high quality, <caption>" style text with the words of the score's level."""
    level = int(quality_level(score, min_score, max_score, num_levels))
    return f"{quality_words(level, num_levels)}, {caption}" if caption else quality_words(level, num_levels)


class QualityConditioner(Conditioner):
    """One learned prefix token per quality level.

    Args:
        dim: output width (the DiT's prefix_dim).
        num_levels, min_score, max_score: quantisation of the score (see `quality_level`).
        key: batch key of the scores (one number per example).
        target: "prefix" (one learned token per level) or "global" (that token, AdaLN).
    """

    target = "prefix"

    def __init__(
        self,
        dim: int,
        num_levels: int = 5,
        min_score: float = 1.0,
        max_score: float = 5.0,
        key: str = "quality",
        target: str | None = None,
    ) -> None:
        super().__init__(dim, num_null_tokens=1, target=target)
        quality_level(min_score, min_score, max_score, num_levels)  # validates the settings
        self.num_levels, self.min_score, self.max_score, self.key = num_levels, min_score, max_score, key
        self.embed = nn.Embedding(num_levels, dim)
        nn.init.normal_(self.embed.weight, std=0.02)

    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        device = device or self.device
        scores = as_float_tensor(
            get_values(batch, self.key, "QualityConditioner"), "QualityConditioner scores", device
        )
        level = quality_level(scores, self.min_score, self.max_score, self.num_levels).float()  # [B]
        return Features(level[:, None, None], torch.ones(level.shape[0], 1, dtype=torch.bool, device=device))

    def project(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed(features.values[..., 0].long()), features.mask  # [B, 1, dim]
