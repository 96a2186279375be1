"""From per-modality latents to one token sequence and back: patchify, unpatchify, `TokenLayout`.

Sequence modalities ([B, T, C]) give one token per latent frame. Video latents ([B, T, h, w, C])
are cut into p x p patches per frame (h and w padded with zeros up to a multiple of p and
cropped back on the way out), giving gh * gw tokens per frame in raster order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange

from mmgen.core.timeline import ModalitySpec, frame_seconds, segment_ids


def patch_grid(spatial: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """Patch grid (gh, gw) of an (h, w) latent frame; odd sizes round up (they are padded)."""
    return math.ceil(spatial[0] / patch_size), math.ceil(spatial[1] / patch_size)


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, T, h, w, C] -> [B, T * gh * gw, p * p * C], zero-padding h and w up to multiples of p."""
    if x.ndim != 5:
        raise ValueError(f"patchify expects [B, T, h, w, C], got shape {tuple(x.shape)}")
    p = patch_size
    h, w = x.shape[2], x.shape[3]
    pad_h, pad_w = -h % p, -w % p
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # [B, T, gh*p, gw*p, C]
    return rearrange(x, "b t (gh p1) (gw p2) c -> b (t gh gw) (p1 p2 c)", p1=p, p2=p)


def unpatchify(
    tokens: torch.Tensor, num_frames: int, spatial: tuple[int, int], patch_size: int
) -> torch.Tensor:
    """Inverse of `patchify`: [B, T * gh * gw, p * p * C] -> [B, T, h, w, C] (padding cropped)."""
    p = patch_size
    gh, gw = patch_grid(spatial, p)
    x = rearrange(
        tokens, "b (t gh gw) (p1 p2 c) -> b t (gh p1) (gw p2) c", t=num_frames, gh=gh, gw=gw, p1=p, p2=p
    )
    return x[:, :, : spatial[0], : spatial[1]]  # [B, T, h, w, C]


