"""Sampling the codebook LM: temperature, top-k, top-p (nucleus), classifier-free guidance,
a KV cache, and prompts (music continuation: the prompt's codes are kept, the rest sampled).

    step s:  seq[:, :, s] ──LM (cached past)──► logits [2B, K, card] (cond rows ; all-dropped rows)
             ──CFG: l_u + scale (l_c - l_u)──► /temperature ──top-k / top-p──► sample codes [B, K]
             ──write where the pattern places a code at step s + 1 and no prompt code sits──►
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmgen.lm.layers import KVCache
from mmgen.lm.model import CodebookLM, CondInput


@dataclass(frozen=True)
class SamplingConfig:
    """temperature > 0; top_k 0 = off; top_p 0 = off, else in (0, 1]; cfg_scale 1 = no guidance."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    cfg_scale: float = 3.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError(f"top_p must be in [0, 1] (0 = off), got {self.top_p}")
        if self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be >= 0, got {self.cfg_scale}")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """logits [..., V] with everything outside the top-k and outside the smallest set of tokens
    whose probability reaches top_p set to -inf (the most likely token always stays)."""
    out = logits.clone()
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # [..., 1]
        out = out.masked_fill(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens
        remove_sorted = before >= top_p
        remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
        out = out.masked_fill(remove, float("-inf"))
    return out


def sample_logits(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [..., V] -> token ids [...] drawn from softmax(filtered logits / temperature)."""
    probs = filter_logits(logits.float() / config.temperature, config.top_k, config.top_p).softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance on logits: uncond + scale (cond - uncond)."""
    return uncond + scale * (cond - uncond)


@torch.no_grad()
def generate_codes(
    model: CodebookLM,
    frames: int,
    cond: CondInput | None = None,
    config: SamplingConfig | None = None,
    prompt: torch.Tensor | None = None,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample codes [B, K, frames]. `prompt` [B, K, P] (P <= frames) fixes the first P frames."""
    config = config or SamplingConfig()
    pattern = model.pattern(frames)
    K, S = model.num_codebooks, pattern.steps
    B = next(iter(cond.values()))[0].shape[0] if cond else (prompt.shape[0] if prompt is not None else batch_size)
    if B is None:
        raise ValueError("generate_codes: give batch_size when there is neither a condition nor a prompt")
    dev = model.null_token.device
    known = torch.zeros(B, K, S, dtype=torch.bool, device=dev)
    seq = torch.full((B, K, S), pattern.empty, dtype=torch.long, device=dev)
    known |= ~pattern.mask.to(dev)[None]  # empty positions are known: they stay the empty token
    if prompt is not None:
        if prompt.dim() != 3 or prompt.shape[0] != B or prompt.shape[1] != K or prompt.shape[2] > frames:
            raise ValueError(f"prompt must be [B={B}, K={K}, P <= {frames}], got {list(prompt.shape)}")
        if prompt.min() < 0 or prompt.max() >= model.card:
            raise ValueError(f"prompt codes must lie in [0, {model.card})")
        P = prompt.shape[2]
        full = torch.zeros(B, K, frames, dtype=torch.long, device=dev)
        full[:, :, :P] = prompt.to(dev)
        in_prompt = torch.zeros(B, K, frames, dtype=torch.bool, device=dev)
        in_prompt[:, :, :P] = True
        seq = torch.where(in_prompt_steps := pattern.build(in_prompt.long()).bool() & pattern.mask.to(dev)[None],
                          pattern.build(full), seq)  # fmt: skip
        known |= in_prompt_steps
    guided = bool(cond) and config.cfg_scale != 1.0
    if guided:
        names = list(cond)
        doubled = {n: (torch.cat([v, v]), torch.cat([m, m])) for n, (v, m) in cond.items()}
        drop = {n: torch.cat([torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)]) for n in names}
        memory = model.memory(doubled, drop)
    else:
        memory = model.memory(cond, batch_size=B)
    cache = KVCache.empty(model.depth)
    first = 0  # steps fully known from the start are run in one call
    while first + 1 < S and bool(known[:, :, first + 1].all()):
        first += 1
    s = 0
    while s < S - 1:
        n = first + 1 if s == 0 else 1  # steps [s, s + n) go in; the last one's output predicts step s + n
        chunk = seq[:, :, s:s + n]
        logits = model.forward_steps(torch.cat([chunk, chunk]) if guided else chunk, s, pattern, memory, cache)
        logits = logits[:, :, -1]  # [B or 2B, K, card]
        if guided:
            logits = cfg_combine(logits[:B], logits[B:], config.cfg_scale)
        nxt = s + n
        drawn = sample_logits(logits, config, generator)  # [B, K]
        seq[:, :, nxt] = torch.where(known[:, :, nxt], seq[:, :, nxt], drawn)
        s = nxt
    return pattern.revert(seq)
