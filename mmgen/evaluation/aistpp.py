"""`mmgen eval --protocol aistpp GEN_DIR --gt AIST_ROOT`: the AIST++ music-to-dance table of FACT,
Bailando, EDGE and LODGE (FID_k, FID_g, Div_k, Div_g, BAS), from the files those projects write.

The protocol, with its sources (Bailando = lisiyao21/Bailando, FACT = google-research/mint):

* generated dances: one per test sequence (its music); files named after the sequence
  (`gBR_sBM_cAll_d04_mBR0_ch01...`) or at least its music id (`mBR0`); layouts in
  `mmgen.evaluation.aistpp_files`. Joints are SMPL-24, y-up, metres, resampled to **60 fps**.
  The split is `crossmodal_test` (FACT's 20 sequences); Bailando generates for test + val
  (`_prepro_aistpp.py` puts both in its test set): `splits=("test", "val")`.
* FID / Div features: each generated dance is cut to its first **20 s** (`pred_position[:1200]`,
  Bailando `utils/metrics_new.py`; FACT: the 1200 frames after its 120-frame seed), "zero-started"
  (the first frame's root subtracted) and reduced to the AIST++ API kinetic (72-d) and geometric
  (32-d) features (`mmgen.metrics.aist_features`).
* reference set: **every AIST++ motion** minus `ignore_list.txt`, whole sequences, zero-started
  (`extract_aist_features.py` of Bailando and FACT run over all sequences of the release, not only the
  test split; LODGE issue 16 confirms the setting). Joints = SMPL (male) FK of
  (smpl_poses, smpl_trans / smpl_scaling). `reference="test"` etc. restricts it to a split.
* FID = Fréchet distance after normalising both sets with the reference set's mean / std
  (Bailando eps 1e-5); Div = mean pairwise distance of the normalised generated features;
  `div_*_gt` is the reference set's own (Bailando's `div_k_gt`).
* BAS (Bailando `utils/beat_align_score.py`): motion beats = minima of the gaussian (sigma 5)
  smoothed mean joint speed of the **whole** generated dance at 60 fps; music beats = librosa
  `beat_track` on the onset envelope (median aggregate) of the percussive part (HPSS) of the music
  at 30,720 Hz, hop 512 (= 60 frames/s, `_prepro_aistpp.py` / `extractor.py`), kept while inside
  the dance; BAS = mean over music beats of exp(-d^2 / 18) (d in frames). It assumes the dance
  starts with the music (true for FACT / Bailando outputs; EDGE's `test.py` starts at a random slice
  and does not store which).
* ground-truth row: the split's real sequences scored as if generated (20-s cut, BAS on the whole).

Optional set-level audio / video scores take a user-supplied embedder (no weights are downloaded):
FAD of generated .wav files against the same span of their AIST music, FVD of generated .mp4 files
against a folder of real videos (see docs/evaluation.md for VGGish / CLAP / I3D).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmgen.core.fileio import atomic_files
from mmgen.evaluation.aistpp_files import (
    AIST_FPS,
    GeneratedDance,
    is_generated_file,
    read_generated,
)
from mmgen.evaluation.embedded_distances import fad_against_music, fvd_of_folders
from mmgen.metrics.aist_features import geometric_features, kinetic_features
from mmgen.metrics.fid import BAILANDO_EPS, diversity, prepare_sequence
from mmgen.metrics.frechet import frechet_distance

logger = logging.getLogger(__name__)

BAILANDO_MUSIC_SR = 30720  # 512-sample hop = 60 frames per second
METRICS = ("fid_k", "fid_g", "div_k", "div_g", "bas")


@dataclass(frozen=True)
class AISTPPProtocol:
    """The settings of the AIST++ table (defaults: Bailando's, on FACT's test split)."""

    seconds: float = 20.0
    splits: tuple[str, ...] = ("test",)
    reference: str = "all"
    zero_start: bool = True

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"seconds must be positive, got {self.seconds}")
        bad = [s for s in self.splits if s not in ("train", "val", "test")] or (
            [] if self.splits else ["(none)"]
        )
        if bad:
            raise ValueError(f"splits must be among train, val, test; got {list(self.splits)}")
        if self.reference not in ("all", "train", "val", "test"):
            raise ValueError(f"reference must be all, train, val or test, got {self.reference!r}")


def bailando_music_beats(audio: np.ndarray, sr: int) -> np.ndarray:
    """Bailando's music beats (seconds, on the 60-fps grid) of a mono waveform (see the module docstring)."""
    import librosa

    from mmgen.core.numba_cache import warm_librosa
    from mmgen.io.audio import resample_audio

    warm_librosa()  # beat_track's kernels: compiled under mmgen's cache lock, not raced
    y = resample_audio(np.asarray(audio, dtype=np.float32), int(sr), BAILANDO_MUSIC_SR)
    _, percussive = librosa.effects.hpss(y)
    envelope = librosa.onset.onset_strength(y=percussive, sr=BAILANDO_MUSIC_SR, aggregate=np.median)
    _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=BAILANDO_MUSIC_SR)
    return np.asarray(frames, dtype=np.float64) / AIST_FPS


