"""Token layout, patchify/unpatchify and RoPE of the DiT: hand-computed values and references."""

import math

import pytest
import torch

from mmgen.core.timeline import ModalitySpec
from mmgen.dit import MultimodalDiT, TokenLayout, patchify, unpatchify
from mmgen.dit.rope import apply_rope, rope_angles, rope_cos_sin, rope_frequencies


@pytest.mark.parametrize("h,w,p", [(5, 3, 2), (4, 6, 2), (7, 7, 3), (1, 1, 2), (3, 5, 1)])
def test_patchify_round_trip_is_exact_for_odd_sizes(h, w, p):
    x = torch.randn(2, 3, h, w, 4)
    tokens = patchify(x, p)
    gh, gw = math.ceil(h / p), math.ceil(w / p)
    assert tokens.shape == (2, 3 * gh * gw, p * p * 4)
    assert torch.equal(unpatchify(tokens, 3, (h, w), p), x)


def test_patchify_places_values_where_expected_and_pads_with_zeros():
    h, w, p, c = 3, 5, 2, 2
    x = torch.arange(2 * 1 * h * w * c, dtype=torch.float32).reshape(2, 1, h, w, c)
    tokens = patchify(x, p)  # grid 2 x 3
    for gy in range(2):
        for gx in range(3):
            token = tokens[1, gy * 3 + gx]
            for i in range(p):
                for j in range(p):
                    for ch in range(c):
                        y, xx = gy * p + i, gx * p + j
                        expected = x[1, 0, y, xx, ch] if (y < h and xx < w) else 0.0
                        assert token[(i * p + j) * c + ch] == expected


def test_layout_matches_the_docstring_picture():
    specs = {"audio": ModalitySpec(8, 4.0), "video": ModalitySpec(3, 2.0, (4, 3))}
    lay = TokenLayout.build(specs, {"audio": 5, "video": 2}, segment_seconds=0.5, patch_size=2, num_prefix=2)
    assert lay.names == ("audio", "video") and lay.num_tokens == 15 and lay.num_rows == 6
    assert lay.slices == {"audio": slice(2, 7), "video": slice(7, 15)}
    assert lay.modality.tolist() == [-1, -1] + [0] * 5 + [1] * 8
    assert lay.frame.tolist() == [-1, -1, 0, 1, 2, 3, 4] + [0] * 4 + [1] * 4
    assert lay.seconds.tolist() == [0, 0, 0, 0.25, 0.5, 0.75, 1.0] + [0.0] * 4 + [0.5] * 4
    assert lay.y.tolist() == [0] * 7 + [0, 0, 1, 1] * 2
    assert lay.x.tolist() == [0] * 7 + [0, 1, 0, 1] * 2
    assert lay.segment.tolist() == [-1, -1, 0, 0, 1, 1, 2] + [0] * 4 + [1] * 4
    assert lay.row.tolist() == [0, 0, 1, 1, 2, 2, 3] + [4] * 4 + [5] * 4
    assert lay.row_modality.tolist() == [0, 0, 0, 1, 1]
    assert lay.segment_start["audio"].tolist() == [0, 2, 4]
    t = {"audio": torch.tensor([[0.1, 0.1, 0.2, 0.2, 0.3]]), "video": torch.tensor([[0.7, 0.9]])}
    assert lay.level_rows(t).tolist() == [pytest.approx([0.1, 0.2, 0.3, 0.7, 0.9])]


def test_a_slow_modality_gets_one_row_per_touched_segment():
    # 1 Hz frames with 0.5 s segments touch segments 0, 2, 4: three rows, not five
    lay = TokenLayout.build({"m": ModalitySpec(2, 1.0)}, {"m": 3}, segment_seconds=0.5, patch_size=2)
    assert lay.segment.tolist() == [0, 2, 4]
    assert lay.row.tolist() == [0, 1, 2] and lay.num_rows == 3


