"""The DiT's map input: a stream of pictures (pose maps), read per video patch, a pose guider.

    Cond.maps [B, S, C * s * s] at aligned_rate_hz, maps_mask [B, S]
        ──the q = aligned_rate_hz / video rate maps under each video latent frame, stacked──►
        [B * T, q * C, s, s] ──conv net shared over positions: pixel-unshuffle 2x2 (when s > h), 3x3 conv,
        stride-2 4x4 convs down to the latent's side h, SiLU after each──► [B, T, h, h, width]
        ──patchify like the video──►
        [B, T, P, p * p * width] ──Linear (zero at init)──► [B, T, P, D]
        latent frames with no present map under them: a learned null per patch (zero at init)
        ──► added to the video tokens of the same seconds
    and the same per-patch features (zero where no map is present) beside the final hidden state:
        head([h ; features]) (a WideTokenHead, zero at init) ──► added to the video prediction

Why a conv net: what a video patch should show is decided by the maps' pixels over the same
place, and the same rule holds at every place; a net shared over positions learns it once
(mmgen.conditioning.pose_map has the probe). Why also at the output: added at the input only,
the maps reach the prediction through every block; beside the final hidden state they are one
MLP away from it, as in the probe. (The shipped run has both; the runs that compared them trained
on misaligned maps, so docs/experiments.md does not credit either alone.) Starting at zero, the
map input joins a trained DiT as an exact no-op (`init_new: [maps.]`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmgen.core.timeline import ModalitySpec
from mmgen.dit.checks import token_dim
from mmgen.dit.tokens import patchify
from mmgen.dit.wide_heads import WideTokenHead


class MapStream(nn.Module):
    """Pose maps [C, size, size] at `rate_hz` -> an addition per patch of the `target` video's tokens.

    Args:
        channels, size: C and s of the maps (Cond.maps is [B, S, C * s * s]).
        rate_hz: frames per second of Cond.maps (the DiT's aligned_rate_hz).
        target: the video modality that receives it; spec: its ModalitySpec.
        patch_size: the DiT's video patch; d_model: the DiT's width.
        width: channels of the conv net.
    """

    def __init__(
        self,
        channels: int,
        size: int,
        rate_hz: float,
        target: str,
        spec: ModalitySpec,
        patch_size: int,
        d_model: int,
        width: int = 32,
    ) -> None:
        super().__init__()
        if spec.spatial is None:
            raise ValueError(f"MultimodalDiT: map_target {target!r} is not a video modality")
        h, w = spec.spatial
        q = rate_hz / spec.rate_hz
        steps = math.log2(size / h) if h == w and size % h == 0 else -1.0
        if abs(q - round(q)) > 1e-6 or round(q) < 1 or steps < 0 or steps != int(steps):
            raise ValueError(
                f"MultimodalDiT: the maps ({size} x {size} at {rate_hz} Hz) must be a power-of-two multiple "
                f"of {target!r}'s square latent ({h} x {w}) and a whole number of map frames per latent frame "
                f"({spec.rate_hz} Hz)"
            )
        self.channels, self.size, self.rate_hz, self.target = channels, size, float(rate_hz), target
        self.per_frame, self.patch_size = round(q), patch_size
        # unshuffling the first 2x2 (lossless) costs 4x less than a full-resolution first conv
        unshuffle = 2 if steps >= 1 else 1
        layers: list[nn.Module] = [nn.PixelUnshuffle(unshuffle)] if unshuffle > 1 else []
        layers += [nn.Conv2d(self.per_frame * channels * unshuffle**2, width, 3, padding=1), nn.SiLU()]
        for _ in range(int(steps) - 1 if unshuffle > 1 else 0):
            layers += [nn.Conv2d(width, width, 4, stride=2, padding=1), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        positions = math.ceil(h / patch_size) * math.ceil(w / patch_size)
        side = patch_size * patch_size * width
        self.proj = nn.Linear(side, d_model)
        self.null = nn.Parameter(torch.zeros(positions, d_model))
        out = token_dim(spec, patch_size)
        self.head = WideTokenHead(d_model, out, 2 * out, side_dim=side)

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        nn.init.zeros_(self.null)
        self.head.reset_parameters()

    def forward(
        self, maps: torch.Tensor, mask: torch.Tensor | None, num_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The addition to the target's `num_frames` latent frames [B, num_frames, P, D], and the
        per-patch features [B, num_frames * P, p * p * width] for `head` (zero where no map is)."""
        b, s, _ = maps.shape
        q, need = self.per_frame, num_frames * self.per_frame
        present = mask if mask is not None else torch.ones(b, s, dtype=torch.bool, device=maps.device)
        maps = maps[:, :need] * present[:, :need, None].to(maps.dtype)  # absent maps read as empty
        present = present[:, :need]
        if s < need:  # the stream ends before the latent frames do: absent
            maps = torch.cat([maps, maps.new_zeros(b, need - s, maps.shape[2])], dim=1)
            present = torch.cat([present, present.new_zeros(b, need - s)], dim=1)
        frames = maps.reshape(b * num_frames, q * self.channels, self.size, self.size)
        features = self.net(frames.to(self.proj.weight.dtype))  # [B * T, width, h, h]
        features = features.permute(0, 2, 3, 1).unflatten(0, (b, num_frames))  # [B, T, h, h, width]
        side = patchify(features, self.patch_size)  # [B, T * P, p * p * width]
        added = self.proj(side).unflatten(1, (num_frames, -1))  # [B, T, P, D]
        here = present.reshape(b, num_frames, q).any(dim=-1)  # [B, T]
        side = side * here.repeat_interleave(added.shape[2], dim=1)[..., None].to(side.dtype)
        return torch.where(here[..., None, None], added, self.null.to(added.dtype)), side