class MusicBeats:
    """Bailando music beats per AIST music id, read once from `<music_dir>/<id>.wav`."""

    def __init__(self, music_dir: Path | None) -> None:
        self.music_dir, self._beats = music_dir, {}

    def __call__(self, music: str) -> np.ndarray:
        if self.music_dir is None:
            raise ValueError("no music folder (pass music_dir / --music-dir: the AIST music wavs)")
        if music not in self._beats:
            from mmgen.io.audio import load_audio

            audio = load_audio(self.music_dir / f"{music}.wav", BAILANDO_MUSIC_SR)
            self._beats[music] = bailando_music_beats(audio, BAILANDO_MUSIC_SR)
        return self._beats[music]


def features(joints: np.ndarray, seconds: float | None, zero_start: bool) -> tuple[np.ndarray, np.ndarray]:
    """(kinetic [72], geometric [32]) of one 60-fps y-up sequence, cut to `seconds` (None: whole)."""
    p = prepare_sequence(joints, AIST_FPS, max_seconds=seconds, zero_start=zero_start)
    return kinetic_features(p, fps=AIST_FPS).astype(np.float64), geometric_features(p, fps=AIST_FPS).astype(
        np.float64
    )


def _bas_or_reason(
    joints: np.ndarray, beats: Callable[[str], np.ndarray], music: str
) -> tuple[float, str | None]:
    from mmgen.metrics import bas

    try:
        return bas(joints, beats(music), AIST_FPS, variant="bailando"), None
    except (ValueError, FileNotFoundError) as err:
        return math.nan, str(err)


def _scores(
    gen_k: np.ndarray, gen_g: np.ndarray, ref_k: np.ndarray, ref_g: np.ndarray, bas: list[float]
) -> dict:
    from mmgen.metrics.fid import normalize_by

    out: dict[str, Any] = {}
    for tag, gen, ref in (("k", gen_k, ref_k), ("g", gen_g, ref_g)):
        gen_n, ref_n = normalize_by(ref, gen, ref)
        out[f"fid_{tag}"] = frechet_distance(gen_n, ref_n, eps=BAILANDO_EPS)
        out[f"div_{tag}"] = diversity(gen, ref)
    finite = [b for b in bas if math.isfinite(b)]
    out["bas"] = float(np.mean(finite)) if finite else math.nan
    out["count"], out["bas_count"] = len(gen_k), len(finite)
    return out


class ReferenceSet:
    """Kinetic / geometric features of the reference motions (whole, zero-started), optionally cached
    in an .npz keyed by the sequence names (recomputed when the names differ)."""

    def __init__(
        self, reader: Any, names: Sequence[str], zero_start: bool, cache: Path | None, progress: bool
    ) -> None:
        self.names = list(names)
        if cache is not None and cache.is_file():
            with np.load(cache, allow_pickle=False) as data:
                if list(data["names"]) == self.names:
                    self.kinetic, self.geometric = data["kinetic"], data["geometric"]
                    return
        rows = [
            features(reader.joints(n), None, zero_start)
            for n in tqdm(self.names, desc="AIST++ reference", disable=not progress)
        ]
        self.kinetic = np.stack([r[0] for r in rows])  # [N, 72]
        self.geometric = np.stack([r[1] for r in rows])  # [N, 32]
        if cache is not None:  # refreshed freely, but only if mmgen wrote the file it replaces
            with atomic_files(cache.parent, "evaluation", overwrite=True, arg="--reference-cache") as tmp, \
                    open(tmp / cache.name, "wb") as f:
                np.savez(f, names=np.array(self.names), kinetic=self.kinetic, geometric=self.geometric)


