"""Files <-> arrays: reading user media at a model's rates, writing results as ordinary media files.

    audio    load_audio / resample_audio (soundfile + soxr)
    read     read_audio / read_motion / read_video_file: conform a file to a pipeline's modality
    export   save_wav, save_motion_npz / load_motion_npz, save_video (mp4, audio muxed), plot_mel_with_beats
    bvh      save_bvh: joint positions -> BVH rotations
    render   render_stick_figure: 3-D joints -> frames

Names load lazily, so `import mmgen.io` imports neither PyAV nor matplotlib.
"""

from mmgen.core.lazy import lazy_exports

_EXPORTS = {
    "mmgen.io.audio": ("load_audio", "resample_audio", "audio_seconds"),
    "mmgen.io.read": ("read_audio", "read_motion", "read_video_file", "resample_motion", "conform_video"),
    "mmgen.io.export": ("save_wav", "save_motion_npz", "load_motion_npz", "save_video", "plot_mel_with_beats"),
    "mmgen.io.bvh": ("save_bvh",),
    "mmgen.io.render": ("render_stick_figure",),
}
__all__ = [
    "audio_seconds",
    "conform_video",
    "load_audio",
    "load_motion_npz",
    "plot_mel_with_beats",
    "read_audio",
    "read_motion",
    "read_video_file",
    "render_stick_figure",
    "resample_audio",
    "resample_motion",
    "save_bvh",
    "save_motion_npz",
    "save_video",
    "save_wav",
]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