def test_apply_rope_equals_complex_rotation():
    q = torch.randn(2, 3, 5, 8, dtype=torch.float64)
    angles = torch.randn(5, 4, dtype=torch.float64)
    out = apply_rope(q, *rope_cos_sin(angles))
    z = torch.complex(q[..., :4], q[..., 4:]) * torch.polar(torch.ones_like(angles), angles)
    assert torch.allclose(out, torch.cat([z.real, z.imag], dim=-1), atol=1e-6)
    # per-example angles [B, N, P]
    per_example = torch.randn(2, 5, 4, dtype=torch.float64)
    out = apply_rope(q, *rope_cos_sin(per_example))
    z = (
        torch.complex(q[..., :4], q[..., 4:])
        * torch.polar(torch.ones_like(per_example), per_example)[:, None]
    )
    assert torch.allclose(out, torch.cat([z.real, z.imag], dim=-1), atol=1e-6)


def test_tokens_at_the_same_time_share_their_rotary_phase():
    specs = {
        "audio": ModalitySpec(4, 4.0),
        "motion": ModalitySpec(6, 2.0),
        "video": ModalitySpec(3, 2.0, (4, 4)),
    }
    model = MultimodalDiT(specs, d_model=32, depth=1, num_heads=2)
    lay, cos, sin = model.layout({"audio": 8, "motion": 4, "video": 4}, 0, torch.device("cpu"))
    # per-pair cos/sin: rope_cos_sin widened them to [cos, cos] and [-sin, sin]
    cos, sin = cos[:, :8], sin[:, 8:]
    n_t = rope_frequencies(16, True)[0].numel()
    assert n_t == 4  # 8 pairs: 4 time, 2 y, 2 x
    audio = lay.slices["audio"].start + 6  # frame 6 at 4 Hz = 1.5 s
    motion = lay.slices["motion"].start + 3  # frame 3 at 2 Hz = 1.5 s
    video = [i for i in range(lay.num_tokens) if lay.modality[i] == 2 and lay.seconds[i] == 1.5]
    assert len(video) == 4
    assert torch.equal(cos[audio], cos[motion]) and torch.equal(sin[audio], sin[motion])
    for v in video:  # the time pairs agree; the spatial pairs rotate with the patch position
        assert torch.equal(cos[v, :n_t], cos[audio, :n_t]) and torch.equal(sin[v, :n_t], sin[audio, :n_t])
    # sequence tokens sit at y = x = 0: their spatial pairs do not rotate
    assert torch.all(cos[audio, n_t:] == 1) and torch.all(sin[audio, n_t:] == 0)
    assert not torch.equal(cos[video[3], n_t:], cos[video[0], n_t:])  # patch (1, 1) vs (0, 0)
    # different times: different phases
    assert not torch.equal(cos[audio], cos[audio + 1])


def test_rope_scores_depend_only_on_the_time_difference():
    omega_t, omega_s = rope_frequencies(16, False)
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)

    def score(sq: float, sk: float) -> torch.Tensor:
        a_q = rope_angles(torch.tensor([sq]), torch.zeros(1), torch.zeros(1), omega_t, omega_s)
        a_k = rope_angles(torch.tensor([sk]), torch.zeros(1), torch.zeros(1), omega_t, omega_s)
        return (apply_rope(q, *rope_cos_sin(a_q)) * apply_rope(k, *rope_cos_sin(a_k))).sum()

    assert torch.allclose(score(0.25, 1.0), score(10.25, 11.0), atol=1e-5)
    assert not torch.allclose(score(0.25, 1.0), score(0.25, 1.5))


def test_rope_frequencies_span_the_configured_periods():
    omega_t, omega_s = rope_frequencies(64, False, min_period=0.1, max_period=1000.0)
    assert omega_s.numel() == 0 and omega_t.numel() == 32
    assert torch.allclose(2 * math.pi / omega_t[[0, -1]], torch.tensor([0.1, 1000.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="head_dim >= 8"):
        rope_frequencies(4, True)
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(7, False)
