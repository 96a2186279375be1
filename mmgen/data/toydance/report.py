"""`mmgen toydance report DIR`: is a made ToyDance set in sync, measured with the published metrics?

Per clip, from the files on disk (soundfile + numpy, as a user's evaluation would read them):
* tempo: librosa's `beat_track` estimate vs the true bpm; correct within 4 % or at double / half
  (`mmgen.metrics.tempo_accuracy`), and the beat F-measure (±70 ms) of librosa's beats vs the truth;
* Bailando BAS (`mmgen.metrics.bas`, variant "bailando", 30 fps) of the dance against its own beats
  and, as the chance baseline, the mean against every other clip's beats (mismatched pairs);
* EDGE's PFC (×10^4, z-up) of the dance: foot sliding while the body accelerates, lower is better.
  PFC is undefined for a dance whose root never accelerates (EDGE divides 0 by 0): such a clip is
  reported as missing (`pfc` NaN, null in report.json, with the reason in `pfc_missing`), never as a
  score, and the summary's mean leaves it out and counts it (`pfc_missing`).

Pass criteria (issue 2): tempo correct on >= 90 % of clips; mean BAS(own) >= 0.8 and >= 0.3 above
the mismatched mean. Bailando's σ = 5-frame smoothing cannot find a speed minimum within a few
frames of either end of a clip, so BAS(own) stays below 1 even for perfect sync (~0.93 on 10-s clips).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmgen.core.fileio import atomic_files, check_output_files
from mmgen.data.toydance.io import read_manifest
from mmgen.io.export import load_motion_npz, plot_mel_with_beats

logger = logging.getLogger(__name__)

TEMPO_PASS, BAS_PASS, GAP_PASS = 0.9, 0.8, 0.3


def _load(root: Path, rec: dict[str, Any]) -> tuple[np.ndarray, int, np.ndarray, float, np.ndarray]:
    import soundfile as sf

    path = root / rec["files"]["audio"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio of clip {rec['id']} is missing")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise ValueError(f"{path}: unreadable audio ({err})") from None
    motion = load_motion_npz(root / rec["files"]["motion"])
    beats = np.asarray(motion["beat_times"], dtype=np.float64)
    return audio.mean(axis=1), int(sr), motion["joints"], float(motion["fps"]), beats


def _safe_bas(joints: np.ndarray, beats: np.ndarray, fps: float) -> float:
    from mmgen.metrics import bas

    try:
        return bas(joints, beats, fps, variant="bailando")
    except ValueError:  # no beat (or no motion beat) inside a very short clip
        return math.nan


def _pfc_or_reason(joints: np.ndarray, fps: float) -> tuple[float, str | None]:
    """(PFC, None), or (NaN, why) when PFC is undefined: 0.0 would read as perfect foot contact."""
    from mmgen.metrics import pfc, yup_to_zup

    try:
        return round(pfc(yup_to_zup(joints), fps), 4), None
    except ValueError as err:  # e.g. a dance whose root never accelerates
        return math.nan, str(err).removeprefix("sequence 0: ")


def toydance_report(root: str | os.PathLike, progress: bool = True) -> dict[str, Any]:
    """Measure every clip of a made set; returns {"clips": [...], "summary": {...}}."""
    from tqdm.auto import tqdm

    from mmgen.metrics import beat_f_measure, music_beats, music_tempo, tempo_accuracy

    root = Path(root)
    records = read_manifest(root)
    loaded = [_load(root, rec) for rec in records]
    clips = []
    for rec, (audio, sr, joints, fps, beats) in tqdm(
        list(zip(records, loaded)), desc="toydance report", unit="clip", disable=not progress
    ):
        est = music_tempo(audio, sr)
        others = [b for r, (_, _, _, _, b) in zip(records, loaded) if r is not rec]
        mismatched = [_safe_bas(joints, b, fps) for b in others]
        foot, foot_missing = _pfc_or_reason(joints, fps)
        clips.append(
            {
                "id": rec["id"],
                "style": rec["style"],
                "bpm": float(rec["bpm"]),
                "librosa_bpm": round(est, 2),
                "tempo_ok": bool(tempo_accuracy(est, float(rec["bpm"])) == 1.0),
                "beat_f": round(beat_f_measure(beats, music_beats(audio, sr)), 4),
                "bas_own": round(_safe_bas(joints, beats, fps), 4),
                "bas_mismatched": round(float(np.nanmean(mismatched)), 4) if mismatched else math.nan,
                "pfc": foot,
                "pfc_missing": foot_missing,
            }
        )
    return {"root": str(root), "clips": clips, "summary": summarize(clips)}


def summarize(clips: list[dict[str, Any]]) -> dict[str, Any]:
    """Fractions and means over clips, and the issue's pass criteria."""

    def mean(key: str) -> float:
        values = np.array([c[key] for c in clips], dtype=np.float64)
        return round(float(np.nanmean(values)), 4) if np.isfinite(values).any() else math.nan

    tempo = round(float(np.mean([c["tempo_ok"] for c in clips])), 4)
    own, mis = mean("bas_own"), mean("bas_mismatched")
    gap = round(own - mis, 4) if math.isfinite(own) and math.isfinite(mis) else math.nan
    return {
        "clips": len(clips),
        "tempo_accuracy": tempo,
        "beat_f": mean("beat_f"),
        "bas_own": own,
        "bas_mismatched": mis,
        "bas_gap": gap,
        "pfc": mean("pfc"),
        "pfc_missing": sum(c.get("pfc_missing") is not None for c in clips),
        "pass": {
            "tempo_accuracy>=0.9": tempo >= TEMPO_PASS,
            "bas_own>=0.8": bool(own >= BAS_PASS),
            "bas_gap>=0.3": bool(gap >= GAP_PASS),
        },
    }


