"""`Pipeline`: modality VAEs + one MultimodalDiT (+ condition encoder) -> any task on raw media.

    pipeline    Pipeline: generate(task, given=...), save_pretrained / from_pretrained
    config      the folder format (pipeline.yaml) and GenerationDefaults
    load        loading and checking the parts of a folder
    media       raw media in and out of generate: task presets, input checks, decoding with GIVEN frames pasted back
    generation  Generation: what generate returns, and how it is written to disk
"""

from mmgen.pipeline.generation import Generation
from mmgen.pipeline.pipeline import Pipeline

__all__ = ["Generation", "Pipeline"]
