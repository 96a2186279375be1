"""Published beat / motion / distribution metrics, each variant under its own name.

Every function documents its source (paper + published file), units and fps conventions. Submodules
load lazily, so `import mmgen.metrics` does not import librosa, torch or mir_eval. No submodule is
named like an exported function (EDGE's PFC lives in `foot_contact`), so importing a submodule
directly can never shadow `mmgen.metrics.<function>`.

    beats             music_onsets, music_beats, music_tempo, motion_envelope, motion_beats, motion_tempo
    kinematic_rhythm  directogram, kinematic_amplitude, rhythm_peaks  (MoMu / LORIS)
    beat_align        bas, mean_bas                 (Bailando / FACT Beat Align Score)
    beats_coverage    bcs_bhs, BeatScores, OnsetTimes (D2M-GAN / LORIS BCS, BHS)
    beat_f            beat_f_measure, tempo_accuracy
    foot_contact      pfc, pfc_sequence, yup_to_zup  (EDGE PFC)
    aist_features     kinetic_features, geometric_features  (AIST++ API)
    fid               fid_k, fid_g, diversity, motion_quality, motion_feature_set
    frechet           frechet_distance, frechet_from_stats, fad, fvd
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "beats": (
        "music_onsets",
        "music_beats",
        "music_tempo",
        "motion_envelope",
        "motion_beats",
        "motion_tempo",
    ),
    "kinematic_rhythm": ("directogram", "kinematic_amplitude", "rhythm_peaks"),
    "beat_align": ("bas", "mean_bas"),
    "beats_coverage": ("bcs_bhs", "BeatScores", "OnsetTimes", "onset_bins"),
    "beat_f": ("beat_f_measure", "tempo_accuracy"),
    "foot_contact": ("pfc", "pfc_sequence", "yup_to_zup"),
    "aist_features": ("kinetic_features", "geometric_features"),
    "fid": ("fid_k", "fid_g", "diversity", "motion_quality", "motion_feature_set"),
    "frechet": ("frechet_distance", "frechet_from_stats", "fad", "fvd"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mmgen.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mmgen.metrics.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
