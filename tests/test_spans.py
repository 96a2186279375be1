import pytest
import torch

from mmgen.core.blend import blend_runs, runs


def test_runs_finds_every_maximal_run():
    assert runs(torch.tensor([1, 1, 0, 1, 0, 0, 1], dtype=torch.bool)) == [(0, 2), (3, 4), (6, 7)]
    assert runs(torch.zeros(3, dtype=torch.bool)) == []


def test_blend_runs_along_a_batch_dim_holds_at_the_ends_and_rounds_integers():
    x = torch.tensor([[0, 9, 9, 30, 40, 7]], dtype=torch.uint8)  # [B=1, N=6]
    mask = torch.tensor([False, True, True, False, False, True])
    out = blend_runs(x, mask, dim=1)
    assert out.dtype == torch.uint8
    assert out.tolist() == [[0, 10, 20, 30, 40, 40]]  # line 0 -> 30 across the run, 40 held at the end
    head = blend_runs(torch.tensor([5.0, 5.0, 1.0, 2.0]), torch.tensor([True, True, False, False]))
    assert head.tolist() == [1.0, 1.0, 1.0, 2.0]


def test_blend_runs_refuses_a_fully_masked_or_mismatched_mask():
    with pytest.raises(ValueError, match="every frame is masked"):
        blend_runs(torch.zeros(3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask has 2 frames, x has 3"):
        blend_runs(torch.zeros(3), torch.ones(2, dtype=torch.bool))
