"""Condition encoders: raw conditions (text, timing, melody, quality, video frames, given streams) -> `mmgen.core.cond.Cond`."""

from mmgen.conditioning.base import Conditioner, Features, load_features, save_features
from mmgen.conditioning.captions import event_place, structure_caption
from mmgen.conditioning.clip_image import CLIPImageConditioner
from mmgen.conditioning.encoder import ConditionEncoder, pad_context
from mmgen.conditioning.melody import ChromaExtractor, MelodyConditioner, dominant_one_hot
from mmgen.conditioning.quality import QualityConditioner, quality_caption, quality_level
from mmgen.conditioning.stream import FeatureStreamConditioner
from mmgen.conditioning.text import CLIPTextConditioner, T5TextConditioner
from mmgen.conditioning.timing import NumberEmbedder, TimingConditioner

__all__ = [
    "CLIPImageConditioner",
    "CLIPTextConditioner",
    "ChromaExtractor",
    "ConditionEncoder",
    "Conditioner",
    "FeatureStreamConditioner",
    "Features",
    "MelodyConditioner",
    "NumberEmbedder",
    "QualityConditioner",
    "T5TextConditioner",
    "TimingConditioner",
    "dominant_one_hot",
    "event_place",
    "load_features",
    "pad_context",
    "quality_caption",
    "quality_level",
    "save_features",
    "structure_caption",
]
