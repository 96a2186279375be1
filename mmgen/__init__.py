"""mmgen: joint generation of music, dance motion and video with one multimodal diffusion transformer.

    from mmgen import Pipeline
    pipe = Pipeline.from_pretrained("checkpoints/toydance")
    music = pipe.generate("dance2music", {"motion": joints})     # -> Generation (wav / npz / mp4 on .save)

Every task is a noise-level mask (`Task`, `get_task("interpolate", head=1.0, tail=1.0)`), never new
model code. Names load lazily, so `import mmgen` and `mmgen --help` stay fast.

    core/         time axis (ModalitySpec), Cond, save/load, atomic files, errors, skeletons
    io/           media files <-> arrays
    modalities/   per-modality codecs and VAEs (mel / waveform audio, motion, video)
    dit/          MultimodalDiT: tokens in, predictions out
    diffusion/    processes, MoNL noise levels, tasks as masks, samplers, guidance, long form
    conditioning/ text, timing, melody, image and time-aligned condition encoders
    pipeline/     Pipeline: VAEs + DiT (+ conditions) -> any task on raw media
    data/         ToyDance, AIST++, video folders, manifests, latent caches
    train/        LightningModules and DataModules;  metrics/, evaluation/, demo/, commands/
"""

from mmgen.core import numba_cache
from mmgen.core.lazy import lazy_exports

numba_cache.configure()  # before anything imports numba (librosa's beat tracker; see the module)

__version__ = "0.1.0"

_EXPORTS = {
    "mmgen.pipeline.pipeline": ("Pipeline",),
    "mmgen.pipeline.generation": ("Generation",),
    "mmgen.diffusion.tasks": ("Task", "get_task", "PRESETS"),
}
__all__ = ["PRESETS", "Generation", "Pipeline", "Task", "__version__", "get_task"]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
