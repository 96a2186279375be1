"""Motion VAE: normalized kinematic features at `fps` <-> latents at `fps / prod(strides)`.

A 1-D conv VAE over time (residual blocks, strided-conv downsampling, optional transformer
layers at the latent resolution), MoMu-style: at 30 fps with strides (2, 2) the latent rate is
exactly 7.5 Hz, the rate of the mel audio VAE, so motion and music tokens line up in time.

Lengths. Latent frame i summarises motion frames [4i, 4i + 4) and sits at time i / 7.5 s:

    motion frames  0 1 2 3 | 4 5 6 7 | 8 9 (9) (9)      T = 10 -> padded to 12 by repeating the last frame
    latent frames     0    |    1    |     2            T' = ceil(T / 4) = 3
    decode(z, num_frames=10) crops the 12 decoded frames back to 10

The encoder is not causal (motion is encoded whole); normalization is per frame, so batch items
never mix and a batch encodes like its items one by one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mmgen.modalities.base import LatentStats, ModalityVAE
from mmgen.modalities.motion_features import KinematicFeatures


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over channels at each frame of [B, C, T].

    Per-frame statistics never mix time steps; on CPU its backward is ~7x faster than GroupNorm's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ResBlock1d(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.block = nn.Sequential(
            ChannelNorm(channels),
            nn.SiLU(),
            nn.Conv1d(channels, channels, kernel_size, padding=pad),
            ChannelNorm(channels),
            nn.SiLU(),
            nn.Conv1d(channels, channels, kernel_size, padding=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class TransformerLayer(nn.Module):
    """Pre-norm self-attention + MLP over time on [B, C, T] (SDPA attention)."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels {channels} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = rearrange(x, "b c t -> b t c")
        q, k, v = rearrange(self.qkv(self.norm1(h)), "b t (three n d) -> three b n t d", three=3, n=self.num_heads)
        a = F.scaled_dot_product_attention(q, k, v)  # [B, N, T, D]
        h = h + self.proj(rearrange(a, "b n t d -> b t (n d)"))
        h = h + self.mlp(self.norm2(h))
        return rearrange(h, "b t c -> b c t")


def _down(c_in: int, c_out: int, stride: int) -> nn.Conv1d:
    """Strided conv with kernel stride + 2 * (stride // 2): maps length L (a multiple of stride) to L / stride."""
    pad = stride // 2
    return nn.Conv1d(c_in, c_out, stride + 2 * pad, stride=stride, padding=pad)


