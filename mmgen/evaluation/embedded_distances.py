"""FAD / FVD over folders with a user-supplied embedder (mmgen downloads no weights).

fad_against_music   each generated .wav against the same span of its AIST music (`<music_dir>/<id>.wav`,
                    the id from the file name), frames of all clips pooled (`mmgen.metrics.fad`)
fvd_of_folders      the .mp4 files of two folders (`mmgen.metrics.fvd`)
load_embedder       "package.module:name" -> the callable (docs/evaluation.md: VGGish, CLAP, I3D)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmgen.core.errors import MmgenError
from mmgen.evaluation.aistpp_files import names_in


def load_embedder(spec: str) -> Callable[..., Any]:
    """`package.module:name` -> the callable it names (a class is instantiated without arguments)."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"embedder must be given as package.module:name, got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"embedder {spec!r}: {err}") from None
    obj = obj() if isinstance(obj, type) else obj
    if not callable(obj):
        raise MmgenError(f"embedder {spec!r} is not callable")
    return obj


def fad_against_music(
    gen_dir: Path, music_dir: Path | None, embedder: Callable[..., Any], sr: int
) -> dict[str, Any]:
    from mmgen.io.audio import load_audio
    from mmgen.metrics.frechet import fad

    if music_dir is None:
        raise ValueError("FAD needs the AIST music folder (--music-dir)")
    gen, real = [], []
    for path in sorted(p for p in gen_dir.iterdir() if p.suffix.lower() == ".wav"):
        y = load_audio(path, sr)
        music = load_audio(music_dir / f"{names_in(path.name)[1]}.wav", sr)[: len(y)]
        gen.append(y[: len(music)])
        real.append(music)
    if len(gen) < 2:
        raise ValueError(f"{gen_dir}: FAD needs at least 2 generated .wav files, found {len(gen)}")
    return {"fad": fad(real, gen, embedder, sr), "clips": len(gen), "sample_rate": sr}


def fvd_of_folders(gen_dir: Path, real_dir: Path, embedder: Callable[..., Any]) -> dict[str, Any]:
    from mmgen.metrics.frechet import fvd
    from mmgen.modalities.video_codec import read_video

    gen = [read_video(p)[0] for p in sorted(gen_dir.glob("*.mp4"))]
    real = [read_video(p)[0] for p in sorted(Path(real_dir).glob("*.mp4"))]
    if len(gen) < 2 or len(real) < 2:
        raise ValueError(f"FVD needs at least 2 videos per side, got {len(gen)} generated, {len(real)} real")
    return {"fvd": fvd(real, gen, embedder), "generated": len(gen), "real": len(real)}
