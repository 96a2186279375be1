"""Residual VQ: round-trip error falls with more codebooks, dead codes come back, usage stats."""

import itertools

import pytest
import torch

from mmgen.lm.quantizer import ResidualVQ


def _data(n: int = 2048, d: int = 8, seed: int = 0) -> torch.Tensor:
    centres = torch.randn(16, d, generator=torch.Generator().manual_seed(0)) * 2  # one distribution
    g = torch.Generator().manual_seed(seed + 1)
    x = centres[torch.randint(16, (n,), generator=g)] + 0.5 * torch.randn(n, d, generator=g)
    return x.view(n // 32, 32, d)  # [B, T, D]


def _fit(rvq: ResidualVQ, x: torch.Tensor, steps: int = 40) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        rvq.fit_step(x[torch.randperm(x.shape[0], generator=g)[:32]], generator=g)


def _kill_half(rvq: ResidualVQ) -> None:
    """Move half of codebook 0 far from every vector (with its EMA statistics): never chosen."""
    layer = rvq.layers[0]
    layer.cluster_size[:16] = 1e-3
    layer.embed_sum[:16] = 1.0  # codebook = embed_sum / cluster_size ~ 1e3
    layer.codebook[:16] = 1e3


def test_round_trip_error_decreases_with_codebooks():
    x = _data()
    rvq = ResidualVQ(dim=8, num_codebooks=4, codebook_size=32, dropout=0.5)
    _fit(rvq, x)
    errors = rvq.round_trip(_data(seed=5))  # held-out draws of the same distribution
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[0] < 0.25 and errors[-1] < 0.5 * errors[0], errors
    codes = rvq.encode(x[:2])
    assert codes.shape == (2, 4, 32) and codes.dtype == torch.long
    # decoding the first n codebooks equals the partial residual sum
    partial = rvq.decode(codes[:, :2])
    assert torch.allclose(partial, rvq.layers[0].decode(codes[:, 0]) + rvq.layers[1].decode(codes[:, 1]))


def test_dead_code_restart_revives_unused_codes():
    x = _data()
    rvq = ResidualVQ(dim=8, num_codebooks=1, codebook_size=32, dropout=0.0, kmeans_iters=0, dead_threshold=1.0)
    _fit(rvq, x, steps=1)
    layer = rvq.layers[0]
    _kill_half(rvq)
    used_before = rvq.usage(x)["used"][0]
    assert used_before <= 0.5
    stats = rvq.fit_step(x[:32], generator=torch.Generator().manual_seed(0))
    assert stats["restarts"] >= 16
    assert float(layer.codebook[:16].abs().max()) < 100  # moved onto data vectors
    _fit(rvq, x, steps=20)
    assert rvq.usage(x)["used"][0] > 0.9


def test_without_restarts_dead_codes_stay_dead():
    x = _data()
    rvq = ResidualVQ(dim=8, num_codebooks=1, codebook_size=32, dropout=0.0, kmeans_iters=0, dead_threshold=0.0)
    _fit(rvq, x, steps=1)
    _kill_half(rvq)
    _fit(rvq, x, steps=5)
    assert rvq.usage(x)["used"][0] <= 0.5


def test_usage_perplexity_of_uniform_codes():
    rvq = ResidualVQ(dim=2, num_codebooks=1, codebook_size=4, dropout=0.0)
    rvq.layers[0].codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    x = rvq.layers[0].codebook.repeat(5, 1)[None]  # every code 5 times
    usage = rvq.usage(x)
    assert usage["used"] == [1.0] and usage["perplexity"][0] == pytest.approx(4.0)


def test_save_load_and_errors(tmp_path):
    x = _data()
    rvq = ResidualVQ(dim=8, num_codebooks=2, codebook_size=16)
    _fit(rvq, x, steps=3)
    rvq.save_pretrained(tmp_path / "rvq")
    back = ResidualVQ.from_pretrained(tmp_path / "rvq")
    assert torch.equal(back.encode(x[:3]), rvq.encode(x[:3]))
    with pytest.raises(ValueError, match="8 channels"):
        rvq.encode(torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match=r"1\.\.2 codebooks"):
        rvq.decode(torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        rvq.decode(torch.full((1, 1, 4), 16))
    with pytest.raises(ValueError, match="decay"):
        ResidualVQ(dim=8, decay=1.5)


def test_rvq_training_stops_at_max_steps_and_exports(tmp_path):
    import lightning as L
    from torch.utils.data import DataLoader

    from mmgen.train.lm_module import RVQModule

    torch.manual_seed(0)
    items = [{"latents": {"audio": torch.randn(16, 4)}} for _ in range(4)]
    module = RVQModule(ResidualVQ(dim=4, num_codebooks=2, codebook_size=8, rate_hz=7.5), export_dir=str(tmp_path / "rvq"))
    trainer = L.Trainer(max_steps=3, max_epochs=-1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(module, DataLoader(items, batch_size=2))  # 2 batches an epoch: without the count it never ends
    assert module.fit_steps == 3  # the third batch stops it, in the second epoch
    assert ResidualVQ.from_pretrained(tmp_path / "rvq").num_codebooks == 2
