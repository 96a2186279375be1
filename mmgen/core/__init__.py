"""The foundations every other package builds on; nothing here imports the rest of mmgen.

    timeline    ModalitySpec, latent frames <-> seconds <-> segments (the shared time axis)
    cond        Cond: the non-latent conditions the DiT takes (context, prefix, ...)
    pretrained  PretrainedMixin: save_pretrained / from_pretrained as config.yaml + model.safetensors
    fileio      atomic_path / atomic_dir: nothing half-written is ever left behind
    errors      MmgenError: what the CLI reports as one line
    blend       runs of masked frames and the straight line across them
    skeleton    SMPL-24 / COCO-17 joint names, trees and drawing edges
"""

from mmgen.core.cond import Cond
from mmgen.core.errors import MmgenError
from mmgen.core.fileio import atomic_dir, atomic_path
from mmgen.core.pretrained import PretrainedMixin
from mmgen.core.timeline import ModalitySpec

__all__ = ["Cond", "MmgenError", "ModalitySpec", "PretrainedMixin", "atomic_dir", "atomic_path"]
