import math

import pytest
import torch
from torch import nn

from mmgen.train.ema import EMA
from mmgen.train.schedule import warmup_cosine


def test_ema_matches_the_recurrence():
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.9, warmup=False)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model)
        expected = [0.9 * e + 0.1 * p.detach() for e, p in zip(expected, model.parameters())]
    for e, p in zip(expected, ema.ema.parameters()):
        assert torch.allclose(e, p, atol=1e-6)
    assert int(ema.num_updates) == 5
    assert not any(p.requires_grad for p in ema.ema.parameters())


def test_ema_warmup_decay_and_state_dict_round_trip():
    ema = EMA(nn.Linear(2, 2), decay=0.999)
    assert float(ema.current_decay()) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    ema.num_updates.fill_(10_000)
    assert math.isclose(float(ema.current_decay()), 0.999, rel_tol=1e-6)
    other = EMA(nn.Linear(2, 2), decay=0.999)
    other.load_state_dict(ema.state_dict())
    assert int(other.num_updates) == 10_000
    with pytest.raises(ValueError, match="decay"):
        EMA(nn.Linear(1, 1), decay=1.0)


def test_warmup_cosine_shape():
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100, min_ratio=0.0) == pytest.approx(0.5)
    assert warmup_cosine(100, 10, 100, min_ratio=0.2) == pytest.approx(0.2)
    assert warmup_cosine(1000, 10, 100, min_ratio=0.2) == pytest.approx(0.2)
