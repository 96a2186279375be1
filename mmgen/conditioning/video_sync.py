"""Video synchronisation features: *when* the body moves and stops, per frame at 15 Hz.

    frames at any fps / size ──conform_sync_frames──► gray [B, T, 64, 64] at 15 Hz  (video_frames.py)
        ──fixed front end: |g_t - g_{t-1}| pooled on a 4x4 grid + the whole frame, log-compressed;
          frame t gets the difference before it and the one after it──► [B, T, 34]
        ├─learned temporal conv net (dilated, per-frame LayerNorm, receptive field ±R frames)──►
        │   [B, T, F] unit-norm features, frame t at t / 15 s
        └─the front end itself, standardised by statistics measured on the training clips
      stream = concat ──► [B, T, F + 34]                                          (frozen, cacheable)
        ──VideoSyncConditioner.project: Conv1d(k=3) + SiLU + Linear──► aligned tokens [B, T, dim]

Why both: on held-out ToyDance clips a linear probe reads the dance's beats from the front end
alone at beat F 0.99 (also after averaging to the audio latent rate, 7.5 Hz), while the learned
features, trained to agree with the audio, give 0.77 per frame (0.98 with +-2 frames of context):
the pre-training shapes a code of *where in the beat* a frame is and what the audio does there,
not a sharper onset. The stream keeps the exact timing and adds the audio-aligned context.

The front end has no parameters and the net no normalisation over time, so the features are
time-equivariant: shifting the video by k frames shifts every feature more than R frames from
the clip's ends by exactly k frames. The net is trained by contrastive audio-visual sync
pre-training (`mmgen.train.sync_module`) and then frozen; see docs/sync_stream.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from mmgen.conditioning.base import Conditioner, Features, FrozenSlot, clips_and_rates
from mmgen.conditioning.video_frames import conform_sync_chunks, conform_sync_frames
from mmgen.core.errors import MmgenError
from mmgen.core.pretrained import CONFIG_NAME, PretrainedMixin, from_yaml_value, resolve_config_path


def pooled_differences(gray: torch.Tensor, grid: int) -> torch.Tensor:
    """gray [B, T, S, S] (T >= 2) -> mean |g_{t+1} - g_t| over each cell of a grid x grid partition
    and over the whole frame: [B, T-1, grid^2 + 1] (the front end before its log)."""
    if gray.ndim != 4 or gray.shape[1] < 2:
        raise ValueError(f"pooled_differences: expected gray frames [B, T >= 2, S, S], got {tuple(gray.shape)}")
    b, t = gray.shape[:2]
    diff = (gray[:, 1:] - gray[:, :-1]).abs().flatten(0, 1)[:, None]  # [B*(T-1), 1, S, S]
    cells = F.adaptive_avg_pool2d(diff, grid).flatten(1)  # [B*(T-1), grid^2]
    whole = diff.mean(dim=(1, 2, 3))[:, None]  # [B*(T-1), 1]
    return torch.cat([cells, whole], dim=1).reshape(b, t - 1, -1)  # [B, T-1, C]


def front_features(diffs: torch.Tensor, eps: float) -> torch.Tensor:
    """Pooled differences [B, T-1, C] -> per-frame front-end features [B, T, 2C].

    d_{t+1/2} = log(eps + diffs); frame t gets (d_{t-1/2}, d_{t+1/2}), the ends repeat their one
    neighbour:

        frames       g0     g1     g2    ...   g_{T-1}
        differences     d½     d1½   ...  d_{T-1½}
        frame t=0    (d½,  d½)   t=1 (d½, d1½)  ...   t=T-1 (d_{T-1½}, d_{T-1½})
    """
    d = torch.log(eps + diffs)  # [B, T-1, C]
    before = torch.cat([d[:, :1], d], dim=1)  # [B, T, C]: d_{t-1/2}
    after = torch.cat([d, d[:, -1:]], dim=1)  # [B, T, C]: d_{t+1/2}
    return torch.cat([before, after], dim=-1)  # [B, T, 2C]


def frame_difference_features(gray: torch.Tensor, grid: int, eps: float) -> torch.Tensor:
    """The fixed front end: gray [B, T, S, S] (T >= 2) -> [B, T, 2 (grid^2 + 1)]."""
    return front_features(pooled_differences(gray, grid), eps)


class TemporalBlock(nn.Module):
    """Pre-norm residual block: LayerNorm -> dilated Conv1d(k=3) -> GELU -> Conv1d(k=1)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C]
        h = self.norm(x).transpose(1, 2)  # [B, C, T]
        return x + self.mix(F.gelu(self.conv(h))).transpose(1, 2)


