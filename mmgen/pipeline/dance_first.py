"""Dance first, then film it: two sampling passes for a pipeline whose DiT draws video from pose maps.

A DiT with a map input (`mmgen.dit.map_stream`) reads the pose maps of a GIVEN dance only
(`mmgen.pipeline.streams`). When a task generates the whole video and does not give the dance
(audio2video, joint generation), one pass would leave the maps absent; instead

    pass 1: the task with the video ABSENT and the dance GEN      -> the dance (and the rest)
    pass 2: every other modality GIVEN (pass 1's output), the video GEN, drawn from the dance's maps

and the result reads as one generation of the original task: what pass 1 made is marked
generated, with its latents. Tasks that give the dance, or keep given video frames
(interpolate, continue, inpaint), run in one pass as before.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mmgen.diffusion.tasks import GEN, GIVEN, Span, Task
from mmgen.pipeline.generation import Generation


def map_modalities(pipe: Any) -> tuple[str, str] | None:
    """(the modality the pose maps are drawn from, the video they feed), or None without maps."""
    if pipe.condition is None or getattr(pipe.dit, "maps", None) is None:
        return None
    for c in pipe.condition.conditioners.values():
        if c.target == "map" and c.group in pipe.modalities:
            return c.group, pipe.dit.maps.target
    return None


def _whole(task: Task, modality: str) -> str | None:
    """The role kind of `modality` if one role covers the whole clip ("absent" if not in the task)."""
    spans = task.spans.get(modality)
    if not spans:
        return "absent"
    if len(spans) == 1 and spans[0].start == 0.0 and spans[0].end is None:
        return spans[0].role.kind
    return None


def dance_first_stages(pipe: Any, task: Task) -> tuple[Task, Task] | None:
    """(pass 1, pass 2) when `task` generates the whole video without a given dance; else None."""
    pair = map_modalities(pipe)
    if pair is None:
        return None
    source, target = pair
    if _whole(task, target) != "gen" or _whole(task, source) not in ("absent", "gen"):
        return None
    first = {m: spans for m, spans in task.spans.items() if m != target}
    first[source] = (Span(0.0, None, GEN),)
    second = {m: (Span(0.0, None, GIVEN),) for m in first}
    second[target] = (Span(0.0, None, GEN),)
    return Task(f"{task.name} (pass 1: {source})", first), Task(task.name, second)


def raw_outputs(pipe: Any, generation: Generation, modalities: Any) -> dict[str, Any]:
    """{modality: raw output array} of `generation` for the named modalities (by their kind, as
    `mmgen.pipeline.media.to_generation` stores them)."""
    fields = {"motion": "joints", "video": "frames"}  # every other kind is audio
    return {m: getattr(generation, fields.get(pipe.modalities[m].kind, "audio")) for m in modalities}


def merge_passes(first: Generation, second: Generation, task: Task, given: tuple[str, ...]) -> Generation:
    """Pass 2's output, reading as one generation of `task`: pass 1's generated marks and latents."""
    generated = {**second.generated, **{m: v for m, v in first.generated.items() if m not in given}}
    latents = {**second.latents, **{m: v for m, v in first.latents.items() if m not in given}}
    return dataclasses.replace(second, task=task.name, given=given, generated=generated, latents=latents)
