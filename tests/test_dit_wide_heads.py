"""Wide token heads: tokens holding more numbers than d_model get a read-out that spans all of them."""

from __future__ import annotations

import torch
from dit_helpers import assert_new_part_is_a_no_op, perturb

from mmgen.core.timeline import ModalitySpec
from mmgen.dit import MultimodalDiT

# a video token holds 2 x 2 x 4 = 16 numbers; the model is 8 wide
SPECS = {
    "audio": ModalitySpec(channels=4, rate_hz=7.5),
    "video": ModalitySpec(channels=4, rate_hz=7.5, spatial=(4, 4)),
}


def _dit(wide_heads: bool, seed: int = 0) -> MultimodalDiT:
    torch.manual_seed(seed)
    return MultimodalDiT(SPECS, d_model=8, depth=1, num_heads=1, patch_size=2, wide_heads=wide_heads)


def _inputs(batch: int = 2, frames: int = 15, seed: int = 0, level: float = 0.7):
    g = torch.Generator().manual_seed(seed)
    x = {
        "audio": torch.randn(batch, frames, 4, generator=g),
        "video": torch.randn(batch, frames, 4, 4, 4, generator=g),
    }
    t = {name: torch.full((batch, frames), level) for name in x}
    return x, t


def _token_rank(pred: torch.Tensor) -> int:
    """Rank of the predicted video tokens [B, T, h, w, C] as rows of 16 numbers, about their mean."""
    tokens = pred.unflatten(2, (2, 2)).unflatten(4, (2, 2)).permute(0, 1, 2, 4, 3, 5, 6).reshape(-1, 16)
    return int(torch.linalg.matrix_rank(tokens - tokens.mean(0), rtol=1e-4))


def test_only_modalities_wider_than_the_model_get_a_head_and_it_starts_as_an_exact_no_op():
    wide = _dit(True)
    assert set(wide.wide_heads) == {"video"}  # an audio token holds 4 numbers
    x, t = _inputs()
    assert_new_part_is_a_no_op(perturb(_dit(False)), wide, "wide_heads.", x, t)


def test_a_linear_read_out_spans_only_d_model_directions_the_wide_head_all_of_them():
    x, t = _inputs(batch=4)
    assert (
        _token_rank(perturb(_dit(False))(x, t)["video"]) <= 8
    )  # the defect: 8 of 16 directions never predicted
    assert _token_rank(perturb(_dit(True))(x, t)["video"]) == 16


def test_the_head_learns_what_the_linear_read_out_cannot():
    """Target: the noisy token itself (all 16 numbers). Through d_model = 8 a linear read-out of a
    linear in-projection keeps at most 8 of them; the head sees the token and recovers it."""
    losses = {}
    for wide_heads in (False, True):
        model = _dit(wide_heads, seed=1)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for step in range(300):
            x, t = _inputs(batch=8, frames=4, seed=step)
            loss = (model(x, t)["video"] - x["video"]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        x, t = _inputs(batch=8, frames=4, seed=10_000)
        with torch.no_grad():
            losses[wide_heads] = float((model(x, t)["video"] - x["video"]).pow(2).mean())
    assert losses[False] > 0.4  # 8 of 16 unit-variance directions lost: about 0.5
    assert losses[True] < 0.5 * losses[False], losses
