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


def test_dit_validation_scores_the_ema_weights_that_ship_and_the_training_weights_beside_them():
    from mmgen.dit.model import MultimodalDiT
    from mmgen.train.dit_module import DiTModule

    torch.manual_seed(0)
    specs = {"audio": {"channels": 4, "rate_hz": 7.5}, "motion": {"channels": 3, "rate_hz": 7.5}}
    module = DiTModule(MultimodalDiT(modalities=specs, d_model=32, depth=1, num_heads=2, patch_size=2,
                                     segment_seconds=0.5)).eval()
    assert not module.model.check_levels and not module.ema.ema.check_levels  # no host sync in either pass
    with torch.no_grad():  # the EMA copy drifts away from the training weights, as after many steps
        for p in module.ema.ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = {"latents": {"audio": torch.randn(3, 30, 4), "motion": torch.randn(3, 30, 3)}}
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    module.log_dict = lambda values, **kw: logged.update({k: float(v) for k, v in values.items()})
    module.validation_step(batch, 3)

    def loss_of(model):
        torch.manual_seed(1234 + 3)  # validation's fixed generator for batch 3
        return float(module._loss(batch, model)[0])

    assert logged["val/loss"] == pytest.approx(loss_of(module.ema.ema), rel=1e-6)
    assert logged["val/raw/loss"] == pytest.approx(loss_of(module.model), rel=1e-6)
    assert abs(logged["val/loss"] - logged["val/raw/loss"]) > 1e-3  # two different models were scored
    assert {"val/loss/audio", "val/loss/motion", "val/raw/loss/audio"} <= set(logged)
    without_ema = DiTModule(MultimodalDiT(modalities=specs, d_model=32, depth=1, num_heads=2, patch_size=2,
                                          segment_seconds=0.5), ema_decay=None).eval()
    logged.clear()
    without_ema.log, without_ema.log_dict = module.log, module.log_dict
    without_ema.validation_step(batch, 3)
    assert "val/loss" in logged and not any(k.startswith("val/raw") for k in logged)


def test_lr_scales_give_named_parts_their_own_learning_rate():
    from types import SimpleNamespace

    from mmgen.dit.model import MultimodalDiT
    from mmgen.train.dit_module import DiTModule

    specs = {"audio": {"channels": 4, "rate_hz": 7.5}, "video": {"channels": 3, "rate_hz": 7.5, "spatial": [4, 4]}}

    def module(**kw):
        dit = MultimodalDiT(modalities=specs, d_model=32, depth=1, num_heads=2, patch_size=2, aligned_rate_hz=15.0,
                            map_channels=3, map_size=8)  # fmt: skip
        m = DiTModule(dit, lr=1e-3, **kw)
        m.trainer = SimpleNamespace(max_steps=100)  # what configure_optimizers reads of the trainer
        return m

    m = module(lr_scales={"model.maps.": 3.0, "model.maps.head.": 10.0})
    optimizer = m.configure_optimizers()["optimizer"]
    lr_of = {id(p): g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}  # before warmup
    named = dict(m.named_parameters())
    assert lr_of[id(named["model.maps.proj.weight"])] == pytest.approx(3e-3)
    assert lr_of[id(named["model.maps.head.up.weight"])] == pytest.approx(1e-2)  # the longer prefix wins
    assert lr_of[id(named["model.in_proj.audio.weight"])] == pytest.approx(1e-3)
    assert not any(n.startswith("ema.") and id(p) in lr_of for n, p in named.items())
    plain = module().configure_optimizers()["optimizer"]
    assert len(plain.param_groups) == 2 and all(g["initial_lr"] == 1e-3 for g in plain.param_groups)  # as before lr_scales
    with pytest.raises(ValueError, match="no parameter starts with it"):
        module(lr_scales={"model.mapz.": 3.0})
    with pytest.raises(ValueError, match="positive factor"):
        module(lr_scales={"model.maps.": 0.0})
