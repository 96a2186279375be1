"""Pose maps: the given dance drawn as a small picture per frame, for the video it should become.

    joints [B, T, J, 3] at any fps ──render_stick_figure (the clip's own view, black background,
        limb colours, no floor) at rate_hz──► [B, S, size, size, 3] ──/255, channels first──►
        Features [B, S, 3 * size * size]  (frozen, cacheable)  ──target "map"──► Cond.maps
        ──`mmgen.dit.map_stream.MapStream`: a small conv net shared over positions, per video patch──►
        added to the video tokens of the same seconds

Why a picture and not the dance's latents: on held-out ToyDance clips a network from the motion
latents around a video latent frame to that frame reaches 0.21 (mean frame 0.51; 240 training
clips) and the DiT given the true dance 0.195: where each limb lands in the frame is a projection
the DiT has to learn, and 240-960 clips do not teach it. A conv net from these maps (plus the
background colour the music's style gives) reaches 0.039 on the same held-out clips: the
projection is done here, exactly, and what is left to learn is local and shared over the frame
(AnimateAnyone's pose guider, for a DiT). docs/pose_maps.md has the numbers.

The view is the one ToyDance videos and `mmgen.io.render` use: fitted to the whole clip (one
scale and centre), so a long clip's maps keep one framing across its sampling windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mmgen.conditioning.base import Conditioner, Features, clips_and_rates, pad_ragged
from mmgen.core.skeleton import get_skeleton
from mmgen.io.render import render_stick_figure


class PoseMapConditioner(Conditioner):
    """Pose maps of the given dance at `rate_hz` (a "map" stream of group "motion").

    Args:
        size: the maps' side in pixels (a multiple of the video latent's side; 32 for the
            ToyDance 8 x 8 latent).
        rate_hz: map frames per second (the video's frame rate: 15 for ToyDance).
        key: batch key of the joints: [B, T, J, 3] float (y-up, metres) or a list of [T_i, J, 3].
        fps_key: batch key of the joints' rate (one number or one per clip); when absent, `fps`.
        fps: the joints' rate when the batch has no `fps_key` (30: the ToyDance motion's).
        skeleton: the joints' skeleton (its bones are drawn).
    """

    target = "map"
    ways = ("map",)
    group = "motion"

    def __init__(
        self,
        size: int = 32,
        rate_hz: float = 15.0,
        key: str = "motion",
        fps_key: str = "motion_fps",
        fps: float = 30.0,
        skeleton: str = "smpl24",
    ) -> None:
        if size < 8:
            raise ValueError(f"PoseMapConditioner: size must be at least 8 pixels, got {size}")
        if not (rate_hz > 0 and fps > 0):
            raise ValueError(f"PoseMapConditioner: rate_hz and fps must be positive, got {rate_hz}, {fps}")
        super().__init__(3 * size * size)
        self.size, self.rate_hz, self.key, self.fps_key, self.fps = int(size), float(rate_hz), key, fps_key, float(fps)
        self.skeleton = get_skeleton(skeleton)
        self.feature_width = self.dim  # what `encode` produces (`absent` fills it)

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def maps(self, joints: np.ndarray, fps: float) -> torch.Tensor:
        """One clip's joints [T, J, 3] at `fps` -> maps [S, 3, size, size] float in [0, 1] at rate_hz."""
        frames = render_stick_figure(
            np.asarray(joints, dtype=np.float32), fps, size=self.size, out_fps=self.rate_hz,
            skeleton=self.skeleton, background=(0, 0, 0), floor=False,
        )  # [S, size, size, 3] uint8
        return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)

    @torch.no_grad()
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        owner = type(self).__name__
        clips, rates = clips_and_rates(batch, self.key, self.fps_key, self.fps, owner, "[B, T, J, 3]")
        maps = []
        for i, (joints, fps) in enumerate(zip(clips, rates)):
            joints = joints.detach().cpu().numpy() if isinstance(joints, torch.Tensor) else np.asarray(joints)
            if joints.ndim != 3 or joints.shape[1:] != (self.skeleton.num_joints, 3) or len(joints) == 0:
                raise ValueError(
                    f"{owner}: clip {i} of batch[{self.key!r}] must be joints [T > 0, {self.skeleton.num_joints}, 3], "
                    f"got {joints.shape}"
                )
            if not np.isfinite(joints).all():
                raise ValueError(f"{owner}: clip {i} of batch[{self.key!r}] holds NaN or infinite joints")
            maps.append(self.maps(joints, fps).flatten(1))  # [S_i, 3 * size * size]
        values, mask = pad_ragged(maps)
        device = device or self.device
        return Features(values.to(device), mask.to(device))

    def project(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """The maps themselves: the DiT's MapStream holds the trainable part (it reads them per patch)."""
        return features.values, features.mask
