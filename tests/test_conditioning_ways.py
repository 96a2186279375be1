"""The conditioner contract's four ways (context, prefix, global, aligned), chosen per conditioner in
its config; the ConditionEncoder's sums, resampling, drops per group, GroupedCond and save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgen.conditioning import (
    ConditionEncoder,
    FeatureStreamConditioner,
    MelodyConditioner,
    QualityConditioner,
    TimingConditioner,
)
from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion.process import VPCosine
from mmgen.dit.model import MultimodalDiT
from mmgen.dit.streams import resample_stream


def streams(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"sync": torch.randn(b, 48, 3, generator=g), "beat": torch.randn(b, 10, 1, generator=g)}


def encoder(**kw) -> ConditionEncoder:
    torch.manual_seed(0)
    conditioners = {
        "sync": FeatureStreamConditioner(6, feature_dim=3, rate_hz=24.0, key="sync"),  # 2 s
        "beat": FeatureStreamConditioner(6, feature_dim=1, rate_hz=4.0, key="beat"),  # 2.5 s
        "timing": TimingConditioner(5, keys=("seconds_total",), fourier_dim=4, target="global"),
        "quality": QualityConditioner(5, target="global"),
    }
    return ConditionEncoder(
        conditioners, pooled_dim=5, aligned_dim=6, aligned_rate_hz=30.0, groups={"sync": "video"}, **kw
    )


def batch(b: int = 2) -> dict:
    return dict(streams(b), seconds_total=[3.0, 9.0][:b], quality=[1.0, 5.0][:b])


def test_each_conditioner_chooses_its_way_in_its_config():
    assert (
        TimingConditioner(4).target == "prefix" and TimingConditioner(4, target="global").target == "global"
    )
    assert (
        MelodyConditioner(4, sample_rate=8000, n_fft=512, hop_length=256, target="aligned").rate_hz
        == 8000 / 256
    )
    assert set(MelodyConditioner.supported_ways()) == {"context", "global", "aligned"}  # global: mean chroma
    assert set(TimingConditioner.supported_ways()) == {"prefix", "global"}
    with pytest.raises(ValueError, match=r"target must be one of \('prefix', 'global'\), got 'aligned'"):
        TimingConditioner(4, target="aligned")
    with pytest.raises(ValueError, match="target must be one of"):
        QualityConditioner(4, target="sideways")
    t = TimingConditioner(4, keys=("a", "b"), fourier_dim=4, target="global")
    assert t.null_embedding.shape == (1, 4)  # one global vector, not one per number
    tokens, mask = t({"a": [1.0], "b": [2.0]})
    prefix = TimingConditioner(4, keys=("a", "b"), fourier_dim=4)
    prefix.embedders.load_state_dict(t.embedders.state_dict())
    want = prefix({"a": [1.0], "b": [2.0]})[0].mean(dim=1, keepdim=True)  # the mean of its prefix tokens
    assert tokens.shape == (1, 1, 4) and mask.tolist() == [[True]]
    torch.testing.assert_close(tokens, want)


def test_the_encoder_sums_global_and_resampled_aligned_conditioners():
    enc = encoder()
    b = batch()
    cond = enc(batch=b)
    assert cond.context is None and cond.prefix is None and cond.aligned_mask is None
    assert cond.pooled.shape == (2, 5) and cond.aligned.shape == (2, 75, 6)  # 2.5 s at 30 Hz
    with torch.no_grad():
        pooled = enc.conditioners["timing"](b)[0][:, 0] + enc.conditioners["quality"](b)[0][:, 0]
        torch.testing.assert_close(cond.pooled, pooled)
        want = 0
        for name, rate in (("sync", 24.0), ("beat", 4.0)):
            c = enc.conditioners[name]
            tokens, mask = c(b)
            values, present = resample_stream(tokens, mask, rate, 30.0, 75)
            want = want + torch.where(present[..., None], values, c.null_embedding[0])
    torch.testing.assert_close(cond.aligned, want, rtol=0, atol=0)
    # past the 2 s sync stream the sync conditioner stands at its null embedding
    tail = (
        cond.aligned[:, 60:] - resample_stream(enc.conditioners["beat"](b)[0], None, 4.0, 30.0, 75)[0][:, 60:]
    )
    torch.testing.assert_close(tail, enc.conditioners["sync"].null_embedding[0].expand_as(tail))
    assert enc(batch=b, aligned_frames=40).aligned.shape == (2, 40, 6)


def test_absent_stream_frames_and_dropped_conditioners_take_the_null_embedding():
    enc = encoder()
    b = batch()
    sync_null = enc.conditioners["sync"].null_embedding[0]
    mask = torch.ones(2, 48, dtype=torch.bool)
    mask[0] = False  # example 0 has no sync features at all
    with torch.no_grad():
        missing = enc(batch=dict(b, sync_mask=mask))
        dropped = enc(batch=b, drop={"sync": torch.tensor([True, False])})
        by_group = enc(batch=b, drop={"video": torch.tensor([True, False])})
        full = enc(batch=b)
    torch.testing.assert_close(missing.aligned, dropped.aligned)  # missing == dropped: one learned state
    torch.testing.assert_close(by_group.aligned, dropped.aligned)  # group "video" holds the sync stream
    assert torch.equal(dropped.aligned[1], full.aligned[1]) and not torch.equal(
        dropped.aligned[0], full.aligned[0]
    )
    assert torch.equal(dropped.pooled, full.pooled)
    null = enc.null_cond(2, aligned_frames=75)
    beat_null = enc.conditioners["beat"].null_embedding[0]
    torch.testing.assert_close(null.aligned, (sync_null + beat_null).expand(2, 75, 6))
    with pytest.raises(ValueError, match="give aligned_frames"):
        enc.null_cond(2)
    with pytest.raises(ValueError, match="neither a conditioner"):
        enc(batch=b, drop={"nothing": torch.tensor([True, False])})


def test_grouped_conds_drop_whole_groups_and_match_forward():
    enc = encoder()
    b = batch()
    assert enc.groups == {"video", "text"} and enc.group_of["beat"] == "text"
    with torch.no_grad():
        grouped = enc.grouped(batch=b)
        ones = torch.ones(2, dtype=torch.bool)
        for dropped in ([], ["video"], ["text"], ["video", "text"]):
            want = enc(batch=b, drop={g: ones for g in dropped})
            got = grouped(dropped)
            for field in ("pooled", "aligned"):
                torch.testing.assert_close(getattr(got, field), getattr(want, field), rtol=0, atol=0)
    assert grouped(["video"]) is grouped({"video"})  # cached per set
    assert grouped.batch_size == 2 and grouped.map(lambda v: v[:1]).batch_size == 1
    with pytest.raises(ValueError, match="unknown condition groups"):
        grouped(["audio"])


def test_an_encoder_with_every_way_saves_and_loads(tmp_path):
    enc = encoder()
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1)
    enc.save_pretrained(tmp_path / "cond")
    loaded = ConditionEncoder.from_pretrained(tmp_path / "cond")
    assert loaded.group_of == enc.group_of and loaded.aligned_rate_hz == 30.0
    assert loaded.conditioners["timing"].target == "global"
    a, c = enc.eval()(batch=batch()), loaded(batch=batch())
    assert torch.equal(a.aligned, c.aligned) and torch.equal(a.pooled, c.pooled)


def test_the_encoder_output_drives_a_dit_with_every_way():
    enc = encoder()
    dit = MultimodalDiT(
        {"audio": ModalitySpec(4, 7.5)},
        d_model=16,
        depth=1,
        num_heads=2,
        pooled_dim=5,
        aligned_dim=6,
        aligned_rate_hz=30.0,
    )
    x, t = {"audio": torch.randn(2, 15, 4)}, {"audio": torch.full((2, 15), 0.5)}
    out = dit(x, t, enc(batch=batch()))
    assert out["audio"].shape == (2, 15, 4)


def test_feature_streams_take_ragged_lists_and_reject_bad_input():
    c = FeatureStreamConditioner(4, feature_dim=2, rate_hz=10.0)
    f = c.encode({"stream": [np.zeros((3, 2)), np.ones((5, 2))]})
    assert f.values.shape == (2, 5, 2) and f.mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    with pytest.raises(ValueError, match=r"features must be \[B, S >= 1, F = 2\]"):
        c.encode({"stream": np.zeros((2, 5, 3))})
    with pytest.raises(ValueError, match="stream_mask'] must be bool"):
        c.encode({"stream": np.zeros((2, 5, 2)), "stream_mask": np.ones((2, 4), dtype=bool)})
    with pytest.raises(ValueError, match="NaN"):
        c.encode({"stream": np.full((1, 5, 2), np.nan)})
    with pytest.raises(ValueError, match="rate_hz must be a positive"):
        FeatureStreamConditioner(4, feature_dim=2, rate_hz=0.0)
    with pytest.raises(ValueError, match="give aligned_rate_hz"):
        ConditionEncoder({"s": c}, aligned_dim=4)
    with pytest.raises(ValueError, match="produces aligned tokens but aligned_dim is None"):
        ConditionEncoder({"s": c}, aligned_rate_hz=30.0)
    with pytest.raises(ValueError, match="groups names unknown conditioners"):
        ConditionEncoder({"s": c}, aligned_dim=4, aligned_rate_hz=30.0, groups={"t": "video"})
    with pytest.raises(ValueError, match="cannot batch Conds whose aligned shapes differ"):
        Cond.cat([Cond(aligned=torch.zeros(1, 3, 2)), Cond(aligned=torch.zeros(1, 4, 2))])


def test_video2audio_guidance_drops_the_video_and_its_stream_together():
    """`sample` takes the encoder's GroupedCond: group "video" re-noises the GIVEN video AND nulls
    the sync stream derived from it, in the same unconditional branch."""
    from mmgen.diffusion import sample
    from mmgen.diffusion.tasks import video2audio

    specs = {"audio": ModalitySpec(4, 7.5), "video": ModalitySpec(2, 3.75, (2, 2))}
    torch.manual_seed(0)
    enc = ConditionEncoder(
        {"sync": FeatureStreamConditioner(6, feature_dim=3, rate_hz=24.0, key="sync")},
        aligned_dim=6,
        aligned_rate_hz=30.0,
        groups={"sync": "video"},
    )
    dit = MultimodalDiT(specs, d_model=16, depth=1, num_heads=2, aligned_dim=6, aligned_rate_hz=30.0)
    seen = []

    def model_fn(x, t, cond):
        seen.append((t["video"].clone(), cond.aligned.clone()))
        return dit(x, t, cond)

    video = torch.randn(1, 8, 2, 2, 2)
    with torch.no_grad():
        grouped = enc.grouped(batch={"sync": torch.randn(1, 48, 3)}, aligned_frames=60)
        out = sample(
            model_fn,
            video2audio(),
            specs,
            {"video": video},
            seconds=2.0,
            steps=3,
            process=VPCosine(prediction="v"),
            cond=grouped,
            guidance={"video": 2.0},
            progress=False,
        )
    assert out["audio"].shape == (1, 15, 4) and torch.equal(out["video"], video)
    levels, aligned = seen[0]  # one batched call of 2 branches: [dropped, kept]
    null = enc.conditioners["sync"].null_embedding[0]
    assert torch.equal(levels[0], torch.ones(8)) and torch.equal(levels[1], torch.zeros(8))
    torch.testing.assert_close(aligned[0], null.expand(60, 6))
    torch.testing.assert_close(aligned[1], grouped().aligned[0])
