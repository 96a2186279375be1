"""`Pipeline.generate`'s conditions: text, melody, image, quality and timing -> the DiT's Cond.

    ConditionInputs(text, melody, image, quality)          what the caller gives (checked here)
        │ raw_condition_batch: each conditioner of the pipeline's ConditionEncoder gets its input
        │ under its own batch key, by kind:
        │     T5 / CLIP text     <- text                  [B] strings
        │     MelodyConditioner  <- melody, resampled to its sample rate   [B, S]
        │     CLIPImage          <- image as a one-frame clip              [B, 1, H, W, 3]
        │     QualityConditioner <- quality                [B] scores
        │     TimingConditioner  <- seconds_start / seconds_total of the window   (always given)
        │     a stream made from a modality (the video sync stream) <- that modality where GIVEN
        │         (`mmgen.pipeline.streams`)
        │ a conditioner with nothing given is "absent": it sits at its null embedding
        ▼
    ConditionEncoder.grouped(features, absent=...) -> GroupedCond: the Cond of every set of dropped
    guidance groups, so `guidance={"melody": 3, "text": 2}` guides each group on its own.

Timing follows Stable Audio: a single window gets (0, seconds); long-form window k gets
(its start, the whole clip's seconds), so the model knows where in the piece it is. The frozen
features (T5, CLIP, chroma) are computed once per call; only the timing tokens change per window.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmgen.conditioning.base import TIME_AXIS_TARGETS, Features
from mmgen.conditioning.clip_image import CLIPImageConditioner
from mmgen.conditioning.encoder import ConditionEncoder
from mmgen.conditioning.melody import MelodyConditioner
from mmgen.conditioning.quality import QualityConditioner
from mmgen.conditioning.text import CLIPTextConditioner, T5TextConditioner
from mmgen.conditioning.timing import TimingConditioner
from mmgen.core.cond import GroupedCond
from mmgen.core.limits import MAX_SECONDS
from mmgen.dit.streams import stream_frames
from mmgen.modalities.media import MediaModality
from mmgen.pipeline.streams import modality_streams, stream_features

TEXT_KINDS = (T5TextConditioner, CLIPTextConditioner)
TIMING_KEYS = ("seconds_start", "seconds_total")
INPUT_OF = {"text": TEXT_KINDS, "melody": (MelodyConditioner,), "image": (CLIPImageConditioner,),
            "quality": (QualityConditioner,)}


@dataclass(frozen=True)
class ConditionInputs:
    """What `generate` is conditioned on besides the given media (None: not given).

    Args:
        text: a caption (T5 / CLIP text conditioners).
        melody: a mono reference waveform [S] float (or [1, S]) at `melody_rate` Hz.
        melody_rate: the melody's sample rate.
        image: a reference image uint8 [H, W, 3] (or one frame [1, H, W, 3]).
        quality: the quality score asked for (e.g. 5 of a 1-5 MOS scale: the best).
    """

    text: str | None = None
    melody: Any = None
    melody_rate: int | None = None
    image: Any = None
    quality: float | None = None

    def __post_init__(self) -> None:
        if self.text is not None and not isinstance(self.text, str):
            raise TypeError(f"caption / text must be a string, got {type(self.text).__name__}")
        if self.melody is not None:
            wave = torch.as_tensor(np.asarray(self.melody) if not isinstance(self.melody, torch.Tensor) else self.melody)
            wave = wave[0] if wave.ndim == 2 and wave.shape[0] == 1 else wave
            if wave.ndim != 1 or not wave.is_floating_point() or wave.numel() == 0:
                raise ValueError(f"melody must be a mono float waveform [S], got {wave.dtype} {tuple(wave.shape)}")
            if not bool(torch.isfinite(wave).all()):
                raise ValueError("melody holds NaN or infinite samples")
            rate = self.melody_rate
            if isinstance(rate, bool) or not isinstance(rate, int) or not 1000 <= rate <= 384_000:
                raise ValueError(f"melody_rate must be the melody's sample rate in Hz (1000-384000), got {rate!r}")
            if wave.numel() / rate > MAX_SECONDS:
                raise ValueError(f"melody is {wave.numel() / rate:.0f} s long, more than {MAX_SECONDS} s")
            object.__setattr__(self, "melody", wave.float().cpu())
        if self.image is not None:
            img = torch.as_tensor(np.asarray(self.image) if not isinstance(self.image, torch.Tensor) else self.image)
            img = img[None] if img.ndim == 3 else img
            if img.dtype != torch.uint8 or img.ndim != 4 or img.shape[0] != 1 or img.shape[-1] != 3 or min(img.shape[1:3]) < 1:
                raise ValueError(f"image must be uint8 [H, W, 3] RGB, got {img.dtype} {tuple(img.shape)}")
            object.__setattr__(self, "image", img.cpu())
        if self.quality is not None:
            q = self.quality
            if isinstance(q, bool) or not isinstance(q, (int, float)) or not math.isfinite(q):
                raise ValueError(f"quality must be a finite number, got {q!r}")
            object.__setattr__(self, "quality", float(q))

    def given(self) -> list[str]:
        return [k for k in INPUT_OF if getattr(self, k) is not None]


def check_inputs(encoder: ConditionEncoder | None, inputs: ConditionInputs) -> None:
    """Every given condition has a conditioner that reads it (else a ValueError naming it)."""
    for name in inputs.given():
        if encoder is None:
            what = "caption" if name == "text" else name
            raise ValueError(f"{what} given, but this pipeline has no condition encoder (no {name} conditioning)")
        if not any(isinstance(c, INPUT_OF[name]) for c in encoder.conditioners.values()):
            kinds = sorted(type(c).__name__ for c in encoder.conditioners.values())
            raise ValueError(f"{name} given, but the pipeline's condition encoder has no {name} conditioner (it has {kinds})")


def _resample(wave: torch.Tensor, rate: int, target: int) -> torch.Tensor:
    from mmgen.io.audio import resample_audio

    return torch.from_numpy(resample_audio(wave.numpy(), int(rate), int(target))) if rate != target else wave


def input_kind(name: str, c: Any) -> str:
    """What `generate` feeds a conditioner: "text", "melody", "image", "quality" or "timing"."""
    if isinstance(c, TimingConditioner):
        bad = sorted(set(c.keys) - set(TIMING_KEYS))
        if bad:
            raise ValueError(f"conditioner {name!r} reads {bad}; generate() supplies timing as {list(TIMING_KEYS)}")
        return "timing"
    for kind, classes in INPUT_OF.items():
        if isinstance(c, classes):
            return kind
    raise ValueError(
        f"the pipeline's conditioner {name!r} ({type(c).__name__}) reads {list(c.keys)}, which generate() cannot supply"
    )


def absent_conditioners(encoder: ConditionEncoder, inputs: ConditionInputs, streams: Collection[str] = ()) -> set[str]:
    """Conditioners whose input the caller did not give (they take their null embedding)."""
    out = set()
    for name, c in encoder.conditioners.items():
        if name not in streams:
            kind = input_kind(name, c)
            if kind != "timing" and getattr(inputs, kind) is None:
                out.add(name)
    return out


def given_groups(
    encoder: ConditionEncoder | None,
    inputs: ConditionInputs,
    modalities: Mapping[str, MediaModality],
    start: Mapping[str, torch.Tensor],
) -> frozenset[str]:
    """Guidance groups with a given condition: a conditioner with its input (timing alone is not
    one), or a modality stream whose modality has GIVEN frames."""
    if encoder is None:
        return frozenset()
    streams = modality_streams(encoder, modalities)
    absent = absent_conditioners(encoder, inputs, streams)
    groups = {
        encoder.group_of[n]
        for n, c in encoder.conditioners.items()
        if n not in streams and n not in absent and not isinstance(c, TimingConditioner)
    }
    groups |= {encoder.group_of[n] for n, m in streams.items() if m in start and bool((start[m] == 0).any())}
    return frozenset(groups)


def raw_condition_batch(encoder: ConditionEncoder, inputs: ConditionInputs, batch: int, absent: Collection[str]) -> dict[str, Any]:
    """The raw batch for the present conditioners' `encode` (timing is filled per window)."""
    values: dict[str, Any] = {}
    for name, c in encoder.conditioners.items():
        if name in absent or isinstance(c, TimingConditioner) or not any(isinstance(c, k) for k in INPUT_OF.values()):
            continue
        if isinstance(c, TEXT_KINDS):
            values[c.key] = [inputs.text] * batch
        elif isinstance(c, MelodyConditioner):
            wave = _resample(inputs.melody, int(inputs.melody_rate), c.chroma.sample_rate)  # [S]
            values[c.key] = wave[None].expand(batch, -1)
        elif isinstance(c, CLIPImageConditioner):
            values[c.key] = inputs.image[None].expand(batch, *inputs.image.shape)  # [B, 1, H, W, 3]
        elif isinstance(c, QualityConditioner):
            values[c.key] = [inputs.quality] * batch
    return values


