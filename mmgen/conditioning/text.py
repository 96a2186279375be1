"""Text conditions: a T5 encoder's token states (Stable Audio, Make-An-Audio 2) and a CLIP text embedding.

    captions ──tokenizer──► ids [B, L] ──frozen T5 encoder──► states [B, L, F] · mask   (cacheable)
                                                     └──Linear(F, dim)──► context tokens [B, L, dim]
    captions ──open_clip tokenizer──► frozen CLIP text tower ──► [B, 1, F] (L2-normalised)
                                                     └──Linear(F, dim)──► one context token

`model` is anything `from_pretrained` accepts: a local directory or a hub name (e.g.
"google/flan-t5-base"; needs the network once). For CLIP, `model` is an open_clip model name
("ViT-B-32" with `pretrained="laion2b_s34b_b79k"`, "hf-hub:org/repo" or "local-dir:/path").
The encoders run in float32 with autocast off (T5 overflows in float16) and never train.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mmgen.conditioning.base import Conditioner, Features, FrozenSlot, get_values
from mmgen.core.errors import MmgenError

logger = logging.getLogger(__name__)


def captions_of(batch: Mapping[str, Any], key: str, owner: str) -> list[str]:
    values = get_values(batch, key, owner)
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"{owner}: batch[{key!r}] must be a list of strings, got {type(values).__name__}")
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"{owner}: batch[{key!r}] must hold only strings")
    return list(values)


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device_type=device.type, enabled=False)


class T5TextConditioner(Conditioner):
    """Cross-attention tokens from a frozen T5 encoder.

    Args:
        dim: output width (the DiT's context_dim).
        model: T5 checkpoint directory or hub name.
        max_length: captions are padded / truncated to this many tokens (fixed shapes cache well).
        key: batch key holding the captions.
        feature_dim: the encoder width; read from the model's config when None.
        target: "context" (cross-attention tokens) or "global" (their masked mean, AdaLN).
    """

    def __init__(
        self,
        dim: int,
        model: str = "google/flan-t5-base",
        max_length: int = 64,
        key: str = "caption",
        feature_dim: int | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(dim, target=target)
        if max_length <= 0:
            raise ValueError(f"T5TextConditioner: max_length must be positive, got {max_length}")
        self.model_name, self.max_length, self.key = model, max_length, key
        if feature_dim is None:
            from transformers import AutoConfig

            feature_dim = int(AutoConfig.from_pretrained(model).d_model)
            self.record_config(feature_dim=feature_dim)
        self.proj = nn.Linear(feature_dim, dim)
        self._frozen = FrozenSlot()  # (tokenizer, encoder), loaded on first use, not in state_dict

    def _encoder(self, device: torch.device) -> tuple[Any, nn.Module]:
        if self._frozen.value is None:
            from transformers import AutoTokenizer, T5EncoderModel

            tokenizer = AutoTokenizer.from_pretrained(self.model_name)
            encoder = T5EncoderModel.from_pretrained(self.model_name).eval().requires_grad_(False)
            if len(tokenizer) < 100:  # offline hub loads can silently give a stub tokenizer
                raise MmgenError(
                    f"{self.model_name}: tokenizer has only {len(tokenizer)} tokens; it did not load"
                )
            if encoder.config.d_model != self.proj.in_features:
                raise MmgenError(
                    f"{self.model_name}: width {encoder.config.d_model} != feature_dim {self.proj.in_features}"
                )
            self._frozen.value = (tokenizer, encoder.float())
        tokenizer, encoder = self._frozen.value
        if next(encoder.parameters()).device != device:
            encoder.to(device)
        return tokenizer, encoder

    @torch.no_grad()
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        device = device or self.device
        texts = captions_of(batch, self.key, type(self).__name__)
        tokenizer, encoder = self._encoder(device)
        enc = tokenizer(
            texts, padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device).bool()  # [B, L]
        with no_autocast(device):
            states = encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state.float()  # [B, L, F]
        return Features(states * mask[..., None], mask)

    def project(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(features.values), features.mask  # [B, L, dim]


def load_open_clip(model: str, pretrained: str | None) -> tuple[nn.Module, Any]:
    """(frozen open_clip model in eval mode, its tokenizer)."""
    import open_clip

    try:
        clip = open_clip.create_model(model, pretrained=pretrained)
    except (RuntimeError, FileNotFoundError, ValueError) as err:
        raise MmgenError(f"open_clip cannot load {model!r} (pretrained={pretrained!r}): {err}") from err
    return clip.eval().requires_grad_(False).float(), open_clip.get_tokenizer(model)


def open_clip_embed_dim(model: str) -> int:
    import open_clip

    cfg = open_clip.get_model_config(model)
    if cfg is None or "embed_dim" not in cfg:
        raise MmgenError(f"open_clip has no config for {model!r}; pass feature_dim explicitly")
    return int(cfg["embed_dim"])


class _OpenCLIPBase(Conditioner):
    """Shared by the CLIP text and image conditioners: lazy frozen open_clip model + Linear."""

    def __init__(
        self, dim: int, model: str, pretrained: str | None, feature_dim: int | None, target: str | None = None
    ) -> None:
        super().__init__(dim, target=target)
        self.model_name, self.pretrained = model, pretrained
        if feature_dim is None:
            feature_dim = open_clip_embed_dim(model)
            self.record_config(feature_dim=feature_dim)
        self.proj = nn.Linear(feature_dim, dim)
        self._frozen = FrozenSlot()  # (model, tokenizer), loaded on first use

    def _clip(self, device: torch.device) -> tuple[nn.Module, Any]:
        if self._frozen.value is None:
            self._frozen.value = load_open_clip(self.model_name, self.pretrained)
        clip, tokenizer = self._frozen.value
        if next(clip.parameters()).device != device:
            clip.to(device)
        return clip, tokenizer

    def project(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(features.values), features.mask


class CLIPTextConditioner(_OpenCLIPBase):
    """One context token per caption: the L2-normalised CLIP text embedding, projected.

    Args:
        dim: output width; model / pretrained: open_clip identifiers; key: batch key of captions.
        target: "context" (one cross-attention token) or "global" (the embedding, AdaLN).
    """

    def __init__(
        self,
        dim: int,
        model: str = "ViT-B-32",
        pretrained: str | None = "laion2b_s34b_b79k",
        key: str = "caption",
        feature_dim: int | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(dim, model, pretrained, feature_dim, target)
        self.key = key

    @torch.no_grad()
    def encode(self, batch: Mapping[str, Any], device: torch.device | None = None) -> Features:
        device = device or self.device
        texts = captions_of(batch, self.key, type(self).__name__)
        clip, tokenizer = self._clip(device)
        with no_autocast(device):
            emb = clip.encode_text(tokenizer(texts).to(device), normalize=True).float()  # [B, F]
        return Features(emb[:, None], torch.ones(len(texts), 1, dtype=torch.bool, device=device))
