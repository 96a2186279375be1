"""Data sets: the embedded ToyDance generator, readers of real data (AIST++, video folders), caches.

Names load lazily so that importing one reader does not import every other one.

    ToyDance    ToyDanceClip, STYLES, generate_clip, make_dataset, ToyDanceDataset,
                InMemoryToyDance, collate_toydance, clip_plan
"""

from __future__ import annotations

from mmgen.core.lazy import lazy_exports

_EXPORTS = {
    "mmgen.data.toydance.clip": ("ToyDanceClip", "STYLES", "generate_clip"),
    "mmgen.data.toydance.io": (
        "make_dataset",
        "ToyDanceDataset",
        "InMemoryToyDance",
        "collate_toydance",
        "clip_plan",
        "read_manifest",
    ),
}
__all__ = [
    "STYLES",
    "InMemoryToyDance",
    "ToyDanceClip",
    "ToyDanceDataset",
    "clip_plan",
    "collate_toydance",
    "generate_clip",
    "make_dataset",
    "read_manifest",
]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
