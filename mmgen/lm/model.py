"""MusicGen-style codebook language model: one causal transformer over an interleaving pattern.

    codes [B, K, T] ──pattern.build──► sequence [B, K, S] ──Σ_k Emb_k──► [B, S, D]
        ──depth × (causal self-attn (KV cache) ; cross-attn to condition memory ; MLP)──►
        K heads ──► logits [B, K, S, card]  (output s predicts step s + 1)

Condition memory: every named condition (motion latents, video latents, melody chroma, text
embeddings ...) is projected to d_model, tagged with a learned source embedding, and
concatenated, after one always-present learned null token (so a fully dropped condition still
leaves something to attend to). Time-aligned conditions (`rate_hz` given) carry RoPE of their
seconds on the keys; every query carries RoPE of the seconds of the frame it predicts, so the
attention score depends on the time *difference* between the music frame and the dance frame.
A time-aligned condition (`aligned: true`, needs `rate_hz`) is also added to every step's input:
a short convolution over its frames (±`aligned_kernel // 2` frames of context), read at the
seconds of the frame the step predicts — the LM's form of the DiT's aligned stream. Cross-attention
must find the right dance frame among all of them; the added stream hands it over (on ToyDance it
is what makes the music follow the dance's beats, docs/musicgen.md).
Classifier-free guidance drops conditions (mask their tokens, and an aligned stream becomes a
learned null vector) in training; `mmgen.lm.sampling` runs the conditional and the fully dropped
rows together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.core.pretrained import PretrainedMixin
from mmgen.dit.rope import rope_angles, rope_cos_sin, rope_frequencies
from mmgen.lm.layers import Block, KVCache, Rope
from mmgen.lm.patterns import PATTERNS, Pattern, make_pattern

CondInput = Mapping[str, tuple[torch.Tensor, torch.Tensor]]  # name -> (values [B, L, F], mask [B, L])


@dataclass
class ConditionMemory:
    """What the transformer reads from the conditions: cross-attention tokens [B, 1 + M, D], their
    mask [B, 1 + M] and key rotation, and the aligned streams {name: (frames [B, L, D], rate_hz)}."""

    tokens: torch.Tensor
    mask: torch.Tensor
    key_rope: Rope
    aligned: dict[str, tuple[torch.Tensor, float]]

    def at_seconds(self, seconds: torch.Tensor) -> torch.Tensor | float:
        """Sum of the aligned streams at `seconds` [N] (nearest frame, held at the ends) -> [B, N, D]."""
        total: torch.Tensor | float = 0.0
        for frames, rate in self.aligned.values():
            idx = (seconds * rate).round().long().clamp(0, frames.shape[1] - 1).to(frames.device)
            total = total + frames[:, idx]
        return total


def condition_frames(latents: torch.Tensor, pool: int = 2) -> torch.Tensor:
    """A modality's latents as condition frames [B, T, F]: [B, T, C] unchanged; video latents
    [B, T, h, w, C] average-pooled to pool x pool cells and flattened (F = pool² C)."""
    if latents.dim() == 3:
        return latents
    if latents.dim() != 5:
        raise ValueError(f"condition latents must be [B, T, C] or [B, T, h, w, C], got {list(latents.shape)}")
    B, T, h, w, C = latents.shape
    x = latents.permute(0, 1, 4, 2, 3).reshape(B * T, C, h, w)
    x = F.adaptive_avg_pool2d(x, pool)  # [B T, C, pool, pool]
    return x.reshape(B, T, C * pool * pool)


class CodebookLM(PretrainedMixin, nn.Module):
    """Causal LM over K codebooks of `card` codes laid out by `pattern`.

    Args:
        num_codebooks, card: K and the codebook size (the empty token is id `card`).
        pattern: one of parallel, delay, flattening, coarse_first (`mmgen.lm.patterns`).
        rate_hz: code frames per second (the RVQ's latent rate).
        d_model, depth, num_heads, mlp_ratio, dropout: the transformer.
        conditions: {name: {"dim": F, "rate_hz": frames per second or None (global tokens),
            "aligned": also add it to each step's input at the predicted frame's seconds (default False)}}.
        aligned_kernel: frames of context (odd) of an aligned stream's convolution.
    """

    def __init__(
        self,
        num_codebooks: int,
        card: int,
        pattern: str = "delay",
        rate_hz: float = 7.5,
        d_model: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        conditions: Mapping[str, Mapping[str, float | int | bool | None]] | None = None,
        aligned_kernel: int = 5,
    ) -> None:
        super().__init__()
        if pattern not in PATTERNS:
            raise ValueError(f"CodebookLM: unknown pattern {pattern!r}; choose from {', '.join(PATTERNS)}")
        if num_codebooks < 1 or card < 2 or rate_hz <= 0 or depth < 1:
            raise ValueError(f"CodebookLM: bad sizes num_codebooks={num_codebooks} card={card} rate_hz={rate_hz} depth={depth}")
        self.num_codebooks, self.card, self.pattern_name, self.rate_hz = num_codebooks, card, pattern, rate_hz
        self.d_model, self.depth = d_model, depth
        self.cond_specs = {str(n): (int(s["dim"]), None if s.get("rate_hz") is None else float(s["rate_hz"]))
                           for n, s in (conditions or {}).items()}  # fmt: skip
        self.aligned_names = tuple(str(n) for n, s in (conditions or {}).items() if s.get("aligned", False))
        for n in self.aligned_names:
            if self.cond_specs[n][1] is None:
                raise ValueError(f"CodebookLM: condition {n!r} is aligned but has no rate_hz (a global condition has no time axis)")
        if aligned_kernel < 1 or aligned_kernel % 2 == 0:
            raise ValueError(f"CodebookLM: aligned_kernel must be odd and >= 1, got {aligned_kernel}")
        self.embed = nn.ModuleList(nn.Embedding(card + 1, d_model) for _ in range(num_codebooks))
        self.next_books = nn.Linear(num_codebooks, d_model, bias=False)  # which codebooks the next step emits
        self.cond_proj = nn.ModuleDict({n: nn.Linear(dim, d_model) for n, (dim, _) in self.cond_specs.items()})
        self.cond_type = nn.ParameterDict({n: nn.Parameter(torch.zeros(d_model)) for n in self.cond_specs})
        self.aligned_proj = nn.ModuleDict({n: nn.Conv1d(self.cond_specs[n][0], d_model, aligned_kernel, padding=aligned_kernel // 2)
                                           for n in self.aligned_names})  # fmt: skip
        self.aligned_null = nn.ParameterDict({n: nn.Parameter(torch.zeros(d_model)) for n in self.aligned_names})
        self.null_token = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.memory_norm = nn.LayerNorm(d_model)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(d_model)
        self.heads = nn.ModuleList(nn.Linear(d_model, card) for _ in range(num_codebooks))
        head_dim = d_model // num_heads
        self.register_buffer("omega_step", rope_frequencies(head_dim, False, 2.0, 1e4)[0].float(), persistent=False)
        self.register_buffer("omega_sec", rope_frequencies(head_dim, False, 0.25, 100.0)[0].float(), persistent=False)

    # ------------------------------------------------------------------ layout
    def pattern(self, frames: int) -> Pattern:
        return _pattern(self.pattern_name, self.num_codebooks, frames, self.card)

    def _rope(self, positions: torch.Tensor, omega: torch.Tensor) -> Rope:
        empty = omega.new_zeros(0)
        return rope_cos_sin(rope_angles(positions, positions, positions, omega.double(), empty))

    # ------------------------------------------------------------------ conditions
    def memory(self, cond: CondInput | None, drop: Mapping[str, torch.Tensor] | None = None,
               batch_size: int | None = None) -> ConditionMemory:  # fmt: skip
        """The conditions as the transformer reads them. `drop[name]` [B] bool hides that condition
        for those rows (CFG dropout / the unconditional branch)."""
        cond = dict(cond or {})
        unknown = sorted(set(cond) - set(self.cond_specs))
        if unknown:
            raise ValueError(f"CodebookLM: unknown condition(s) {unknown}; the model takes {sorted(self.cond_specs)}")
        B = next(iter(cond.values()))[0].shape[0] if cond else batch_size
        if B is None:
            raise ValueError("CodebookLM.memory: give batch_size when no condition is given")
        dev = self.null_token.device
        tokens, masks, seconds = [self.null_token.expand(B, 1, -1)], [torch.ones(B, 1, dtype=torch.bool, device=dev)], [torch.zeros(1, device=dev)]
        aligned: dict[str, tuple[torch.Tensor, float]] = {}
        for name, (dim, rate) in self.cond_specs.items():
            if name not in cond:
                continue
            values, mask = cond[name]
            if values.dim() != 3 or values.shape[-1] != dim or values.shape[0] != B or mask.shape != values.shape[:2]:
                raise ValueError(f"CodebookLM: condition {name!r} wants values [B={B}, L, {dim}] and mask [B, L], "
                                 f"got {list(values.shape)} and {list(mask.shape)}")  # fmt: skip
            mask = mask.bool().to(dev)
            if drop is not None and name in drop:
                mask = mask & ~drop[name].to(dev)[:, None]
            values = values.to(dev, torch.float32)
            tokens.append(self.cond_proj[name](values) + self.cond_type[name])
            if name in self.aligned_proj:
                stream = self.aligned_proj[name](values.transpose(1, 2)).transpose(1, 2)  # [B, L, D]
                aligned[name] = (torch.where(mask[..., None], stream, self.aligned_null[name]), rate)
            masks.append(mask)
            L = values.shape[1]
            seconds.append(torch.arange(L, device=dev, dtype=torch.float32) / rate if rate else torch.zeros(L, device=dev))
        for name in self.aligned_names:
            if name not in aligned:  # absent condition: the null stream, constant in time
                aligned[name] = (self.aligned_null[name].expand(B, 1, -1), 1.0)
        memory = self.memory_norm(torch.cat(tokens, 1))  # [B, 1 + M, D]
        return ConditionMemory(memory, torch.cat(masks, 1), self._rope(torch.cat(seconds), self.omega_sec), aligned)

    # ------------------------------------------------------------------ transformer
    @torch.no_grad()
    def _step_tables(self, pattern: Pattern) -> tuple[torch.Tensor, torch.Tensor]:
        """Per step s: the seconds of the frame its output predicts [S], which codebooks step s + 1 holds [S, K]."""
        S, T = pattern.steps, pattern.frames
        nxt = torch.zeros(S, self.num_codebooks)
        nxt[:-1] = pattern.mask[:, 1:].T.float()
        frame = torch.cat([pattern.first_frame[1:], pattern.first_frame.new_tensor([T])]).clamp(max=T - 1)
        return frame.float() / self.rate_hz, nxt

    def forward_steps(self, seq: torch.Tensor, start: int, pattern: Pattern, memory: ConditionMemory,
                      cache: KVCache | None = None) -> torch.Tensor:  # fmt: skip
        """Steps [start, start + N) of a sequence seq [B, K, N] -> logits [B, K, N, card]."""
        _, K, N = seq.shape
        if K != self.num_codebooks:
            raise ValueError(f"CodebookLM: sequence of {K} codebooks, the model has {self.num_codebooks}")
        seconds, nxt = self._step_tables(pattern)
        dev = seq.device
        steps = torch.arange(start, start + N, device=dev)
        step_seconds = seconds[start:start + N].to(dev)
        x = sum(self.embed[k](seq[:, k]) for k in range(K)) + self.next_books(nxt[start:start + N].to(dev))  # [B, N, D]
        x = x + memory.at_seconds(step_seconds)
        self_rope = self._rope(steps.float(), self.omega_step)
        query_rope = self._rope(step_seconds, self.omega_sec)
        for i, block in enumerate(self.blocks):
            layer_cache = cache.layers[i] if cache is not None else None
            x = block(x, self_rope, memory.tokens, memory.mask, query_rope, memory.key_rope, layer_cache)
        if cache is not None:
            cache.length = start + N
        x = self.norm(x)
        return torch.stack([head(x) for head in self.heads], 1)  # [B, K, N, card]

    def forward(self, codes: torch.Tensor, cond: CondInput | None = None,
                drop: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:  # fmt: skip
        """Teacher forcing: codes [B, K, T] -> logits aligned with the codes [B, K, T, card]."""
        pattern = self.pattern(codes.shape[2])
        seq = pattern.build(codes)
        logits = self.forward_steps(seq, 0, pattern, self.memory(cond, drop, batch_size=codes.shape[0]))
        return pattern.revert_logits(logits)

    def loss(self, codes: torch.Tensor, cond: CondInput | None = None,
             drop: Mapping[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Mean cross-entropy over all codes, and per codebook [K]."""
        logits = self(codes, cond, drop)  # [B, K, T, card]
        ce = F.cross_entropy(logits.permute(0, 3, 1, 2), codes, reduction="none")  # [B, K, T]
        return ce.mean(), ce.mean(dim=(0, 2)).detach()

    @property
    def condition_names(self) -> tuple[str, ...]:
        return tuple(self.cond_specs)


@lru_cache(maxsize=64)
def _pattern(name: str, num_codebooks: int, frames: int, card: int) -> Pattern:
    return make_pattern(name, num_codebooks, frames, card)
