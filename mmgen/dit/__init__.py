"""The backbone: latent tokens of every modality in, predictions out (no Lightning, no modality code)."""

from mmgen.dit.masking import random_token_mask
from mmgen.dit.model import MultimodalDiT
from mmgen.dit.tokens import TokenLayout, patchify, unpatchify

__all__ = ["MultimodalDiT", "TokenLayout", "patchify", "random_token_mask", "unpatchify"]
