"""MoNL training levels: variant frequencies and structure, p_clean / p_drop statistics, time sampling."""

import dataclasses
import math

import pytest
import torch

from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec, segment_ids
from mmgen.diffusion import MoNLConfig, NoiseLevels, apply_null_text, sample_levels

SPECS = {"audio": ModalitySpec(2, 4.0), "motion": ModalitySpec(2, 2.0)}  # different rates, one time axis
N = 4000  # examples


def batch(n=N):
    return {"audio": torch.zeros(n, 16, 2), "motion": torch.zeros(n, 8, 2)}  # 4 s


def per_segment(levels):
    """[B, M, S] level per (modality, segment) after checking levels are constant within a segment."""
    out = []
    for m in ("audio", "motion"):
        seg = segment_ids(levels[m].shape[1], SPECS[m].rate_hz, 0.5)
        grid = levels[m].view(levels[m].shape[0], 8, -1)  # [B, S, frames per segment]
        assert torch.equal(seg, torch.arange(8).repeat_interleave(grid.shape[2]))
        assert torch.equal(grid.amax(-1), grid.amin(-1)), f"{m}: levels vary inside a segment"
        out.append(grid[..., 0])
    return torch.stack(out, 1)


def test_variants_have_their_structure_and_frequencies():
    cfg = MoNLConfig(p_clean=0.0, p_drop=0.0, p_drop_text=0.0)
    lv = sample_levels(batch(), SPECS, cfg, generator=torch.Generator().manual_seed(0))
    t = per_segment(lv.levels)  # [B, 2, 8]
    assert (t > 0).all() and (t <= 1).all() and lv.text_null is None
    same_mod = (t == t[:, :1]).all(2).all(1)  # modalities agree at every segment
    same_seg = (t == t[..., :1]).all(2).all(1)  # constant over segments
    expected = {
        0: same_mod & same_seg,
        1: same_seg & ~same_mod,
        2: same_mod & ~same_seg,
        3: ~same_mod & ~same_seg,
    }
    for v, ok in expected.items():
        rows = lv.variant == v
        assert ok[rows].all(), f"variant {v} has the wrong structure"
        assert abs(rows.float().mean().item() - 0.25) < 0.03
    cfg = MoNLConfig(
        p_vanilla=1.0,
        p_per_modality=0.0,
        p_per_segment=0.0,
        p_per_modality_segment=0.0,
        p_clean=0.0,
        p_drop=0.0,
    )
    t = per_segment(sample_levels(batch(100), SPECS, cfg).levels)
    assert (t == t[:, :1, :1]).all()


def test_levels_are_uniform_or_logit_normal():
    cfg = MoNLConfig(
        p_clean=0.0,
        p_drop=0.0,
        p_per_modality_segment=1.0,
        p_vanilla=0.0,
        p_per_modality=0.0,
        p_per_segment=0.0,
    )
    t = per_segment(sample_levels(batch(2000), SPECS, cfg, torch.Generator().manual_seed(1)).levels).flatten()
    assert abs(t.mean().item() - 0.5) < 0.01 and abs(t.var().item() - 1 / 12) < 0.003
    cfg = dataclasses.replace(cfg, time_sampling="logit_normal")
    t = per_segment(sample_levels(batch(2000), SPECS, cfg, torch.Generator().manual_seed(1)).levels).flatten()
    inside = ((t > 1 / (1 + math.e)) & (t < 1 / (1 + 1 / math.e))).float().mean().item()
    assert abs(inside - 0.6827) < 0.01  # P(|z| < 1) for logit(t) ~ N(0, 1)


def test_p_clean_patterns():
    cfg = MoNLConfig(p_clean=1.0, p_drop=0.0)
    t = per_segment(sample_levels(batch(), SPECS, cfg, torch.Generator().manual_seed(2)).levels)
    clean = t == 0  # [B, M, S]
    assert clean.any((1, 2)).all() and (~clean).any((1, 2)).all()  # something clean, something left to learn
    whole_modality = clean.all(2) & ~clean.any(2).flip(1)  # one modality all clean, the other untouched
    seg_shared = (clean[:, 0] == clean[:, 1]).all(1)  # segment kinds clean both modalities alike
    assert (whole_modality.any(1) | seg_shared).all()
    assert abs(whole_modality.any(1).float().mean().item() - 0.25) < 0.03
    c = clean[:, 0].long()  # [B, S]
    prefix = seg_shared & (c.diff(dim=1) <= 0).all(1) & (c[:, 0] == 1)
    ends = seg_shared & (c[:, 0] == 1) & (c[:, -1] == 1) & (c.diff(dim=1).abs().sum(1) == 2)
    assert prefix.float().mean() > 0.25  # prefix kind (+ random draws that happen to be prefixes)
    assert ends.float().mean() > 0.25  # ends kind (+ random draws of that shape)


