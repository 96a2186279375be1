"""Conditions a pipeline builds from its own inputs: time-aligned streams of a given modality.

A conditioner of target "aligned" or "map" whose guidance group is a modality (the video sync
stream, group "video"; pose maps of the dance, group "motion") reads that modality's raw input
(frames, joints) and is present only where the task
GIVES it, exactly as `DiTModule` trained it: elsewhere it would hand the model the answer, and
where the video is generated or absent its frames get the learned null.

    video (raw, given)  ─► conditioner.encode ─► Features [B, S_k] at the conditioner's rate
    start["video"] == 0 ─► stream_given_mask  ─► mask &= given          (interpolate: the ends)
    ─► `mmgen.pipeline.conditions`           ─► each sampling window's GroupedCond (its seconds)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from mmgen.conditioning.base import TIME_AXIS_TARGETS, Features
from mmgen.conditioning.encoder import ConditionEncoder
from mmgen.dit.streams import stream_frames, stream_given_mask
from mmgen.modalities.media import MediaModality


def modality_streams(condition: ConditionEncoder, modalities: Mapping[str, MediaModality]) -> dict[str, str]:
    """{conditioner name: modality} for the aligned conditioners made from a pipeline modality."""
    return {
        name: c.group
        for name, c in condition.conditioners.items()
        if c.target in TIME_AXIS_TARGETS and c.group in modalities
    }


def stream_features(
    condition: ConditionEncoder,
    modalities: Mapping[str, MediaModality],
    raw: Mapping[str, torch.Tensor],
    start: Mapping[str, torch.Tensor],
    batch: int,
    seconds: float,
) -> dict[str, Features]:
    """Features of every modality stream, masked to where its modality is GIVEN (start == 0);
    a stream whose modality is not given at all is absent (mask False) for the whole clip."""
    out: dict[str, Features] = {}
    for name, modality in modality_streams(condition, modalities).items():
        c = condition.conditioners[name]
        frames = stream_frames(seconds, c.rate_hz)  # type: ignore[arg-type]
        if modality in raw and modality in start and bool((start[modality] == 0).any()):
            spec = modalities[modality].spec
            keys: dict[str, Any] = {c.keys[0]: raw[modality]}
            fps_key = getattr(c, "fps_key", None)
            if fps_key is not None:
                keys[fps_key] = float(modalities[modality].raw_rate)
            f = c.encode(keys, condition.device)
            given = stream_given_mask(start[modality].to(f.mask.device).expand(batch, -1), spec.rate_hz,
                                      f.mask.shape[1], c.rate_hz)  # [B, S_k]
            out[name] = Features(f.values.expand(batch, *f.values.shape[1:]), f.mask.expand(batch, -1) & given)
        else:
            out[name] = c.absent(batch, frames)
    return out