def evaluate_aistpp(
    gen_dir: str | os.PathLike,
    gt_root: str | os.PathLike,
    smpl_dir: str | os.PathLike,
    music_dir: str | os.PathLike | None = None,
    protocol: AISTPPProtocol = AISTPPProtocol(),
    gen_fps: float | None = None,
    gen_up: str | None = None,
    ground_truth_row: bool = True,
    reference_cache: str | os.PathLike | None = None,
    fad_embedder: Callable[..., Any] | None = None,
    fad_sample_rate: int = 16000,
    fvd_embedder: Callable[..., Any] | None = None,
    real_videos: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score every generated dance in `gen_dir` by the AIST++ protocol (module docstring). Returns
    a JSON-ready dict (NaN for an undefined number, with the reason beside it)."""
    from mmgen.data.aistpp import AISTPP

    gen_dir, gt_root = Path(gen_dir), Path(gt_root)
    if not gen_dir.is_dir():
        raise FileNotFoundError(f"{gen_dir}: generated folder not found")
    if music_dir is None and (gt_root / "all_musics").is_dir():
        music_dir = gt_root / "all_musics"  # Bailando's layout: aist_plusplus_final/all_musics
    music_path = None if music_dir is None else Path(music_dir)
    from mmgen.data.smpl_fk import SMPLForwardKinematics

    reader = AISTPP(gt_root, smpl_dir=smpl_dir, fps=AIST_FPS)
    fk = SMPLForwardKinematics(
        smpl_dir
    )  # the ground truth's (male) model, also for generated SMPL parameters

    def smpl_forward(poses: np.ndarray, transl: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return fk(torch.from_numpy(poses), torch.from_numpy(transl)).double().cpu().numpy()

    files = sorted(p for p in gen_dir.iterdir() if is_generated_file(p))
    if len(files) < 2:
        raise ValueError(
            f"{gen_dir}: needs at least 2 generated dances (.npz / .pkl / .npy), found {len(files)}"
        )
    dances: list[GeneratedDance] = []
    for path in tqdm(files, desc="generated dances", disable=not progress):
        dances.append(read_generated(path, smpl_forward, gen_fps, gen_up))
    split = [n for s in protocol.splits for n in reader.sequences(s)]
    ref_names = reader.sequences(None if protocol.reference == "all" else protocol.reference)
    reference = ReferenceSet(
        reader,
        ref_names,
        protocol.zero_start,
        None if reference_cache is None else Path(reference_cache),
        progress,
    )
    beats = MusicBeats(music_path)

    rows, gen_k, gen_g, gen_bas = [], [], [], []
    for d in dances:
        k, g = features(d.joints, protocol.seconds, protocol.zero_start)
        b, reason = _bas_or_reason(d.joints, beats, d.music)
        gen_k.append(k)
        gen_g.append(g)
        gen_bas.append(b)
        rows.append(
            {
                "file": d.name,
                "layout": d.layout,
                "sequence": d.sequence,
                "music": d.music,
                "source_fps": d.source_fps,
                "source_up": d.source_up,
                "frames_60fps": len(d.joints),
                "in_split": d.music in {n.split("_")[4] for n in split},
                "bas": b,
                "bas_missing": reason,
            }
        )
    outside = [r["file"] for r in rows if not r["in_split"]]
    if outside:
        logger.warning(
            "%d generated files have music outside %s: %s", len(outside), list(protocol.splits), outside[:5]
        )
    result: dict[str, Any] = {
        "protocol": {
            **asdict(protocol),
            "fps": AIST_FPS,
            "features": "AIST++ API kinetic 72-d / geometric 32-d",
            "reference_sequences": len(ref_names),
            "sources": SOURCES,
        },
        "gen_dir": str(gen_dir),
        "gt_root": str(gt_root),
        "music_dir": None if music_path is None else str(music_path),
        "generated": _scores(
            np.stack(gen_k), np.stack(gen_g), reference.kinetic, reference.geometric, gen_bas
        ),
        "reference": {"div_k": diversity(reference.kinetic), "div_g": diversity(reference.geometric)},
        "coverage": {
            "split_sequences": len(split),
            "split_music_without_a_dance": sorted(
                {n.split("_")[4] for n in split} - {d.music for d in dances}
            ),
        },
        "files": rows,
    }
    if ground_truth_row:
        gt_k, gt_g, gt_bas = [], [], []
        for name in tqdm(split, desc="ground-truth row", disable=not progress):
            joints = reader.joints(name).astype(np.float64)
            k, g = features(joints, protocol.seconds, protocol.zero_start)
            gt_k.append(k)
            gt_g.append(g)
            gt_bas.append(_bas_or_reason(joints, beats, name.split("_")[4])[0])
        if len(split) >= 2:
            result["ground_truth"] = _scores(
                np.stack(gt_k), np.stack(gt_g), reference.kinetic, reference.geometric, gt_bas
            )
    if fad_embedder is not None:
        result["fad"] = fad_against_music(gen_dir, music_path, fad_embedder, fad_sample_rate)
    if fvd_embedder is not None:
        if real_videos is None:
            raise ValueError("FVD needs a folder of real videos (real_videos / --real-videos)")
        result["fvd"] = fvd_of_folders(gen_dir, Path(real_videos), fvd_embedder)
    return result


SOURCES = {
    "features": "google/aistplusplus_api aist_plusplus/features (as Bailando utils/features, FACT)",
    "fid_div": "lisiyao21/Bailando utils/metrics_new.py (generated [:1200], zero start, real-set normalisation)",
    "reference": "Bailando / google-research/mint extract_aist_features.py (all motions minus ignore_list, whole)",
    "bas": "lisiyao21/Bailando utils/beat_align_score.py + _prepro_aistpp.py music beats (60 fps)",
}


def _cell(value: Any) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4f}"
    )


def aistpp_markdown(result: dict[str, Any]) -> str:
    """The papers' table: FID_k, FID_g (lower is better), Div_k, Div_g, BAS (higher is better)."""
    p = result["protocol"]
    lines = [
        "# AIST++ music-to-dance evaluation",
        "",
        (
            f"Splits {', '.join(p['splits'])}; {p['fps']:g} fps; FID / Div on the first {p['seconds']:g} s; "
            f"reference set: {p['reference']} ({p['reference_sequences']} sequences, whole); "
            "BAS on the whole dance (Bailando)."
        ),
        "",
        "| | FID_k ↓ | FID_g ↓ | Div_k ↑ | Div_g ↑ | BAS ↑ | dances |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (("Ground truth", "ground_truth"), ("Generated", "generated")):
        if key in result:
            s = result[key]
            lines.append(f"| {label} | " + " | ".join(_cell(s[m]) for m in METRICS) + f" | {s['count']} |")
    r = result["reference"]
    lines += ["", f"Reference set diversity: Div_k {_cell(r['div_k'])}, Div_g {_cell(r['div_g'])}."]
    for key, label in (("fad", "FAD"), ("fvd", "FVD")):
        if key in result:
            lines.append(f"{label}: {_cell(result[key][key])} (user embedder).")
    missing = [f for f in result["files"] if f["bas_missing"]]
    if missing:
        lines += ["", "BAS missing for:"] + [f"- {f['file']}: {f['bas_missing']}" for f in missing]
    if result["coverage"]["split_music_without_a_dance"]:
        lines += [
            "",
            "Split music without a generated dance: "
            + ", ".join(result["coverage"]["split_music_without_a_dance"]),
        ]
    return "\n".join(lines) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_aistpp_report(
    result: dict[str, Any], json_path: str | os.PathLike, md_path: str | os.PathLike, overwrite: bool = False
) -> list[Path]:
    """Write the JSON (NaN -> null) and the markdown table (`atomic_files`: together, and over
    earlier reports only with `overwrite`, never over a file mmgen did not write)."""
    paths = [Path(json_path), Path(md_path)]
    texts = [json.dumps(_json_safe(result), indent=1, allow_nan=False) + "\n", aistpp_markdown(result)]
    for path, text in zip(paths, texts):
        with atomic_files(path.parent, "evaluation", overwrite=overwrite, arg="--out") as tmp:
            (tmp / path.name).write_text(text)
    return paths