def test_clean_kind_weights_set_how_often_each_task_shape_is_trained():
    cfg = MoNLConfig(p_clean=1.0, p_drop=0.0, clean_kind_weights=(3.0, 0.0, 1.0, 0.0))
    t = per_segment(sample_levels(batch(), SPECS, cfg, torch.Generator().manual_seed(5)).levels)
    clean = t == 0
    whole_modality = (clean.all(2) & ~clean.any(2).flip(1)).any(1)
    c = clean[:, 0].long()
    seg_shared = (clean[:, 0] == clean[:, 1]).all(1)
    ends = seg_shared & (c[:, 0] == 1) & (c[:, -1] == 1) & (c.diff(dim=1).abs().sum(1) == 2)
    assert (whole_modality ^ ends).all()  # only the two weighted kinds, never prefix or random
    assert abs(whole_modality.float().mean().item() - 0.75) < 0.03
    # a kind the example cannot hold drops out and the others keep their ratio: one modality, no "modality"
    one = sample_levels({"audio": torch.zeros(N, 16, 2)}, SPECS, cfg, torch.Generator().manual_seed(6))
    a = (one.levels["audio"].view(N, 8, 2)[..., 0] == 0).long()
    assert ((a[:, 0] == 1) & (a[:, -1] == 1) & (a.diff(dim=1).abs().sum(1) == 2)).all()


def test_default_rates_of_clean_drop_and_null_text():
    lv = sample_levels(batch(), SPECS, MoNLConfig(), torch.Generator().manual_seed(3))
    t = per_segment(lv.levels)
    assert abs((t == 0).any((1, 2)).float().mean().item() - 0.3) < 0.03
    dropped = (t == 1).all(2).any(1)
    assert abs(dropped.float().mean().item() - 0.1) < 0.02
    assert abs(lv.text_null.float().mean().item() - 0.1) < 0.02


def test_absent_mode_removes_a_modality_from_the_batch():
    lv = sample_levels(
        batch(8), SPECS, MoNLConfig(p_drop=1.0, drop_mode="absent"), torch.Generator().manual_seed(0)
    )
    assert len(lv.levels) == 1 and len(lv.absent) == 1 and set(lv.levels) | lv.absent == set(SPECS)


def test_bad_configs_and_levels_raise():
    with pytest.raises(ValueError, match="sum to 1"):
        MoNLConfig(p_vanilla=0.5)
    with pytest.raises(ValueError, match="p_clean"):
        MoNLConfig(p_clean=1.5)
    with pytest.raises(ValueError, match="clean_kinds"):
        MoNLConfig(clean_kinds=("suffix",))
    with pytest.raises(ValueError, match="twice"):
        MoNLConfig(clean_kinds=("ends", "ends"))
    with pytest.raises(ValueError, match="clean_kind_weights"):
        MoNLConfig(clean_kind_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="clean_kind_weights"):
        MoNLConfig(clean_kind_weights=(0.0, 0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="drop_mode"):
        MoNLConfig(drop_mode="zero")
    with pytest.raises(ValueError, match="without a ModalitySpec"):
        sample_levels({"video": torch.zeros(2, 4, 3)}, SPECS)
    with pytest.raises(ValueError, match="expected rank"):
        sample_levels({"audio": torch.zeros(2, 4)}, SPECS)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        NoiseLevels({"audio": torch.full((2, 4), -0.1)})
    with pytest.raises(ValueError, match="both present and absent"):
        NoiseLevels({"audio": torch.zeros(2, 4)}, absent={"audio"})
    with pytest.raises(ValueError, match="batch size"):
        NoiseLevels({"audio": torch.zeros(2, 4), "motion": torch.zeros(3, 4)})
    with pytest.raises(ValueError, match="text_null"):
        NoiseLevels({"audio": torch.zeros(2, 4)}, text_null=torch.zeros(3, dtype=torch.bool))


def test_apply_null_text_swaps_rows():
    cond = Cond(
        context=torch.ones(3, 2, 4),
        context_mask=torch.ones(3, 2, dtype=torch.bool),
        prefix=torch.ones(3, 1, 4),
    )
    null = Cond(
        context=torch.zeros(1, 2, 4),
        context_mask=torch.zeros(1, 2, dtype=torch.bool),
        prefix=torch.full((1, 1, 4), 5.0),
    )
    mixed = apply_null_text(cond, null, torch.tensor([False, True, False]))
    assert mixed.context[:, 0, 0].tolist() == [1, 0, 1] and mixed.context_mask[:, 0].tolist() == [
        True,
        False,
        True,
    ]
    assert mixed.prefix[:, 0, 0].tolist() == [1, 5, 1]
    with pytest.raises(ValueError, match="null Cond lacks"):
        apply_null_text(cond, Cond(context=torch.zeros(1, 2, 4)), torch.tensor([True, False, False]))


def test_all_but_one_leaves_exactly_one_whole_modality_to_generate():
    specs = {**SPECS, "video": ModalitySpec(channels=2, rate_hz=4.0, spatial=(2, 2))}
    x0 = {**batch(), "video": torch.zeros(N, 8, 2, 2, 2)}
    cfg = MoNLConfig(p_clean=1.0, p_drop=0.0, clean_kinds=("all_but_one",))
    levels = sample_levels(x0, specs, cfg, torch.Generator().manual_seed(7)).levels
    clean = torch.stack([(levels[m] == 0).all(1) for m in sorted(levels)], 1)  # [N, 3] whole modality clean
    noisy = torch.stack([(levels[m] > 0).all(1) for m in sorted(levels)], 1)
    assert bool((clean ^ noisy).all()) and bool((noisy.sum(1) == 1).all())  # one generated, the rest given
    share = noisy.float().mean(0)  # which one: uniform
    assert bool(((share - 1 / 3).abs() < 0.05).all()), share
    assert MoNLConfig().clean_kinds == ("modality", "prefix", "ends", "random")  # the default is unchanged