class MotionVAE(ModalityVAE):
    """Kinematic motion VAE. The constructor arguments are the config.

    Args:
        skeleton, dims, facing_invariant, contact_threshold: the `KinematicFeatures` codec.
        fps: motion frame rate.
        latent_channels: C of the latents [B, T', C].
        channels: conv width at each time resolution (len(strides) + 1 entries).
        strides: temporal downsampling per stage; latent rate = fps / prod(strides).
        num_res_blocks: residual blocks per resolution.
        num_transformer_layers, num_heads: self-attention layers at the latent resolution.
    """

    def __init__(
        self,
        skeleton: str = "smpl24",
        dims: int = 3,
        fps: float = 30.0,
        facing_invariant: bool = False,
        contact_threshold: float = 0.01,
        latent_channels: int = 16,
        channels: tuple[int, ...] = (128, 192, 256),
        strides: tuple[int, ...] = (2, 2),
        num_res_blocks: int = 2,
        num_transformer_layers: int = 2,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        channels, strides = tuple(channels), tuple(strides)
        if len(channels) != len(strides) + 1:
            raise ValueError(f"channels needs len(strides) + 1 = {len(strides) + 1} entries, got {len(channels)}")
        if any(s < 1 for s in strides) or not fps > 0 or latent_channels < 1:
            raise ValueError(f"strides must be >= 1, fps > 0, latent_channels >= 1 (got {strides}, {fps}, {latent_channels})")
        self.codec = KinematicFeatures(skeleton, dims, facing_invariant, contact_threshold)
        self.fps = float(fps)
        self.downsample = int(np.prod(strides)) if strides else 1
        self._latent_channels = latent_channels
        feat = self.codec.feature_dim

        enc: list[nn.Module] = [nn.Conv1d(feat, channels[0], 3, padding=1)]
        for i, s in enumerate(strides):
            enc += [ResBlock1d(channels[i]) for _ in range(num_res_blocks)]
            enc.append(_down(channels[i], channels[i + 1], s))
        enc += [ResBlock1d(channels[-1]) for _ in range(num_res_blocks)]
        enc += [TransformerLayer(channels[-1], num_heads) for _ in range(num_transformer_layers)]
        enc += [ChannelNorm(channels[-1]), nn.SiLU()]
        enc.append(nn.Conv1d(channels[-1], 2 * latent_channels, 3, padding=1))
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Conv1d(latent_channels, channels[-1], 3, padding=1)]
        dec += [TransformerLayer(channels[-1], num_heads) for _ in range(num_transformer_layers)]
        for i in reversed(range(len(strides))):
            dec += [ResBlock1d(channels[i + 1]) for _ in range(num_res_blocks)]
            dec += [nn.Upsample(scale_factor=strides[i], mode="nearest"), nn.Conv1d(channels[i + 1], channels[i], 3, padding=1)]
        dec += [ResBlock1d(channels[0]) for _ in range(num_res_blocks)]
        dec += [ChannelNorm(channels[0]), nn.SiLU(), nn.Conv1d(channels[0], feat, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.latent_stats = LatentStats(latent_channels)

    @classmethod
    def tiny(cls, skeleton: str = "smpl24", dims: int = 3, **overrides: object) -> MotionVAE:
        """A preset small enough to train on CPU in seconds (tests, the ToyDance demo).

        One stride-4 stage: a single strided conv maps every 4 frames to a latent frame, so
        nearly all compute runs at the latent rate and the model starts out close to a
        block-wise linear code (it learns in a few hundred CPU steps).
        """
        kw: dict = {
            "latent_channels": 16, "channels": (48, 96), "strides": (4,), "num_res_blocks": 1,
            "num_transformer_layers": 0, "num_heads": 4,
        }
        kw.update(overrides)
        return cls(skeleton=skeleton, dims=dims, **kw)

    # ------------------------------------------------------------------ protocol
    @property
    def latent_channels(self) -> int:
        return self._latent_channels

    @property
    def latent_rate_hz(self) -> float:
        return self.fps / self.downsample

    @property
    def feature_dim(self) -> int:
        return self.codec.feature_dim

    def num_latent_frames(self, num_frames: int) -> int:
        return -(-num_frames // self.downsample)

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized features [B, T, F] -> (mean, logvar), each [B, ceil(T / downsample), C]."""
        self.codec.check_features(features)
        t = features.shape[1]
        if t < 1:
            raise ValueError("features: empty clip (0 frames)")
        pad = self.num_latent_frames(t) * self.downsample - t
        x = rearrange(features, "b t f -> b f t")
        if pad:
            x = F.pad(x, (0, pad), mode="replicate")  # [B, F, T'·downsample]
        h = rearrange(self.encoder(x), "b c t -> b t c")  # [B, T', 2C]
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar

    def decode(self, z: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Latents [B, T', C] -> normalized features [B, num_frames or T'·downsample, F]."""
        if z.ndim != 3 or z.shape[-1] != self.latent_channels:
            raise ValueError(f"z: expected [B, T', {self.latent_channels}], got {tuple(z.shape)}")
        full = z.shape[1] * self.downsample
        if num_frames is not None and not (full - self.downsample < num_frames <= full):
            raise ValueError(f"num_frames={num_frames} does not fit {z.shape[1]} latent frames (x{self.downsample})")
        x = rearrange(self.decoder(rearrange(z, "b t c -> b c t")), "b f t -> b t f")  # [B, T'·ds, F]
        return x if num_frames is None else x[:, :num_frames]

    # ------------------------------------------------------------------ joints in, joints out
    def encode_joints(self, joints: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Joints [B, T, J, D] (or [T, J, D]) -> (mean, logvar) [B, T', C]."""
        return self.encode(self.codec.encode(joints))

    def decode_joints(
        self, z: torch.Tensor, num_frames: int | None = None, state: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Latents -> joints [B, T, J, D]; `state` is the frame-0 root state (`codec.initial_state`)."""
        return self.codec.decode(self.decode(z, num_frames), state)

    @torch.no_grad()
    def reconstruct(self, joints: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Encode (posterior mode) and decode, keeping length and the frame-0 root state."""
        joints = self.codec.check_joints(joints).to(self.codec.feature_mean.device)
        mean, _ = self.encode_joints(joints)
        return self.decode_joints(mean, joints.shape[1], self.codec.initial_state(joints))
