"""Evaluation on raw media: plain dicts of floats, each documented with its variant and conventions.

    measures    arrays in, scores out (music-dance sync, music agreement, PFC, LORIS BCS/BHS,
                video beat alignment, interpolation error against the linear blend)
    folder      evaluate_folder: a folder of generated files against a folder of references

The published metric definitions themselves live in `mmgen.metrics`.
"""

from mmgen.core.lazy import lazy_exports

_EXPORTS = {
    "mmgen.evaluation.measures": (
        "LORIS_SAMPLE_RATE",
        "MusicAnalysis",
        "analyse_music",
        "analysed_music_dance_sync",
        "interpolation_error",
        "linear_blend",
        "loris_bcs_bhs",
        "music_agreement",
        "music_dance_sync",
        "pfc",
        "video_beat_alignment",
    ),
    "mmgen.evaluation.folder": ("evaluate_folder", "format_table"),
}
__all__ = [
    "LORIS_SAMPLE_RATE",
    "MusicAnalysis",
    "analyse_music",
    "analysed_music_dance_sync",
    "evaluate_folder",
    "format_table",
    "interpolation_error",
    "linear_blend",
    "loris_bcs_bhs",
    "music_agreement",
    "music_dance_sync",
    "pfc",
    "video_beat_alignment",
]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
