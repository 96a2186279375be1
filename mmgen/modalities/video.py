"""Causal 3-D conv video VAE: frames in [-1, 1] <-> latents [B, T', h, w, C] (channels-last).

Spatial x8 and temporal x4 by default (both configurable powers of two). Shortcuts without parameters around
every resolution change (DC-AE) keep low frequencies (flat background colours) on an identity-like
path, which the deep path alone learns only after a long plateau. An optional pixel
(un)shuffle "patch" step does part of the spatial downsampling for free (Cosmos-tokenizer style),
which keeps the full-resolution convolutions cheap.

Time. Every convolution is causal in time (left padding only, by repeating the first frame) and
normalization is per voxel, so a latent frame never sees later video frames. Latent frame i
summarises video frames [4i, 4i + 4) and sits at time i / latent_rate_hz (= 4i / fps):

    video frames   0 1 2 3 | 4 5 6 7 | 8 9 (9) (9)    T = 10 -> padded to 12 by repeating the last frame
    latent frames     0    |    1    |     2          T' = ceil(T / 4)
    latent i depends on video frames 0 .. 4i + 3 only; decoded frame t depends on latents 0 .. t // 4

A single frame (T = 1) encodes alone into one latent frame. With 64x64 frames at 15 fps the
ToyDance preset gives 8x8 latents at exactly 3.75 Hz.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mmgen.modalities.base import LatentStats, ModalityVAE

INIT_LOGVAR = -6.0


def _log2(value: int, what: str) -> int:
    if value < 1 or value & (value - 1):
        raise ValueError(f"{what} must be a power of two, got {value}")
    return value.bit_length() - 1


class CausalConv3d(nn.Module):
    """Conv3d on [B, C, T, H, W], padded on the left in time (first frame repeated), 'same' in space."""

    def __init__(
        self, c_in: int, c_out: int, kernel: tuple[int, int, int] = (3, 3, 3), stride: tuple[int, int, int] = (1, 1, 1)
    ) -> None:
        super().__init__()
        (kt, kh, kw), (st, sh, sw) = kernel, stride
        if kt < st:
            raise ValueError(f"temporal kernel {kt} must be >= stride {st}")
        # spatial: total padding k - s (split low/high) maps H to H / s; time: k - s frames on the left
        self.pad = ((kw - sw) // 2, kw - sw - (kw - sw) // 2, (kh - sh) // 2, kh - sh - (kh - sh) // 2, kt - st, 0)
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad, mode="replicate"))


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of each voxel of [B, C, T, H, W].

    Not GroupNorm: its statistics span the whole frame, so on a flat background (most ToyDance
    pixels) it subtracts the background colour itself and the decoder cannot tell clips apart;
    spanning time it would also leak future frames. A per-voxel norm keeps both.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


def _norm(channels: int) -> ChannelNorm:
    return ChannelNorm(channels)


class ResBlock3d(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            _norm(c_in), nn.SiLU(), CausalConv3d(c_in, c_out), _norm(c_out), nn.SiLU(), CausalConv3d(c_out, c_out)
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv3d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.block(x)


def _check_match(c_in: int, c_out: int, where: str) -> None:
    if c_in % c_out and c_out % c_in:
        raise ValueError(
            f"{where}: shortcut from {c_in} to {c_out} channels needs one to divide the other; "
            "choose channels accordingly"
        )


def _match_channels(x: torch.Tensor, c_out: int) -> torch.Tensor:
    """Parameter-free channel change of [B, C, ...]: average groups of channels or repeat them."""
    c_in = x.shape[1]
    if c_in == c_out:
        return x
    if c_in % c_out == 0:
        return x.unflatten(1, (c_out, c_in // c_out)).mean(2)  # [B, c_out, ...]
    return x.repeat_interleave(c_out // c_in, dim=1)  # [B, c_out, ...]


class Downsample3d(nn.Module):
    """Strided causal conv plus DC-AE's space-to-channel shortcut (residual autoencoding).

    The shortcut (stack each st x ss x ss block into channels, then average channel groups)
    lets colour and other low-frequency content bypass the deep path, so flat backgrounds are
    reconstructed from the first steps instead of after a long plateau. Latent frame j gets
    frames 2j, 2j + 1 only: still causal.
    """

    def __init__(self, c_in: int, c_out: int, st: int, ss: int) -> None:
        super().__init__()
        self.st, self.ss = st, ss
        kernel = (3 if st > 1 else 1, 4 if ss > 1 else 3, 4 if ss > 1 else 3)
        self.conv = CausalConv3d(c_in, c_out, kernel, (st, ss, ss))
        self.c_out = c_out
        _check_match(c_in * st * ss * ss, c_out, "Downsample3d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s2c = rearrange(x, "b c (t a) (h p) (w q) -> b (c a p q) t h w", a=self.st, p=self.ss, q=self.ss)
        return self.conv(x) + _match_channels(s2c, self.c_out)


class Upsample3d(nn.Module):
    """Nearest-neighbour upsampling by (st, ss, ss) and a causal conv, plus the channel-to-space shortcut."""

    def __init__(self, c_in: int, c_out: int, st: int, ss: int) -> None:
        super().__init__()
        self.st, self.ss = st, ss
        self.conv = CausalConv3d(c_in, c_out)
        self.c_out = c_out
        _check_match(c_in, c_out * st * ss * ss, "Upsample3d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = _match_channels(x, self.c_out * self.st * self.ss * self.ss)
        short = rearrange(short, "b (c a p q) t h w -> b c (t a) (h p) (w q)", a=self.st, p=self.ss, q=self.ss)
        if (self.st, self.ss) != (1, 1):
            x = F.interpolate(x, scale_factor=(self.st, self.ss, self.ss), mode="nearest")
        return self.conv(x) + short


class Project(nn.Module):
    """[norm, SiLU,] causal conv from c_in to c_out channels, plus the parameter-free channel
    shortcut on the first `shortcut_channels` outputs (all by default; the encoder's head gives it
    to the posterior mean only, so the log-variance starts near 0 instead of at feature scale)."""

    def __init__(self, c_in: int, c_out: int, pre_activation: bool, shortcut_channels: int | None = None) -> None:
        super().__init__()
        self.pre = nn.Sequential(_norm(c_in), nn.SiLU()) if pre_activation else nn.Identity()
        self.conv = CausalConv3d(c_in, c_out)
        self.c_short = c_out if shortcut_channels is None else shortcut_channels
        _check_match(c_in, self.c_short, "Project")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pre(x))
        short = _match_channels(x, self.c_short)
        if self.c_short == y.shape[1]:
            return y + short
        return torch.cat((y[:, : self.c_short] + short, y[:, self.c_short :]), dim=1)


class VideoVAE(ModalityVAE):
    """Causal 3-D conv VAE for RGB video. The constructor arguments are the config.

    Args:
        fps: video frame rate; latent rate = fps / temporal_downsample.
        frame_size: (H, W) of the frames this model encodes (fixes `latent_spatial`).
        latent_channels: C of the latents.
        spatial_downsample, temporal_downsample: total factors (powers of two).
        patch_size: pixel-unshuffle factor applied first (divides spatial_downsample).
        channels: width per resolution, 1 + number of strided stages, where the stage count is
            max(log2(spatial_downsample / patch_size), log2(temporal_downsample)); stage i halves
            space while i < log2(spatial / patch) and time while i < log2(temporal).
        num_res_blocks: residual blocks per resolution.

    Every change of resolution or width has a parameter-free shortcut (DC-AE's "residual
    autoencoding": space-to-channel + channel averaging down, channel repeat + channel-to-space
    up), so each pair of widths it joins must divide one another (checked here).
    """

    def __init__(
        self,
        fps: float = 15.0,
        frame_size: tuple[int, int] = (64, 64),
        latent_channels: int = 16,
        spatial_downsample: int = 8,
        temporal_downsample: int = 4,
        patch_size: int = 1,
        channels: tuple[int, ...] = (96, 192, 384, 384),
        num_res_blocks: int = 2,
    ) -> None:
        super().__init__()
        channels, frame_size = tuple(channels), (int(frame_size[0]), int(frame_size[1]))
        n_patch = _log2(patch_size, "patch_size")
        n_s = _log2(spatial_downsample, "spatial_downsample") - n_patch
        n_t = _log2(temporal_downsample, "temporal_downsample")
        if n_s < 0:
            raise ValueError(f"patch_size {patch_size} must divide spatial_downsample {spatial_downsample}")
        stages = max(n_s, n_t)
        if len(channels) != stages + 1:
            raise ValueError(f"channels needs {stages + 1} entries for this downsampling, got {len(channels)}")
        if min(frame_size) <= 0 or frame_size[0] % spatial_downsample or frame_size[1] % spatial_downsample:
            raise ValueError(f"frame_size {frame_size} must be positive multiples of spatial_downsample {spatial_downsample}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.frame_size = frame_size
        self.patch_size = patch_size
        self.spatial_downsample = spatial_downsample
        self.temporal_downsample = temporal_downsample
        self._latent_channels = latent_channels
        strides = [(2 if i < n_t else 1, 2 if i < n_s else 1) for i in range(stages)]
        c_pix = 3 * patch_size**2

        enc: list[nn.Module] = [Project(c_pix, channels[0], pre_activation=False)]
        for i, (st, ss) in enumerate(strides):
            enc += [ResBlock3d(channels[i], channels[i]) for _ in range(num_res_blocks)]
            enc.append(Downsample3d(channels[i], channels[i + 1], st, ss))
        enc += [ResBlock3d(channels[-1], channels[-1]) for _ in range(num_res_blocks)]
        enc.append(Project(channels[-1], 2 * latent_channels, pre_activation=True, shortcut_channels=latent_channels))
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [Project(latent_channels, channels[-1], pre_activation=False)]
        dec += [ResBlock3d(channels[-1], channels[-1]) for _ in range(num_res_blocks)]
        for i in reversed(range(stages)):
            st, ss = strides[i]
            dec.append(Upsample3d(channels[i + 1], channels[i], st, ss))
            dec += [ResBlock3d(channels[i], channels[i]) for _ in range(num_res_blocks)]
        dec.append(Project(channels[0], c_pix, pre_activation=True))
        self.decoder = nn.Sequential(*dec)
        self.latent_stats = LatentStats(latent_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Start as the shortcut chain alone: the last conv of every residual block and every conv
        beside a shortcut are zero. The untrained model then reconstructs the video's block
        averages (the per 8x8x4 block mean colour) and training only adds detail to them."""
        for module in self.modules():
            if isinstance(module, ResBlock3d):
                last = module.block[-1]
                assert isinstance(last, CausalConv3d)
                convs = [last.conv]
            elif isinstance(module, (Downsample3d, Upsample3d, Project)):
                convs = [module.conv.conv]
            else:
                continue
            for conv in convs:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        # posterior std starts at exp(-3) ~ 0.05, not 1: unit noise would drown the block averages
        head = self.encoder[-1]
        assert isinstance(head, Project)
        nn.init.constant_(head.conv.conv.bias[self.latent_channels :], INIT_LOGVAR)

    @classmethod
    def tiny(cls, **overrides: object) -> VideoVAE:
        """ToyDance preset: 64x64 at 15 fps -> 8x8x12 latents at 3.75 Hz, small enough for CPU tests.

        12 latent channels make the shortcut chain exact: the 96 channels before the latent hold
        32 per colour, so averaging groups of 8 never mixes colours and the untrained model
        reproduces each 8x8x4 block's mean colour.
        """
        kw: dict = {"latent_channels": 12, "patch_size": 2, "channels": (24, 48, 96), "num_res_blocks": 1}
        kw.update(overrides)
        return cls(**kw)

    # ------------------------------------------------------------------ protocol
    @property
    def latent_channels(self) -> int:
        return self._latent_channels

    @property
    def latent_rate_hz(self) -> float:
        return self.fps / self.temporal_downsample

    @property
    def latent_spatial(self) -> tuple[int, int]:
        h, w = self.frame_size
        return (h // self.spatial_downsample, w // self.spatial_downsample)

    def num_latent_frames(self, num_frames: int) -> int:
        return -(-num_frames // self.temporal_downsample)

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames in [-1, 1] [B, T, H, W, 3] -> (mean, logvar), each [B, ceil(T / 4), h, w, C]."""
        if features.ndim != 5 or features.shape[-1] != 3 or tuple(features.shape[2:4]) != self.frame_size:
            raise ValueError(
                f"video features: expected [B, T, {self.frame_size[0]}, {self.frame_size[1]}, 3] in [-1, 1], "
                f"got {tuple(features.shape)}"
            )
        t = features.shape[1]
        if t < 1:
            raise ValueError("video features: empty clip (0 frames)")
        p = self.patch_size
        x = rearrange(features, "b t (h p1) (w p2) c -> b (c p1 p2) t h w", p1=p, p2=p)  # [B, 3p², T, H/p, W/p]
        pad = self.num_latent_frames(t) * self.temporal_downsample - t
        if pad:
            x = F.pad(x, (0, 0, 0, 0, 0, pad), mode="replicate")  # repeat the last frame
        h = rearrange(self.encoder(x), "b c t h w -> b t h w c")  # [B, T', h, w, 2C]
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar

    def decode(self, z: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Latents [B, T', h, w, C] -> frames in [-1, 1] [B, num_frames or 4T', H, W, 3] (unclamped)."""
        if z.ndim != 5 or z.shape[-1] != self.latent_channels or tuple(z.shape[2:4]) != self.latent_spatial:
            raise ValueError(
                f"z: expected [B, T', {self.latent_spatial[0]}, {self.latent_spatial[1]}, {self.latent_channels}], "
                f"got {tuple(z.shape)}"
            )
        full = z.shape[1] * self.temporal_downsample
        if num_frames is not None and not (full - self.temporal_downsample < num_frames <= full):
            raise ValueError(f"num_frames={num_frames} does not fit {z.shape[1]} latent frames (x{self.temporal_downsample})")
        x = self.decoder(rearrange(z, "b t h w c -> b c t h w"))  # [B, 3p², 4T', H/p, W/p]
        p = self.patch_size
        x = rearrange(x, "b (c p1 p2) t h w -> b t (h p1) (w p2) c", p1=p, p2=p)  # [B, 4T', H, W, 3]
        return x if num_frames is None else x[:, :num_frames]