class VideoSyncEncoder(PretrainedMixin, nn.Module):
    """Frozen-after-training video sync encoder (fixed front end + small temporal conv net).

    Args:
        rate_hz: frame rate every clip is resampled to (>= 15 for sync); features come at this rate.
        frame_size: frames are resized to frame_size x frame_size grayscale first.
        grid: the front end pools frame differences on grid x grid cells (plus the whole frame).
        hidden: width of the temporal net; feature_dim: output width.
        dilations: one residual block per entry (kernel 3); the receptive field is
            ±(1 + sum(dilations)) frames.
        eps: floor inside the front end's log (mean absolute differences are in [0, 1]).
        stream_front_end: the conditioning stream (`stream`, `encode_clips`) appends the
            standardised front end to the learned features (see the module doc).
    """

    front_mean: torch.Tensor
    front_std: torch.Tensor

    def __init__(
        self,
        rate_hz: float = 15.0,
        frame_size: int = 64,
        grid: int = 4,
        hidden: int = 64,
        feature_dim: int = 32,
        dilations: Sequence[int] = (1, 2, 4, 8, 1, 2),
        eps: float = 1e-3,
        stream_front_end: bool = True,
    ) -> None:
        super().__init__()
        if not rate_hz >= 15.0:
            raise ValueError(f"VideoSyncEncoder: rate_hz must be >= 15 to resolve beats, got {rate_hz}")
        if frame_size < grid or grid < 1 or hidden < 1 or feature_dim < 1 or not eps > 0:
            raise ValueError(
                f"VideoSyncEncoder: need frame_size >= grid >= 1, positive hidden / feature_dim / eps; got "
                f"frame_size={frame_size}, grid={grid}, hidden={hidden}, feature_dim={feature_dim}, eps={eps}"
            )
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ValueError(f"VideoSyncEncoder: dilations must be positive integers, got {list(dilations)}")
        self.rate_hz, self.frame_size, self.grid, self.eps = float(rate_hz), int(frame_size), int(grid), float(eps)
        self.feature_dim = int(feature_dim)
        self.front_channels = 2 * (grid * grid + 1)
        self.inp = nn.Linear(self.front_channels, hidden)
        self.blocks = nn.ModuleList(TemporalBlock(hidden, int(d)) for d in dilations)
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, feature_dim)
        self.receptive_radius = 1 + sum(int(d) for d in dilations)
        self.stream_front_end = bool(stream_front_end)
        self.stream_dim = stream_width(feature_dim, grid, stream_front_end)
        # set by `set_front_stats` after training (saved with the weights; part of the fingerprint)
        self.register_buffer("front_mean", torch.zeros(self.front_channels))
        self.register_buffer("front_std", torch.ones(self.front_channels))

    @torch.no_grad()
    def set_front_stats(self, diffs: Sequence[torch.Tensor]) -> None:
        """Standardise the streamed front end by its per-channel mean / std over clips' pooled
        differences [T_i - 1, C] (`pooled_differences`), every frame of every clip."""
        front = torch.cat([front_features(d.float()[None], self.eps)[0] for d in diffs])  # [ΣT, 2C]
        if front.shape[0] < 2:
            raise ValueError("VideoSyncEncoder.set_front_stats: need at least 2 frames")
        self.front_mean.copy_(front.mean(0))
        self.front_std.copy_(front.std(0).clamp_min(0.25))  # near-still cells (corners): no blow-up

    def front(self, gray: torch.Tensor) -> torch.Tensor:
        """The fixed front end alone: gray [B, T, S, S] -> [B, T, front_channels]."""
        return frame_difference_features(gray.float(), self.grid, self.eps)

    def net(self, front: torch.Tensor) -> torch.Tensor:
        """The learned part: front-end features [B, T, front_channels] -> unit-norm [B, T, feature_dim]."""
        if front.ndim != 3 or front.shape[-1] != self.front_channels:
            raise ValueError(
                f"VideoSyncEncoder: expected front-end features [B, T, {self.front_channels}], got {tuple(front.shape)}"
            )
        h = self.inp(front)  # [B, T, hidden]
        for block in self.blocks:
            h = block(h)
        return F.normalize(self.out(self.out_norm(h)), dim=-1)  # [B, T, F]

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        """gray [B, T, S, S] in [0, 1] at rate_hz -> unit-norm features [B, T, feature_dim]."""
        if gray.ndim != 4 or tuple(gray.shape[2:]) != (self.frame_size, self.frame_size):
            raise ValueError(
                f"VideoSyncEncoder: expected gray frames [B, T, {self.frame_size}, {self.frame_size}] "
                f"(use conform_sync_frames), got {tuple(gray.shape)}"
            )
        return self.net(self.front(gray))

    def stream(self, gray: torch.Tensor) -> torch.Tensor:
        """The conditioning stream: gray [B, T, S, S] -> [B, T, stream_dim] (learned features,
        then the standardised front end when `stream_front_end`)."""
        return self.stream_of_front(self.front(gray))

    def stream_of_front(self, front: torch.Tensor) -> torch.Tensor:
        """The conditioning stream from front-end features [B, T, front_channels]."""
        learned = self.net(front)
        if not self.stream_front_end:
            return learned
        return torch.cat([learned, (front - self.front_mean) / self.front_std], dim=-1)  # [B, T, F + 2C]

    def conform(self, frames: Any, fps: float, what: str = "video") -> torch.Tensor:
        """One clip's frames at `fps` -> gray [T', S, S] at rate_hz on this encoder's device."""
        return conform_sync_frames(frames, fps, self.rate_hz, self.frame_size, self.inp.weight.device, what)

    def clip_front(self, frames: Any, fps: float, what: str = "video") -> torch.Tensor:
        """One clip's front-end features [T', front_channels], equal to `front(conform(...))`
        but computed a chunk of frames at a time: a 10-minute clip never holds its gray frames
        (147 MB at 15 Hz) or their differences at once."""
        diffs, prev = [], None
        chunks = conform_sync_chunks(frames, fps, self.rate_hz, self.frame_size, self.inp.weight.device, what)
        for gray in chunks:  # [n, S, S]
            both = gray if prev is None else torch.cat([prev, gray])  # the difference across the seam
            if both.shape[0] >= 2:
                diffs.append(pooled_differences(both[None], self.grid)[0])  # [n', C]
            prev = gray[-1:]
        return front_features(torch.cat(diffs)[None], self.eps)[0]  # [T', 2C]

    @torch.no_grad()
    def encode_clips(self, clips: Sequence[Any], fps: Sequence[float], what: str = "video") -> Features:
        """Clips of any length / fps / size -> stream Features [B, T_max, stream_dim] (mask False
        past each clip's end).

        Clips of equal length run as one batch; each clip's features equal encoding it alone.
        """
        if len(clips) == 0:
            raise ValueError(f"{what}: no clips given")
        if len(fps) != len(clips):
            raise ValueError(f"{what}: {len(clips)} clips but {len(fps)} frame rates")
        front = [self.clip_front(c, r, f"{what}[{i}]") for i, (c, r) in enumerate(zip(clips, fps, strict=True))]
        lengths = [f.shape[0] for f in front]
        device = front[0].device
        values = torch.zeros(len(front), max(lengths), self.stream_dim, device=device)
        mask = torch.zeros(len(front), max(lengths), dtype=torch.bool, device=device)
        for n in sorted(set(lengths)):
            idx = [i for i, m in enumerate(lengths) if m == n]
            values[idx, :n] = self.stream_of_front(torch.stack([front[i] for i in idx]))  # [b, n, stream_dim]
            mask[idx, :n] = True
        return Features(values, mask)