def _cell(value: float) -> str:
    return "missing" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _json_safe(value: Any) -> Any:
    """NaN (an undefined metric) -> null, so report.json is valid JSON; reasons sit beside it."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    missing = s.get("pfc_missing", 0)
    pfc_note = f" (mean of {s['clips'] - missing} clips; {missing} missing, see below)" if missing else ""
    lines = [
        f"# ToyDance report: {report['root']}",
        "",
        (
            f"{s['clips']} clips. Tempo: librosa `beat_track` within 4 % (or x2 / x0.5) of the truth. "
            "BAS: Bailando variant at 30 fps (music beats in s -> frames). PFC: EDGE, x1e4, lower is better."
        ),
        "",
        "| metric | value | criterion | pass |",
        "|---|---|---|---|",
        f"| tempo accuracy | {s['tempo_accuracy']:.3f} | >= {TEMPO_PASS} | {s['pass']['tempo_accuracy>=0.9']} |",
        f"| BAS (dance, own beats) | {s['bas_own']:.3f} | >= {BAS_PASS} | {s['pass']['bas_own>=0.8']} |",
        f"| BAS (dance, other clips' beats) | {s['bas_mismatched']:.3f} | | |",
        f"| BAS gap | {s['bas_gap']:.3f} | >= {GAP_PASS} | {s['pass']['bas_gap>=0.3']} |",
        f"| beat F-measure (librosa vs truth, ±70 ms) | {s['beat_f']:.3f} | | |",
        f"| PFC{pfc_note} | {_cell(s['pfc'])} | | |",
        "",
        "| id | style | bpm | librosa bpm | tempo ok | beat F | BAS own | BAS mismatched | PFC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report["clips"]:
        lines.append(
            f"| {c['id']} | {c['style']} | {c['bpm']:g} | {c['librosa_bpm']:.1f} | {c['tempo_ok']} | "
            f"{c['beat_f']:.3f} | {_cell(c['bas_own'])} | {_cell(c['bas_mismatched'])} | {_cell(c['pfc'])} |"
        )
    reasons = [f"- {c['id']}: PFC missing: {c['pfc_missing']}" for c in report["clips"] if c.get("pfc_missing")]
    if reasons:
        lines += ["", *reasons]
    return "\n".join(lines) + "\n"


def write_report(
    root: str | os.PathLike, report: dict[str, Any], preview: bool = True, overwrite: bool = False
) -> list[Path]:
    """Write report.json, report.md and (preview) preview_mel.png of the first clip into `root`,
    together (`atomic_files`); earlier report files are replaced only with `overwrite`."""
    root = Path(root)
    names = ["report.json", "report.md", *(["preview_mel.png"] if preview else [])]
    check_output_files(root, names, overwrite=overwrite, arg="toydance report")
    with atomic_files(root, overwrite=overwrite, arg="toydance report") as tmp:
        (tmp / "report.json").write_text(json.dumps(_json_safe(report), indent=2, sort_keys=True, allow_nan=False) + "\n")
        (tmp / "report.md").write_text(report_markdown(report))
        if preview:
            from mmgen.metrics import motion_beats

            rec = read_manifest(root)[0]
            audio, sr, joints, fps, beats = _load(root, rec)
            plot_mel_with_beats(
                tmp / "preview_mel.png",
                audio,
                sr,
                music_beats=beats,
                motion_beats=motion_beats(joints, fps) / fps,
                title=f"{rec['id']}: {rec['caption']}",
            )
    written = [root / n for n in names]
    return written