class WindowConditions:
    """The GroupedCond of each sampling window, from frozen features computed once.

    Args:
        encoder: the pipeline's ConditionEncoder.
        inputs: the caller's conditions.
        batch: examples drawn.
        seconds: the whole clip's length (seconds_total of every window).
        modalities, raw, start: the pipeline's modalities, the raw inputs and the task's start
            levels, for streams made from a given modality (`mmgen.pipeline.streams`).
    """

    def __init__(
        self,
        encoder: ConditionEncoder,
        inputs: ConditionInputs,
        batch: int,
        seconds: float,
        modalities: Mapping[str, MediaModality],
        raw: Mapping[str, torch.Tensor],
        start: Mapping[str, torch.Tensor],
    ) -> None:
        self.encoder, self.batch, self.seconds = encoder, batch, float(seconds)
        streams = modality_streams(encoder, modalities)
        self.absent = absent_conditioners(encoder, inputs, streams)
        values = raw_condition_batch(encoder, inputs, batch, self.absent)
        self.timing = {n for n, c in encoder.conditioners.items() if isinstance(c, TimingConditioner)}
        device = encoder.device
        self.features: dict[str, Features] = {
            n: c.encode(values, device)
            for n, c in encoder.conditioners.items()
            if n not in self.absent and n not in self.timing and n not in streams
        }
        self.features.update(stream_features(encoder, modalities, raw, start, batch, self.seconds))
        rate = encoder.aligned_rate_hz
        has_stream = any(c.target in TIME_AXIS_TARGETS for c in encoder.conditioners.values())
        self.aligned_frames = stream_frames(self.seconds, rate) if has_stream and rate else None

    def window(self, start: float, end: float) -> GroupedCond:
        """The conditions of the window [start, end) seconds with timing (start, clip seconds);
        aligned streams stay over the whole clip (the samplers cut them per window)."""
        timing = {"seconds_start": [float(start)] * self.batch, "seconds_total": [self.seconds] * self.batch}
        features = dict(self.features)
        for n in self.timing:
            features[n] = self.encoder.conditioners[n].encode(timing, self.encoder.device)
        return self.encoder.grouped(
            features=features, aligned_frames=self.aligned_frames, absent=self.absent, batch_size=self.batch
        )
