"""Data sets: the embedded ToyDance generator, readers of real data (AIST++, video folders), caches.

Names load lazily so that importing one reader does not import every other one.

    ToyDance    ToyDanceClip, STYLES, generate_clip, make_dataset, ToyDanceDataset,
                InMemoryToyDance, collate_toydance, clip_plan
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "mmgen.data.toydance": ("ToyDanceClip", "STYLES", "generate_clip"),
    "mmgen.data.toydance_io": (
        "make_dataset",
        "ToyDanceDataset",
        "InMemoryToyDance",
        "collate_toydance",
        "clip_plan",
        "read_manifest",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mmgen.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
