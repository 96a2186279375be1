"""CLIP image features of video frames: the X-to-audio condition of Make-An-Audio (video -> sound).

    frames uint8 [B, T, H, W, 3] ──pick T' evenly spaced──► resize short side (bicubic) + centre crop
        ──► CLIP mean/std ──► frozen image tower ──► [B, T', F] L2-normalised   (cacheable)
        ──► Linear(F, dim) ──► context tokens [B, T', dim], one per frame

The frame tokens carry no time position of their own in the cross-attention; their order is the
frames' order. Pick `frames_per_clip` so every clip yields the same count (e.g. 4 per second
times the clip length), or leave it None to use every given frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmgen.conditioning.base import Features, get_values
from mmgen.conditioning.text import _OpenCLIPBase, no_autocast


def clip_preprocess(frames: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """[N, H, W, 3] uint8 (or float in [0, 1]) -> [N, 3, size, size] normalised, like open_clip's
    default transform (shortest side to `size` with bicubic, centre crop, mean/std)."""
    x = frames.permute(0, 3, 1, 2).float()  # [N, 3, H, W]
    if frames.dtype == torch.uint8:
        x = x / 255.0
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    if (h, w) != (size, size):
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
        x = F.interpolate(x, size=new, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
        x = x[:, :, top : top + size, left : left + size]  # [N, 3, size, size]
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


class CLIPImageConditioner(_OpenCLIPBase):
    """Context tokens from CLIP image embeddings of a clip's frames.

    Args:
        dim: output width; model / pretrained: open_clip identifiers.
        key: batch key of the frames, uint8 [B, T, H, W, 3] (the video modality's layout).
        frames_per_clip: evenly spaced frames to embed per clip (None: all of them).
        feature_dim: CLIP embedding width (read from the open_clip config when None).
        target: "context" (a token per frame) or "global" (their mean, AdaLN).
    """

    def __init__(
        self,
        dim: int,
        model: str = "ViT-B-32",
        pretrained: str | None = "laion2b_s34b_b79k",
        key: str = "frames",
        frames_per_clip: int | None = None,
        feature_dim: int | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(dim, model, pretrained, feature_dim, target)
        if frames_per_clip is not None and frames_per_clip <= 0:
            raise ValueError(f"CLIPImageConditioner: frames_per_clip must be positive, got {frames_per_clip}")
        self.key, self.frames_per_clip = key, frames_per_clip

    @torch.no_grad()
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        device = device or self.device
        frames = get_values(batch, self.key, type(self).__name__)
        frames = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(
                f"CLIPImageConditioner: batch[{self.key!r}] must be [B, T, H, W, 3], got {tuple(frames.shape)}"
            )
        b, t = frames.shape[:2]
        if self.frames_per_clip is not None:
            idx = torch.linspace(0, t - 1, self.frames_per_clip).round().long()
            frames = frames[:, idx]  # [B, T', H, W, 3]
        clip, _ = self._clip(device)
        import open_clip

        cfg = open_clip.get_model_preprocess_cfg(clip)
        size = cfg["size"][0] if isinstance(cfg["size"], (tuple, list)) else int(cfg["size"])
        mean = torch.tensor(cfg["mean"], device=device)
        std = torch.tensor(cfg["std"], device=device)
        n = frames.shape[1]
        x = clip_preprocess(
            frames.reshape(b * n, *frames.shape[2:]).to(device), size, mean, std
        )  # [B*T', 3, S, S]
        with no_autocast(device):
            emb = clip.encode_image(x, normalize=True).float()  # [B*T', F]
        return Features(emb.reshape(b, n, -1), torch.ones(b, n, dtype=torch.bool, device=device))