@dataclass(frozen=True, eq=False)
class TokenLayout:
    """Where every token of the joint sequence comes from, and how to split the sequence back.

    Example: 2 prefix tokens, audio at 4 Hz (T = 5), video at 2 Hz (T = 2) with a 2 x 2 patch
    grid, segments of 0.5 s. Tokens are ordered prefix, then modalities in the model's order,
    each frame-major (video: frame, then patch rows, then patch columns):

        token     p0  p1 | a0   a1   a2   a3   a4  | v0:00 v0:01 v0:10 v0:11 v1:00 v1:01 v1:10 v1:11
        modality  -1  -1 | 0    0    0    0    0   | 1     1     1     1     1     1     1     1
        frame     -1  -1 | 0    1    2    3    4   | 0     0     0     0     1     1     1     1
        seconds   0   0  | 0   .25  .5  .75  1.0   | 0     0     0     0     .5    .5    .5    .5
        (y, x)    0,0    | 0,0  0,0  0,0  0,0  0,0 | 0,0   0,1   1,0   1,1   0,0   0,1   1,0   1,1
        segment   -1  -1 | 0    0    1    1    2   | 0     0     0     0     1     1     1     1
        row       0   0  | 1    1    2    2    3   | 4     4     4     4     5     5     5     5
                  |slices["audio"] = 2:7 |slices["video"] = 7:15 ...|

    A "row" is one distinct (modality, segment) pair (row 0 is the prefix row when there is a
    prefix). Noise levels are constant within a segment, so the AdaLN modulation is computed for
    the 6 rows and gathered to the 15 tokens with `row`. `segment_start[m]` holds the first frame
    of each of modality m's rows, used to read one level per row from t[m]. Sequence modalities
    sit at (y, x) = (0, 0); prefix tokens at time 0, (0, 0) (no rotation).
    """

    names: tuple[str, ...]
    num_frames: dict[str, int]
    grids: dict[str, tuple[int, int]]
    num_prefix: int
    slices: dict[str, slice]
    row_slices: dict[str, slice]
    modality: torch.Tensor  # [N] long, -1 for prefix tokens
    frame: torch.Tensor  # [N] long, frame index within its modality, -1 for prefix tokens
    seconds: torch.Tensor  # [N] float32
    y: torch.Tensor  # [N] float32, patch row (0 for sequences and prefix)
    x: torch.Tensor  # [N] float32, patch column
    segment: torch.Tensor  # [N] long, -1 for prefix tokens
    row: torch.Tensor  # [N] long, index into the level rows
    row_modality: torch.Tensor  # [R_latent] long, modality id of each latent (non-prefix) row
    frame_segment: dict[str, torch.Tensor] = field(default_factory=dict)  # [T_m] segment id per frame
    frame_row: dict[str, torch.Tensor] = field(default_factory=dict)  # [T_m] row within the modality
    segment_start: dict[str, torch.Tensor] = field(default_factory=dict)  # [S_m] first frame of each row

    @property
    def num_tokens(self) -> int:
        return int(self.modality.shape[0])

    @property
    def num_rows(self) -> int:
        return (1 if self.num_prefix else 0) + sum(s.stop - s.start for s in self.row_slices.values())

    @property
    def device(self) -> torch.device:
        return self.modality.device

    @classmethod
    def build(
        cls,
        specs: dict[str, ModalitySpec],
        num_frames: dict[str, int],
        *,
        segment_seconds: float,
        patch_size: int,
        num_prefix: int = 0,
        modality_ids: dict[str, int] | None = None,
    ) -> TokenLayout:
        """Layout of the modalities in `num_frames` (in the order of `specs`), built on the CPU.

        Args:
            specs: every modality the model knows, in sequence order.
            num_frames: T_m of each modality present in this call (a subset of `specs`).
            modality_ids: id of each modality (default: its index in `specs`).
        """
        ids = modality_ids or {name: i for i, name in enumerate(specs)}
        names = tuple(n for n in specs if n in num_frames)
        cols: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("modality", "frame", "seconds", "y", "x", "segment", "row")
        }
        if num_prefix:
            zeros = torch.zeros(num_prefix)
            minus = torch.full((num_prefix,), -1, dtype=torch.long)
            for k, v in (
                ("modality", minus),
                ("frame", minus),
                ("seconds", zeros),
                ("y", zeros),
                ("x", zeros),
                ("segment", minus),
                ("row", torch.zeros(num_prefix, dtype=torch.long)),
            ):
                cols[k].append(v)
        row_modality: list[torch.Tensor] = []
        slices, row_slices, grids = {}, {}, {}
        frame_segment, frame_row, segment_start = {}, {}, {}
        pos, row0 = num_prefix, 1 if num_prefix else 0
        for name in names:
            spec, t_m = specs[name], int(num_frames[name])
            gh, gw = patch_grid(spec.spatial, patch_size) if spec.spatial is not None else (1, 1)
            per_frame = gh * gw
            seg = segment_ids(t_m, spec.rate_hz, segment_seconds)  # [T]
            # rows: distinct segments actually touched (a slow modality may skip segment ids)
            _, counts = torch.unique_consecutive(seg, return_counts=True)
            row_of_frame = torch.repeat_interleave(torch.arange(len(counts)), counts)  # [T]
            starts = torch.cumsum(counts, 0) - counts  # [S]
            frames = torch.arange(t_m).repeat_interleave(per_frame)  # [T * gh * gw]
            yy, xx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
            cols["modality"].append(torch.full((t_m * per_frame,), ids[name], dtype=torch.long))
            cols["frame"].append(frames)
            cols["seconds"].append(frame_seconds(t_m, spec.rate_hz)[frames])
            cols["y"].append(yy.reshape(-1).float().repeat(t_m))
            cols["x"].append(xx.reshape(-1).float().repeat(t_m))
            cols["segment"].append(seg[frames])
            cols["row"].append(row0 + row_of_frame[frames])
            slices[name] = slice(pos, pos + t_m * per_frame)
            row_slices[name] = slice(row0, row0 + len(counts))
            row_modality.append(torch.full((len(counts),), ids[name], dtype=torch.long))
            grids[name] = (gh, gw)
            frame_segment[name], frame_row[name], segment_start[name] = seg, row_of_frame, starts
            pos += t_m * per_frame
            row0 += len(counts)
        cat = {k: torch.cat(v) if v else torch.zeros(0) for k, v in cols.items()}
        return cls(
            names=names,
            num_frames={n: int(num_frames[n]) for n in names},
            grids=grids,
            num_prefix=num_prefix,
            slices=slices,
            row_slices=row_slices,
            modality=cat["modality"].long(),
            frame=cat["frame"].long(),
            seconds=cat["seconds"].float(),
            y=cat["y"].float(),
            x=cat["x"].float(),
            segment=cat["segment"].long(),
            row=cat["row"].long(),
            row_modality=torch.cat(row_modality) if row_modality else torch.zeros(0, dtype=torch.long),
            frame_segment=frame_segment,
            frame_row=frame_row,
            segment_start=segment_start,
        )

    def to(self, device: torch.device | str) -> TokenLayout:
        """The same layout with its index tensors on `device`."""
        move = {
            k: getattr(self, k).to(device)
            for k in ("modality", "frame", "seconds", "y", "x", "segment", "row", "row_modality")
        }
        move_dicts = {
            k: {n: v.to(device) for n, v in getattr(self, k).items()}
            for k in ("frame_segment", "frame_row", "segment_start")
        }
        return TokenLayout(
            names=self.names,
            num_frames=self.num_frames,
            grids=self.grids,
            num_prefix=self.num_prefix,
            slices=self.slices,
            row_slices=self.row_slices,
            **move,
            **move_dicts,
        )

    def level_rows(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """One noise level per (modality, segment) row, read at each segment's first frame: [B, R_latent]."""
        return torch.cat([t[name][:, self.segment_start[name]] for name in self.names], dim=1)

    def split(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """[B, N, D] full sequence -> {modality: [B, N_m, D]} (prefix tokens dropped)."""
        return {name: h[:, sl] for name, sl in self.slices.items()}
