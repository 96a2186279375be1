"""Long-form window plans over mixed latent grids (mmgen.diffusion.window_plan)."""

import itertools

import pytest
import torch

from mmgen.core.timeline import ModalitySpec, segment_ids
from mmgen.diffusion import VPCosine, sample_long
from mmgen.diffusion.tasks import interpolate, joint
from mmgen.diffusion.window_plan import harmonize_levels, local_boundaries, plan_windows

RATES = {"audio": 7.5, "motion": 7.5, "video": 3.75, "wave": 21.533, "slow": 2.0}
X0 = VPCosine(prediction="x0")


@pytest.mark.parametrize(
    ("total", "window", "hop"),
    [(61.0, 4.0, 2.0), (10.3, 4.0, 3.0), (600.0, 4.0, 1.7), (4.5, 4.0, 0.3), (3.0, 4.0, 2.0), (30.0, 4.0, 4.0)],
)
def test_every_frame_generated_once_and_overlaps_end_on_segment_edges(total, window, hop):
    plan = plan_windows(total, window, hop, RATES, 0.5)
    assert plan[-1].end == total and plan[0].start == 0.0
    for m, rate in RATES.items():
        n = max(1, round(total * rate))
        spans = [w.spans[m] for w in plan]
        owned = torch.zeros(n, dtype=torch.long)
        for s in spans:
            owned[s.fresh : s.end] += 1
        assert torch.equal(owned, torch.ones(n, dtype=torch.long)), m  # each frame generated once
        for w, s in zip(plan, spans, strict=True):
            assert s.fresh - s.start in local_boundaries(rate, 0.5, s.end - s.start), (m, s)
            assert s.end - s.start <= round(window * rate) + 2  # the training window, +- rounding
            if s.start < s.fresh < n:  # the window starts at the frame nearest its nominal start
                assert abs(s.start - w.start * rate) <= 0.5 + 1e-9
        for a, b in itertools.pairwise(spans):  # the overlap is the previous window's frames
            assert b.start >= a.start and b.fresh == a.end


def test_a_hop_in_seconds_keeps_modalities_aligned_over_ten_minutes():
    plan = plan_windows(600.0, 4.0, 2.0, RATES, 0.5)
    for w in plan:
        starts = [w.spans[m].start / r for m, r in RATES.items()]
        assert max(starts) - min(starts) <= 0.5 / 2.0 + 1e-9  # half a frame of the slowest grid: no drift


def test_harmonize_raises_mixed_segments_to_their_top_level():
    levels = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]])  # 3.75 Hz, segments of 1.875 frames
    seg = segment_ids(8, 3.75, 0.5)  # 0 0 1 1 2 2 3 3
    out = harmonize_levels(levels, 3.75, 0.5)
    assert out.tolist() == [[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]]
    for k in range(int(seg.max()) + 1):
        assert out[0, seg == k].unique().numel() == 1


def test_sample_long_gives_exactly_the_overlap_and_constant_levels_per_segment():
    specs = {"audio": ModalitySpec(2, 7.5), "video": ModalitySpec(2, 3.75, (1, 1))}
    seen = []

    def spy(x, t, cond=None):
        seen.append({m: v.clone() for m, v in t.items()})
        return {m: torch.zeros_like(v) + 0.5 for m, v in x.items()}

    out = sample_long(
        spy, joint(("audio", "video")), specs, seconds=11.0, window_seconds=4.0, hop_seconds=2.3,
        steps=2, process=X0, sampler="ddim", progress=False,
    )
    plan = plan_windows(11.0, 4.0, 2.3, {m: s.rate_hz for m, s in specs.items()}, 0.5)
    assert len(seen) == 2 * len(plan)  # ddim: one call per step
    for w, t in zip(plan, seen[::2], strict=True):  # the first step of each window
        for m, spec in specs.items():
            s = w.spans[m]
            given = (t[m][0] == 0).nonzero().flatten().tolist()
            assert given == list(range(s.fresh - s.start)), (m, s)  # exactly the overlap is GIVEN
            seg = segment_ids(t[m].shape[1], spec.rate_hz, 0.5)
            for k in seg.unique():
                assert t[m][0, seg == k].unique().numel() == 1
    assert out["audio"].shape == (1, round(11 * 7.5), 2) and out["video"].shape == (1, round(11 * 3.75), 1, 1, 2)
    torch.testing.assert_close(out["audio"], torch.full_like(out["audio"], 0.5))


def test_interpolation_keeps_given_frames_across_windows_of_mixed_grids():
    specs = {"audio": ModalitySpec(2, 7.5), "video": ModalitySpec(2, 3.75, (1, 1))}
    given = {"audio": torch.randn(1, 90, 2), "video": torch.randn(1, 45, 1, 1, 2)}  # 12 s
    out = sample_long(
        lambda x, t, cond=None: {m: torch.zeros_like(v) for m, v in x.items()},
        interpolate(("audio", "video"), head=1.0, tail=1.5), specs, given, seconds=12.0,
        window_seconds=4.0, hop_seconds=2.0, steps=2, process=X0, sampler="ddim", progress=False,
    )
    assert torch.equal(out["audio"][:, :8], given["audio"][:, :8])
    assert torch.equal(out["audio"][:, -11:], given["audio"][:, -11:])  # 1.5 s: 11.25 frames, snapped
    assert torch.equal(out["video"][:, :4], given["video"][:, :4])
    assert (out["audio"][:, 8:-12] == 0).all()
