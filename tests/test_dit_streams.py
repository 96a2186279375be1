"""Time-aligned streams: resampling against numpy references, shift equivariance in the DiT, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dit_helpers import perturb

from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec
from mmgen.dit import MultimodalDiT
from mmgen.dit.streams import resample_stream, stream_frames


def area_reference(values: np.ndarray, mask: np.ndarray, src: float, dst: float, frames: int):
    """Explicit overlap loops in float64: latent frame i averages the present stream frames over
    [i / dst, (i + 1) / dst), each weighted by the seconds it shares with that interval."""
    b, s, f = values.shape
    out, present = np.zeros((b, frames, f)), np.zeros((b, frames), dtype=bool)
    for n in range(b):
        for i in range(frames):
            lo, hi = i / dst, (i + 1) / dst
            acc, wsum = np.zeros(f), 0.0
            for j in range(s):
                w = max(0.0, min(hi, (j + 1) / src) - max(lo, j / src))
                if w > 1e-12 and mask[n, j]:
                    acc += w * values[n, j]
                    wsum += w
            if wsum > 0:
                out[n, i], present[n, i] = acc / wsum, True
    return out, present


@pytest.mark.parametrize(
    ("src", "dst"),
    [(30.0, 7.5), (24.0, 7.5), (25.0, 3.75), (21.5, 7.5), (7.5, 7.5), (11.0, 4.0)],
)
def test_area_average_matches_an_explicit_overlap_computation(src, dst):
    g = np.random.default_rng(0)
    s = int(src * 3) + 1  # ~3 s, not a whole number of latent frames
    values = g.normal(size=(2, s, 3))
    mask = g.random((2, s)) > 0.3
    mask[1, : int(src)] = False  # example 1: the first second is absent
    frames = stream_frames(s / src, dst) + 2  # two latent frames past the end of the stream
    want, want_present = area_reference(values, mask, src, dst, frames)
    got, present = resample_stream(torch.tensor(values).float(), torch.tensor(mask), src, dst, frames)
    assert np.array_equal(present.numpy(), want_present)
    assert not present[:, -1].any() and not present[1, : int(dst) - 1].any()
    np.testing.assert_allclose(got.numpy()[want_present], want[want_present], rtol=1e-5, atol=1e-6)
    assert torch.equal(got[~present], torch.zeros_like(got[~present]))


@pytest.mark.parametrize(("src", "dst"), [(3.75, 7.5), (2.0, 7.5), (5.0, 7.0)])
def test_coarser_streams_are_linearly_interpolated_like_numpy_interp(src, dst):
    g = np.random.default_rng(1)
    s = 9
    values = g.normal(size=(1, s, 2))
    frames = stream_frames(s / src, dst) + 3
    got, present = resample_stream(torch.tensor(values).float(), None, src, dst, frames)
    times = np.arange(frames) / dst
    inside = times < s / src - 1e-9  # the stream covers [0, S / src)
    assert np.array_equal(present[0].numpy(), inside)
    for c in range(2):  # np.interp holds the last value between (S - 1) / src and S / src
        want = np.interp(times[inside], np.arange(s) / src, values[0, :, c])
        np.testing.assert_allclose(got[0, inside, c].numpy(), want, rtol=1e-5, atol=1e-6)


def test_absent_neighbours_drop_out_of_the_interpolation():
    values = torch.tensor([[[0.0], [10.0], [20.0]]])
    mask = torch.tensor([[True, False, True]])
    got, present = resample_stream(values, mask, 1.0, 2.0, 6)  # times 0, .5, 1, 1.5, 2, 2.5
    assert present.tolist() == [[True, True, False, True, True, True]]
    assert got[0, :, 0].tolist() == [0.0, 0.0, 0.0, 20.0, 20.0, 20.0]


SPECS = {
    "audio": ModalitySpec(4, 7.5),
    "motion": ModalitySpec(3, 15.0),
    "video": ModalitySpec(2, 3.75, (4, 4)),
}


def aligned_model(rate: float) -> MultimodalDiT:
    torch.manual_seed(0)
    model = MultimodalDiT(SPECS, d_model=16, depth=1, num_heads=2, aligned_dim=3, aligned_rate_hz=rate)
    return perturb(model)


def token_embeddings(model: MultimodalDiT, cond: Cond, frames: dict[str, int]) -> dict[str, torch.Tensor]:
    """Per-modality token embeddings [B, T, P, D] of all-zero latents: constant except for the stream."""
    x = {n: torch.zeros(1, *model.specs[n].latent_shape(t)) for n, t in frames.items()}
    layout, _, _ = model.layout(frames, 0, torch.device("cpu"))
    with torch.no_grad():
        t = {n: torch.zeros(1, f) for n, f in frames.items()}
        h = model._embed_tokens(x, t, None, layout, cond)
    return {n: v.unflatten(1, (frames[n], -1)) for n, v in layout.split(h).items()}


@pytest.mark.parametrize(
    ("rate", "k", "shift", "absent"),
    [
        (30.0, 8, {"audio": 2, "motion": 4, "video": 1}, {"audio": 2, "motion": 4, "video": 1}),  # area
        # linear (audio, motion): a latent frame between an absent and a present stream frame takes the present one
        (3.75, 1, {"audio": 2, "motion": 4, "video": 1}, {"audio": 1, "motion": 1, "video": 1}),
    ],
)
def test_shifting_the_stream_shifts_the_token_additions_by_whole_latent_frames(rate, k, shift, absent):
    model = aligned_model(rate)
    frames = {"audio": 30, "motion": 60, "video": 15}  # 4 s
    s = stream_frames(4.0, rate)
    stream = torch.randn(1, s, 3)
    delayed = torch.cat([torch.zeros(1, k, 3), stream], dim=1)  # k frames later, the first k absent
    mask = torch.arange(s + k)[None] >= k
    base = token_embeddings(model, Cond(aligned=stream), frames)
    moved = token_embeddings(model, Cond(aligned=delayed, aligned_mask=mask), frames)
    plain = token_embeddings(
        model, Cond(aligned=torch.zeros(1, s, 3), aligned_mask=torch.zeros(1, s, dtype=torch.bool)), frames
    )
    for name, j in shift.items():
        t = frames[name]
        assert torch.equal(moved[name][:, j:], base[name][:, : t - j])  # exactly
        n = absent[name]
        assert torch.equal(moved[name][:, :n], plain[name][:, :n])  # absent: the learned null
        assert not torch.allclose(moved[name][:, n], plain[name][:, n])
        assert not torch.allclose(base[name][:, j:], base[name][:, : t - j])  # the stream does vary
        # video: every patch of a frame gets the same addition
        diff = base[name] - plain[name]
        assert torch.allclose(diff, diff[:, :, :1].expand_as(diff))


def test_aligned_targets_limit_which_modalities_see_the_stream():
    torch.manual_seed(0)
    model = perturb(
        MultimodalDiT(
            SPECS,
            d_model=16,
            depth=1,
            num_heads=2,
            aligned_dim=3,
            aligned_rate_hz=30.0,
            aligned_targets=["audio"],
        )
    )
    frames = {"audio": 8, "motion": 16, "video": 4}
    a = token_embeddings(model, Cond(aligned=torch.randn(1, 32, 3)), frames)
    b = token_embeddings(model, Cond(aligned=torch.randn(1, 32, 3)), frames)
    assert not torch.allclose(a["audio"], b["audio"])
    assert torch.equal(a["motion"], b["motion"]) and torch.equal(a["video"], b["video"])
    assert set(model.aligned.proj) == {"audio"}


def test_bad_streams_and_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="values must be"):
        resample_stream(torch.zeros(2, 3), None, 30.0, 7.5, 4)
    with pytest.raises(ValueError, match="mask must be bool"):
        resample_stream(torch.zeros(1, 3, 2), torch.ones(1, 3), 30.0, 7.5, 4)
    with pytest.raises(ValueError, match="src_rate must be a positive"):
        resample_stream(torch.zeros(1, 3, 2), None, 0.0, 7.5, 4)
    with pytest.raises(ValueError, match="dst_rate must be a positive"):
        resample_stream(torch.zeros(1, 3, 2), None, 30.0, float("nan"), 4)
    with pytest.raises(ValueError, match="at least one"):
        resample_stream(torch.zeros(1, 0, 2), None, 30.0, 7.5, 4)
    with pytest.raises(ValueError, match="needs aligned_rate_hz"):
        MultimodalDiT(SPECS, d_model=16, depth=1, num_heads=2, aligned_dim=3)
    with pytest.raises(ValueError, match="without aligned_dim"):
        MultimodalDiT(SPECS, d_model=16, depth=1, num_heads=2, aligned_rate_hz=30.0)
    with pytest.raises(ValueError, match="aligned_targets must name"):
        MultimodalDiT(
            SPECS,
            d_model=16,
            depth=1,
            num_heads=2,
            aligned_dim=3,
            aligned_rate_hz=30.0,
            aligned_targets=["sound"],
        )
    with pytest.raises(ValueError, match="pooled_dim must be"):
        MultimodalDiT(SPECS, d_model=16, depth=1, num_heads=2, pooled_dim=0)
    model = MultimodalDiT(
        SPECS, d_model=16, depth=1, num_heads=2, aligned_dim=3, aligned_rate_hz=30.0, pooled_dim=2
    )
    x = {"audio": torch.zeros(1, 8, 4)}
    t = {"audio": torch.full((1, 8), 0.5)}
    good = Cond(aligned=torch.zeros(1, 32, 3), pooled=torch.zeros(1, 2))
    model(x, t, good)
    with pytest.raises(
        ValueError, match=r"takes a time-aligned stream \(width 3\) but cond.aligned is missing"
    ):
        model(x, t, Cond(pooled=torch.zeros(1, 2)))
    with pytest.raises(ValueError, match="cond.aligned has width 4, the model expects 3"):
        model(x, t, Cond(aligned=torch.zeros(1, 32, 4), pooled=torch.zeros(1, 2)))
    with pytest.raises(ValueError, match="cond.pooled has width 3, the model expects 2"):
        model(x, t, Cond(aligned=torch.zeros(1, 32, 3), pooled=torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="batch size"):
        model(x, t, Cond(aligned=torch.zeros(2, 32, 3), pooled=torch.zeros(2, 2)))
    with pytest.raises(ValueError, match="aligned_mask must be bool"):
        Cond(aligned=torch.zeros(1, 32, 3), aligned_mask=torch.ones(1, 32))
    with pytest.raises(ValueError, match="pooled must be"):
        Cond(pooled=torch.zeros(1, 1, 2))
    plain = MultimodalDiT(SPECS, d_model=16, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="cond.aligned given but the model has no aligned input"):
        plain(x, t, Cond(aligned=torch.zeros(1, 32, 3)))
