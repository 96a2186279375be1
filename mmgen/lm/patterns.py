"""Codebook interleaving patterns (MusicGen): codes [B, K, T] <-> one LM sequence [B, K, S].

A pattern is a *layout*: for every sequence step s, the codes (t, k) the LM emits at that step.
Step 0 is always empty: it holds only the special "empty" token and plays the begin-of-sequence
role, so the model's output at step s predicts the codes of step s + 1. Every position (k, s)
that holds no code is the empty token (id = codebook size `card`, so embeddings have card + 1
rows). K = 3 codebooks, T = 4 frames; `c<k><t>` is code (k, t), `.` the empty token:

    parallel (S = T + 1)          delay (S = T + K; code (k, t) at step t + k + 1)
    s:    0   1   2   3   4       s:    0   1   2   3   4   5   6
    k=0   .  c00 c01 c02 c03      k=0   .  c00 c01 c02 c03  .   .
    k=1   .  c10 c11 c12 c13      k=1   .   .  c10 c11 c12 c13  .
    k=2   .  c20 c21 c22 c23      k=2   .   .   .  c20 c21 c22 c23

    flattening (S = T K + 1; one code per step, codebook order within a frame)
    s:    0   1   2   3   4   5   6   7 ...
    k=0   .  c00  .   .  c01  .   .  c02
    k=1   .   .  c10  .   .  c11  .   .
    k=2   .   .   .  c20  .   .  c21  .

    coarse-first (VALL-E; S = 2 T + 1: all of codebook 0, then the others in parallel)
    s:    0   1   2   3   4   5   6   7   8
    k=0   .  c00 c01 c02 c03  .   .   .   .
    k=1   .   .   .   .   .  c10 c11 c12 c13
    k=2   .   .   .   .   .  c20 c21 c22 c23

Counting without step 0, delay puts code (k, t) at step t + k, as the MusicGen paper writes it.
These layouts equal audiocraft's `ParallelPatternProvider`, `DelayedPatternProvider`,
`UnrolledPatternProvider(flattening=range(K), delays=0)` and `VALLEPatternProvider(delays=0)`
(checked in tests/test_lm_patterns.py). `build` and `revert` are exact inverses on every layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

PATTERNS = ("parallel", "delay", "flattening", "coarse_first")


def _layout(name: str, num_codebooks: int, frames: int) -> list[list[tuple[int, int]]]:
    """The layout as a list of steps, each a list of (t, k)."""
    K, T = num_codebooks, frames
    out: list[list[tuple[int, int]]] = [[]]
    if name == "parallel":
        out += [[(t, k) for k in range(K)] for t in range(T)]
    elif name == "delay":
        out += [[(s - k, k) for k in range(K) if 0 <= s - k < T] for s in range(T + K - 1)]
    elif name == "flattening":
        out += [[(t, k)] for t in range(T) for k in range(K)]
    elif name == "coarse_first":
        out += [[(t, 0)] for t in range(T)]
        if K > 1:
            out += [[(t, k) for k in range(1, K)] for t in range(T)]
    else:
        raise ValueError(f"unknown pattern {name!r}; choose from {', '.join(PATTERNS)}")
    return out


@dataclass(frozen=True)
class Pattern:
    """One pattern for K codebooks and T frames. `empty` is the special token id (the codebook size)."""

    name: str
    num_codebooks: int
    frames: int
    empty: int

    def __post_init__(self) -> None:
        if self.name not in PATTERNS:
            raise ValueError(f"unknown pattern {self.name!r}; choose from {', '.join(PATTERNS)}")
        if self.num_codebooks < 1 or self.frames < 1 or self.empty < 1:
            raise ValueError(
                f"Pattern needs num_codebooks, frames, empty >= 1, got {self.num_codebooks}, {self.frames}, {self.empty}"
            )

    @cached_property
    def layout(self) -> list[list[tuple[int, int]]]:
        return _layout(self.name, self.num_codebooks, self.frames)

    @property
    def steps(self) -> int:
        """S: sequence length including the initial empty step."""
        return len(self.layout)

    @cached_property
    def index(self) -> torch.Tensor:
        """[K, S] long: flat index t + k T of the code at (k, s), or K T where the position is empty."""
        K, T = self.num_codebooks, self.frames
        idx = torch.full((K, self.steps), K * T, dtype=torch.long)
        for s, coords in enumerate(self.layout):
            for t, k in coords:
                idx[k, s] = t + k * T
        return idx

    @cached_property
    def mask(self) -> torch.Tensor:
        """[K, S] bool: True where the sequence holds a code."""
        return self.index < self.num_codebooks * self.frames

    @cached_property
    def first_frame(self) -> torch.Tensor:
        """[S] long: the earliest frame whose code step s holds, `frames` where it holds none."""
        frame = torch.where(self.mask, self.index % self.frames, self.frames)
        return frame.min(dim=0).values

    @cached_property
    def step_of(self) -> torch.Tensor:
        """[K, T] long: the step that holds code (k, t)."""
        K, T = self.num_codebooks, self.frames
        out = torch.empty(K * T, dtype=torch.long)
        flat, steps = self.index[self.mask], self.mask.nonzero()[:, 1]
        out[flat] = steps
        return out.view(K, T)

    def _check(self, x: torch.Tensor, last: int, what: str) -> None:
        if x.dim() < 3 or x.shape[1] != self.num_codebooks or x.shape[2] != last:
            raise ValueError(
                f"{what}: expected [B, {self.num_codebooks}, {last}, ...] for the {self.name} pattern, "
                f"got {list(x.shape)}"
            )

    def build(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] long -> sequence [B, K, S] with `empty` where no code sits."""
        self._check(codes, self.frames, "codes")
        B = codes.shape[0]
        flat = torch.cat([codes.reshape(B, -1), codes.new_full((B, 1), self.empty)], dim=1)  # [B, K T + 1]
        return flat[:, self.index.to(codes.device).view(-1)].view(B, self.num_codebooks, self.steps)

    def revert(self, sequence: torch.Tensor) -> torch.Tensor:
        """sequence [B, K, S] -> codes [B, K, T]: the exact inverse of `build`."""
        self._check(sequence, self.steps, "sequence")
        B, K = sequence.shape[:2]
        flat = sequence.reshape(B, -1)  # [B, K S]
        pos = self.step_of.to(sequence.device) + torch.arange(K, device=sequence.device)[:, None] * self.steps
        return flat[:, pos.view(-1)].view(B, K, self.frames)

    def revert_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Model outputs [B, K, S, V] (output s predicts step s + 1) -> [B, K, T, V] aligned with codes."""
        self._check(logits, self.steps, "logits")
        k = torch.arange(logits.shape[1], device=logits.device)[:, None]
        src = self.step_of.to(logits.device) - 1  # [K, T]: every code sits at a step >= 1
        return logits[:, k, src]  # [B, K, T, V]

    def steps_for_frames(self, frames: int) -> int:
        """How many steps (after step 0) fully determine the first `frames` frames (for prompts)."""
        if frames <= 0:
            return 0
        return int(self.step_of[:, :frames].max())


def make_pattern(name: str, num_codebooks: int, frames: int, card: int) -> Pattern:
    """The pattern `name` for K codebooks of `card` codes each over T frames (empty token = card)."""
    return Pattern(name, num_codebooks, frames, card)
