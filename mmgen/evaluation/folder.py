"""`evaluate_folder`: metrics of a folder of generated files against a folder of references.

Files pair by stem (`x.wav` / `x.npz` in both folders; other files, e.g. mp4 and png, are ignored):
every generated stem needs a reference stem (an unpaired one is an error naming it); references
without a generated counterpart are left out. Per pair, what
the two sides hold decides the metrics (all from `mmgen.evaluation.measures`):

    gen wav + ref wav   music_*   generated vs reference music (beat F-measure, tempo match)
    gen wav + ref npz   d2m_*     generated music vs the reference dance: its beat_times if the npz
                                  has them (ToyDance), else its motion beats (music_dance_sync)
    gen npz + ref wav   m2d_*     the generated dance vs the reference music (BAS, beat F-measure)
    gen wav + gen npz   sync_*    the generated music vs the generated dance
    gen npz / ref npz   pfc, ref_pfc   EDGE PFC (SMPL-24 only)
    all wav pairs       loris_*   LORIS BCS / BHS / F1 over the set (each pair cut to its shorter side)

`mean` averages each metric over the pairs where it is defined (finite); `count` says over how many.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmgen.core.fileio import atomic_files, check_output_files
from mmgen.evaluation import loris_bcs_bhs, music_agreement, music_dance_sync, pfc

logger = logging.getLogger(__name__)

EXTENSIONS = (".wav", ".npz")
TABLE_KEYS = (
    "music_beat_f",
    "music_tempo_match",
    "d2m_beat_f",
    "d2m_tempo_match",
    "d2m_bas",
    "m2d_bas",
    "m2d_beat_f",
    "sync_beat_f",
    "sync_bas",
    "pfc",
    "ref_pfc",
)


def _scan(directory: Path, what: str) -> dict[str, dict[str, Path]]:
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: {what} folder not found")
    stems: dict[str, dict[str, Path]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in EXTENSIONS:
            stems.setdefault(path.stem, {})[path.suffix.lower()] = path
    return stems


def _pair(
    gen: dict[str, dict[str, Path]], ref: dict[str, dict[str, Path]], gen_dir: Path, ref_dir: Path
) -> list[str]:
    """Stems to evaluate: every generated stem needs a reference; extra references are left out."""
    if not gen:
        raise ValueError(f"{gen_dir}: no .wav or .npz files to evaluate")
    unpaired = sorted(set(gen) - set(ref))
    if unpaired:
        names = ", ".join(f"{s}{''.join(sorted(gen[s]))}" for s in unpaired[:5]) + (
            " ..." if len(unpaired) > 5 else ""
        )
        raise ValueError(
            f"{len(unpaired)} generated file stem(s) have no reference of the same name in {ref_dir}: {names}"
        )
    extra = len(set(ref) - set(gen))
    if extra:
        logger.info("%d reference stems in %s have no generated counterpart; left out", extra, ref_dir)
    return sorted(gen)


def _read_audio(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    from mmgen.io.audio import load_audio

    try:
        sr = int(sf.info(str(path)).samplerate)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise ValueError(f"{path}: cannot read audio ({err})") from None
    return load_audio(path, sr), sr


def _read_motion(path: Path) -> dict[str, Any]:
    from mmgen.io.export import load_motion_npz

    data = load_motion_npz(path)
    joints = np.asarray(data["joints"], dtype=np.float32)
    if joints.ndim != 3 or joints.shape[-1] != 3 or len(joints) < 3:
        raise ValueError(f"{path}: joints must be [T >= 3, J, 3], got {joints.shape}")
    beats = np.asarray(data["beat_times"], dtype=np.float64).reshape(-1) if "beat_times" in data else None
    return {"joints": joints, "fps": float(data["fps"]), "beat_times": beats}


def _prefixed(prefix: str, values: dict[str, float], keys: tuple[str, ...]) -> dict[str, float]:
    return {f"{prefix}_{k}": float(values[k]) for k in keys}


def evaluate_pair(gen: dict[str, Path], ref: dict[str, Path]) -> tuple[dict[str, float], tuple | None]:
    """Metrics of one pair of stems; also (gen audio, sr, ref audio, ref sr) for the set-level LORIS scores."""
    m: dict[str, float] = {}
    ga = _read_audio(gen[".wav"]) if ".wav" in gen else None
    ra = _read_audio(ref[".wav"]) if ".wav" in ref else None
    gm = _read_motion(gen[".npz"]) if ".npz" in gen else None
    rm = _read_motion(ref[".npz"]) if ".npz" in ref else None
    if ga is not None and ra is not None:
        m.update(_prefixed("music", music_agreement(ga[0], ga[1], ra[0], ra[1]), ("beat_f", "tempo_match")))
    if ga is not None and rm is not None:
        sync = music_dance_sync(ga[0], ga[1], rm["joints"], rm["fps"], dance_beats=rm["beat_times"])
        m.update(_prefixed("d2m", sync, ("beat_f", "tempo_match", "bas")))
    if gm is not None and ra is not None:
        m.update(_prefixed("m2d", music_dance_sync(ra[0], ra[1], gm["joints"], gm["fps"]), ("bas", "beat_f")))
    if ga is not None and gm is not None:
        m.update(
            _prefixed("sync", music_dance_sync(ga[0], ga[1], gm["joints"], gm["fps"]), ("beat_f", "bas"))
        )
    for key, motion in (("pfc", gm), ("ref_pfc", rm)):
        if motion is not None and motion["joints"].shape[1] == 24:
            m[key] = pfc(motion["joints"], motion["fps"])["pfc"]
    pair = None
    if (
        ga is not None and ra is not None
    ):  # LORIS needs the reference at least as long: cut both to the shorter
        seconds = min(len(ga[0]) / ga[1], len(ra[0]) / ra[1])
        pair = (ga[0][: round(seconds * ga[1])], ga[1], ra[0][: round(seconds * ra[1])], ra[1])
    return m, pair


def evaluate_folder(
    gen_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Evaluate every pair, write JSON to `out` (default <gen_dir>/metrics.json) and return it.

    NaN (undefined) values are written as null. An existing `out` is replaced only if an earlier
    evaluation wrote it and `overwrite` is set (`mmgen.core.fileio.atomic_files`).
    """
    gen_dir, ref_dir = Path(gen_dir), Path(ref_dir)
    gen, ref = _scan(gen_dir, "generated"), _scan(ref_dir, "reference")
    stems = _pair(gen, ref, gen_dir, ref_dir)
    path = Path(out) if out is not None else gen_dir / "metrics.json"
    check_output_files(path.parent, [path.name], overwrite=overwrite)  # before the work
    items: dict[str, dict[str, float]] = {}
    pairs = []
    for stem in tqdm(stems, desc="evaluating", unit="pair", disable=not progress):
        try:
            items[stem], pair = evaluate_pair(gen[stem], ref[stem])
        except ValueError as err:
            raise ValueError(f"pair {stem!r}: {err}") from None
        if pair is not None:
            pairs.append(pair)
    keys = sorted({k for v in items.values() for k in v})
    mean, count = {}, {}
    for k in keys:
        vals = [v[k] for v in items.values() if k in v and math.isfinite(v[k])]
        mean[k], count[k] = (float(np.mean(vals)) if vals else math.nan), len(vals)
    result: dict[str, Any] = {
        "gen_dir": str(gen_dir),
        "ref_dir": str(ref_dir),
        "items": items,
        "mean": mean,
        "count": count,
    }
    if pairs:
        rates = {(p[1], p[3]) for p in pairs}
        if len(rates) == 1:
            sr, ref_sr = rates.pop()
            loris = loris_bcs_bhs([p[0] for p in pairs], [p[2] for p in pairs], sr, ref_sr)
        else:  # resampled per pair: LORIS takes one rate per side
            loris = _loris_mixed(pairs)
        result["loris"], result["loris_pairs"] = loris, len(pairs)
    with atomic_files(path.parent, "evaluation", overwrite=overwrite) as tmp:
        (tmp / path.name).write_text(json.dumps(_nan_to_none(result), indent=1, sort_keys=False) + "\n")
    result["path"] = str(path)
    return result


def _loris_mixed(pairs: list[tuple]) -> dict[str, float]:
    from mmgen.evaluation import LORIS_SAMPLE_RATE
    from mmgen.io.audio import resample_audio

    gens = [resample_audio(p[0], p[1], LORIS_SAMPLE_RATE) for p in pairs]
    refs = [resample_audio(p[2], p[3], LORIS_SAMPLE_RATE) for p in pairs]
    return loris_bcs_bhs(gens, refs, LORIS_SAMPLE_RATE)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    return value


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table of the mean metrics (with how many pairs each covers) and the LORIS scores."""
    rows = ["| metric | mean | pairs |", "|---|---:|---:|"]
    order = [k for k in TABLE_KEYS if k in result["mean"]] + sorted(set(result["mean"]) - set(TABLE_KEYS))
    for k in order:
        v = result["mean"][k]
        rows.append(f"| {k} | {'n/a' if not math.isfinite(v) else f'{v:.4g}'} | {result['count'][k]} |")
    for k, v in result.get("loris", {}).items():
        n = result["loris_pairs"]
        rows.append(f"| loris_{k} | {'n/a' if not math.isfinite(v) else f'{v:.4g}'} | {n} |")
    return "\n".join(rows) + "\n"