def stream_width(feature_dim: int, grid: int, stream_front_end: bool) -> int:
    """Width of a VideoSyncEncoder's stream: the learned features, plus the front end's channels."""
    return int(feature_dim) + (2 * (int(grid) ** 2 + 1) if stream_front_end else 0)


def read_encoder_config(directory: str | Path) -> dict[str, Any]:
    """init_args of a saved VideoSyncEncoder (reads config.yaml only, no weights)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (expected a saved VideoSyncEncoder directory)")
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict) or not str(spec.get("class_path", "")).endswith("VideoSyncEncoder"):
        raise MmgenError(f"{path}: not a VideoSyncEncoder config (class_path {spec.get('class_path') if isinstance(spec, dict) else None!r})")
    return from_yaml_value(spec.get("init_args") or {})


class VideoSyncConditioner(Conditioner):
    """Time-aligned tokens from a frozen `VideoSyncEncoder` (target "aligned", group "video").

    Args:
        dim: output width (the DiT's aligned_dim).
        encoder: directory of a saved VideoSyncEncoder (config.yaml + model.safetensors); loaded
            on first use and kept out of state_dict (a checkpoint stores only the projection).
            A relative path in a saved config is read against that config's folder first
            (`resolve_config_path`: a pipeline's `condition/` names `../sync`).
        key: batch key of the frames: uint8 [B, T, H, W, 3] or a list of [T_i, H, W, 3] clips.
        fps_key: batch key of the frames' rate (a number or one per clip); when absent, `fps`.
        fps: the frames' rate when the batch has no `fps_key` (15: the ToyDance video modality's).
    """

    target = "aligned"
    group = "video"

    def __init__(self, dim: int, encoder: str, key: str = "video", fps_key: str = "video_fps", fps: float = 15.0) -> None:
        super().__init__(dim)
        if not fps > 0:
            raise ValueError(f"VideoSyncConditioner: fps must be positive, got {fps}")
        encoder_dir = resolve_config_path(encoder)
        config = read_encoder_config(encoder_dir)
        self.encoder_dir, self.key, self.fps_key, self.fps = str(encoder_dir), key, fps_key, float(fps)
        self.rate_hz = float(config.get("rate_hz", 15.0))
        feature_dim = stream_width(
            config.get("feature_dim", 32), config.get("grid", 4), config.get("stream_front_end", True)
        )
        self.feature_width = feature_dim  # what `encode` produces (`absent` fills it)
        self.proj_in = nn.Conv1d(feature_dim, dim, 3, padding=1)
        self.proj_out = nn.Linear(dim, dim)
        self._frozen = FrozenSlot()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def sync_encoder(self, device: torch.device | None = None) -> VideoSyncEncoder:
        if self._frozen.value is None:
            enc = VideoSyncEncoder.from_pretrained(self.encoder_dir).requires_grad_(False)
            if enc.rate_hz != self.rate_hz:
                raise MmgenError(f"{self.encoder_dir}: the encoder's rate changed since this conditioner was built")
            self._frozen.value = enc
        enc = self._frozen.value
        if device is not None and enc.inp.weight.device != device:
            enc.to(device)
        return enc

    def frozen_parts(self) -> dict[str, PretrainedMixin]:
        """The frozen encoder, under the path the config names (a pipeline saves it there)."""
        named = str(self.config["encoder"])
        return {} if Path(named).is_absolute() else {named: self.sync_encoder()}

    def feature_fingerprint(self) -> str:
        """Fingerprint of what `encode` computes (the frozen encoder), for latent caches."""
        return self.sync_encoder().fingerprint()

    @torch.no_grad()
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        device = device or self.device
        clips, rates = clips_and_rates(batch, self.key, self.fps_key, self.fps, type(self).__name__, "[B, T, H, W, 3]")
        return self.sync_encoder(device).encode_clips(clips, rates, what=f"batch[{self.key!r}]")

    def project(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        x = (features.values * features.mask[..., None]).transpose(1, 2)  # [B, F, S]
        tokens = self.proj_out(F.silu(self.proj_in(x).transpose(1, 2)))  # [B, S, dim]
        return tokens, features.mask
