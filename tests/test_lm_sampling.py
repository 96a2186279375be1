"""Sampling the codebook LM: top-k, top-p, temperature, classifier-free guidance."""

import math

import pytest
import torch

from mmgen.lm.sampling import SamplingConfig, cfg_combine, filter_logits, sample_logits

LOGITS = torch.log(torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03]))


def test_top_k_keeps_the_k_most_likely():
    out = filter_logits(LOGITS, top_k=2)
    assert torch.isfinite(out).tolist() == [True, True, False, False, False]
    assert torch.equal(filter_logits(LOGITS, top_k=0), LOGITS)  # 0 = off


def test_top_p_keeps_the_smallest_nucleus():
    assert torch.isfinite(filter_logits(LOGITS, top_p=0.5)).tolist() == [True, False, False, False, False]
    assert torch.isfinite(filter_logits(LOGITS, top_p=0.7)).tolist() == [True, True, False, False, False]
    assert torch.isfinite(filter_logits(LOGITS, top_p=0.8)).tolist() == [True, True, True, False, False]
    assert torch.isfinite(filter_logits(LOGITS, top_p=0.01)).sum() == 1  # the most likely always stays
    # batched rows with different orders
    rows = torch.stack([LOGITS, LOGITS.flip(0)])
    kept = torch.isfinite(filter_logits(rows, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False, False], [False, False, False, True, True]]


def test_sampling_frequencies_follow_filtered_temperature_softmax():
    g = torch.Generator().manual_seed(0)
    n = 20000
    draws = sample_logits(LOGITS.expand(n, 5), SamplingConfig(temperature=0.5, top_k=3), g)
    freq = torch.bincount(draws, minlength=5).double() / n
    p = torch.tensor([0.5, 0.25, 0.15]) ** 2  # temperature 0.5 squares the probabilities
    p = p / p.sum()
    assert freq[3:].sum() == 0
    assert torch.allclose(freq[:3], p.double(), atol=0.015)
    greedy = sample_logits(LOGITS.expand(50, 5), SamplingConfig(temperature=1e-4), g)
    assert bool((greedy == 0).all())


def test_cfg_combine():
    cond, uncond = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    assert torch.allclose(cfg_combine(cond, uncond, 1.0), cond)
    assert torch.allclose(cfg_combine(cond, uncond, 0.0), uncond)
    assert torch.allclose(cfg_combine(cond, uncond, 3.0), torch.tensor([4.0, -2.0]))


def test_cfg_sharpens_towards_the_condition():
    """Guidance > 1 moves probability to what the condition raises over the unconditional."""
    cond = torch.log(torch.tensor([0.4, 0.6]))
    uncond = torch.log(torch.tensor([0.6, 0.4]))
    p1 = cfg_combine(cond, uncond, 1.0).softmax(-1)[1]
    p3 = cfg_combine(cond, uncond, 3.0).softmax(-1)[1]
    assert p3 > p1 > 0.5
    assert math.isclose(float(p3), 1 / (1 + (0.4 / 0.6) ** 5), rel_tol=1e-5)


@pytest.mark.parametrize("kw,match", [({"temperature": 0}, "temperature"), ({"top_k": -1}, "top_k"),
                                      ({"top_p": 1.5}, "top_p"), ({"cfg_scale": -1}, "cfg_scale")])  # fmt: skip
def test_bad_settings_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        SamplingConfig(**kw)
