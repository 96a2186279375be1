"""Codebook interleaving patterns: MusicGen's (audiocraft's) layouts on a known example, exact inverse."""

import pytest
import torch

from mmgen.lm.patterns import PATTERNS, make_pattern

S_ = 99  # the empty token in these examples (codebook size 99)
# K = 3 codebooks, T = 4 frames; code (k, t) has value 10 k + t + 1 (so 0 is never a code here).
CODES = torch.tensor([[1, 2, 3, 4], [11, 12, 13, 14], [21, 22, 23, 24]])[None]

# audiocraft.modules.codebooks_patterns, get_pattern(4) with n_q = 3, built with build_pattern_sequence:
EXPECTED = {
    # ParallelPatternProvider(3)
    "parallel": [[S_, 1, 2, 3, 4],
                 [S_, 11, 12, 13, 14],
                 [S_, 21, 22, 23, 24]],
    # DelayedPatternProvider(3): code (k, t) at step t + k (+1 for the initial empty step)
    "delay": [[S_, 1, 2, 3, 4, S_, S_],
              [S_, S_, 11, 12, 13, 14, S_],
              [S_, S_, S_, 21, 22, 23, 24]],
    # UnrolledPatternProvider(3) (flattening = range(3), delays = 0)
    "flattening": [[S_, 1, S_, S_, 2, S_, S_, 3, S_, S_, 4, S_, S_],
                   [S_, S_, 11, S_, S_, 12, S_, S_, 13, S_, S_, 14, S_],
                   [S_, S_, S_, 21, S_, S_, 22, S_, S_, 23, S_, S_, 24]],
    # CoarseFirstPattern(3) (VALL-E: codebook 0 first, delays = 0)
    "coarse_first": [[S_, 1, 2, 3, 4, S_, S_, S_, S_],
                     [S_, S_, S_, S_, S_, 11, 12, 13, 14],
                     [S_, S_, S_, S_, S_, 21, 22, 23, 24]],
}  # fmt: skip


@pytest.mark.parametrize("name", PATTERNS)
def test_layout_equals_musicgen(name):
    pattern = make_pattern(name, 3, 4, S_)
    seq = pattern.build(CODES)
    assert seq[0].tolist() == EXPECTED[name]
    assert pattern.mask.tolist() == (torch.tensor(EXPECTED[name]) != S_).tolist()


def test_delay_puts_code_k_t_at_step_t_plus_k():
    K, T = 4, 9
    pattern = make_pattern("delay", K, T, 50)
    for k in range(K):
        for t in range(T):
            assert int(pattern.step_of[k, t]) == t + k + 1  # + 1: the initial empty step


@pytest.mark.parametrize("name", PATTERNS)
def test_first_frame_is_the_earliest_frame_each_step_holds(name):
    pattern = make_pattern(name, 3, 4, S_)
    first = [min((t for t, _ in coords), default=4) for coords in pattern.layout]
    assert pattern.first_frame.tolist() == first
    # on the known example: the delay pattern's step 3 holds (0, 2), (1, 1), (2, 0) -> frame 0
    expected = {"parallel": [4, 0, 1, 2, 3], "delay": [4, 0, 0, 0, 1, 2, 3], "flattening": [4] + [t for t in range(4) for _ in range(3)],
                "coarse_first": [4, 0, 1, 2, 3, 0, 1, 2, 3]}  # fmt: skip
    assert first == expected[name]


@pytest.mark.parametrize("name", PATTERNS)
@pytest.mark.parametrize("K,T", [(1, 1), (1, 7), (4, 1), (4, 13), (8, 5)])
def test_build_revert_identity(name, K, T):
    g = torch.Generator().manual_seed(K * 100 + T)
    codes = torch.randint(0, 32, (3, K, T), generator=g)
    pattern = make_pattern(name, K, T, 32)
    seq = pattern.build(codes)
    assert seq.shape == (3, K, pattern.steps)
    assert torch.equal(pattern.revert(seq), codes)
    assert bool((seq[:, :, 0] == 32).all())  # step 0: only the empty token
    assert int((seq != 32).sum()) == int((codes != 32).sum())  # every code sits exactly once
    # every position the pattern leaves empty holds the empty token
    assert bool((seq[:, ~pattern.mask] == 32).all())


@pytest.mark.parametrize("name", PATTERNS)
def test_revert_logits_takes_the_previous_step(name):
    K, T, V = 3, 5, 7
    pattern = make_pattern(name, K, T, V)
    S = pattern.steps
    logits = torch.arange(K * S, dtype=torch.float32).view(1, K, S, 1).expand(2, K, S, V)
    out = pattern.revert_logits(logits)  # [2, K, T, V]
    for k in range(K):
        for t in range(T):
            assert out[0, k, t, 0] == k * S + int(pattern.step_of[k, t]) - 1


def test_bad_shapes_and_names_raise():
    with pytest.raises(ValueError, match="unknown pattern"):
        make_pattern("zigzag", 2, 3, 8)
    pattern = make_pattern("delay", 2, 3, 8)
    with pytest.raises(ValueError, match=r"expected \[B, 2, 3"):
        pattern.build(torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="sequence"):
        pattern.revert(torch.zeros(1, 2, 3, dtype=torch.long))
