"""Partner streams: a given modality's latents added to another's tokens at the same seconds."""

from __future__ import annotations

import pytest
import torch
from dit_helpers import assert_new_part_is_a_no_op, perturb

from mmgen.core.timeline import ModalitySpec
from mmgen.dit import MultimodalDiT
from mmgen.dit.partners import PartnerStreams
from mmgen.dit.streams import resample_stream

SPECS = {
    "audio": ModalitySpec(channels=6, rate_hz=7.5),
    "motion": ModalitySpec(channels=4, rate_hz=3.75),
    "video": ModalitySpec(channels=3, rate_hz=7.5, spatial=(4, 4)),
}


def _dit(partners=None, seed: int = 0) -> MultimodalDiT:
    torch.manual_seed(seed)
    return MultimodalDiT(
        SPECS, d_model=32, depth=2, num_heads=2, segment_seconds=0.5, patch_size=2, partners=partners
    )


def _inputs(seconds: float = 2.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = {
        "audio": torch.randn(2, int(7.5 * seconds), 6, generator=g),
        "motion": torch.randn(2, int(3.75 * seconds), 4, generator=g),
        "video": torch.randn(2, int(7.5 * seconds), 4, 4, 3, generator=g),
    }
    t = {"audio": torch.zeros(2, x["audio"].shape[1]), "motion": torch.zeros(2, x["motion"].shape[1]),
         "video": torch.full((2, x["video"].shape[1]), 0.6)}  # fmt: skip
    return x, t


def test_a_new_partner_stream_starts_as_an_exact_no_op():
    x, t = _inputs()
    assert_new_part_is_a_no_op(perturb(_dit()), _dit({"video": ["audio", "motion"]}), "partners.", x, t)


def test_the_addition_reads_the_source_frame_at_the_same_seconds_only_where_it_is_given():
    streams = perturb(PartnerStreams({"video": ["audio", "motion"]}, SPECS, 32))
    x, t = _inputs()
    t["audio"][:, 8:] = 0.5  # audio generated from frame 8 (1.07 s) on
    add = streams("video", 15, x, t)[:, :, 0]  # [B, 15, 1, D]: one vector broadcast over the frame
    # by hand: audio frame i (7.5 Hz) -> video frame i; motion (3.75 Hz, 7 frames) is interpolated:
    # video frame 2j <- motion j, 2j + 1 <- the mean of j and j + 1, 13 <- 6 (held), 14: none (null)
    audio_given = t["audio"] == 0
    want_audio = torch.where(
        audio_given[..., None], streams.proj["audio_to_video"](x["audio"]), streams.null["audio_to_video"][0]
    )
    m = x["motion"]
    frames = [m[:, i // 2] if i % 2 == 0 else (m[:, i // 2] + m[:, i // 2 + 1]) / 2 for i in range(13)] + [
        m[:, 6]
    ]
    motion = torch.cat([streams.proj["motion_to_video"](torch.stack(frames, 1)),
                        streams.null["motion_to_video"].expand(2, 1, -1)], 1)  # fmt: skip
    torch.testing.assert_close(add, want_audio + motion)
    changed = {**x, "audio": x["audio"].clone()}
    changed["audio"][:, 10] += 1.0  # a generated frame: not read
    torch.testing.assert_close(streams("video", 15, changed, t)[:, :, 0], add)
    changed["audio"][:, 3] += 1.0  # a given frame: read by video frame 3 alone
    diff = (streams("video", 15, changed, t)[:, :, 0] - add).abs().sum(-1)  # [B, 15]
    assert (diff[:, 3] > 0).all() and diff[:, [i for i in range(15) if i != 3]].eq(0).all()


def test_video_sources_are_averaged_over_space_and_absent_sources_give_the_null_vector():
    streams = perturb(PartnerStreams({"audio": ["video"], "motion": ["audio"]}, SPECS, 32))
    x, t = _inputs()
    t["video"][:] = 0.0
    pooled, present = resample_stream(x["video"].mean(dim=(2, 3)), None, 7.5, 7.5, 15)
    assert present.all()
    torch.testing.assert_close(streams("audio", 15, x, t)[:, :, 0], streams.proj["video_to_audio"](pooled))
    alone = streams("motion", 7, {"motion": x["motion"]}, {"motion": t["motion"]})
    assert torch.equal(alone, streams.null["audio_to_motion"].expand(1, 7, -1, -1))
    assert streams("video", 15, x, t) is None


def test_the_stream_reaches_the_dit_output_and_follows_the_given_audio():
    model = perturb(_dit({"video": ["audio"]})).eval()
    x, t = _inputs()
    base = model(x, t)["video"]
    changed = {**x, "audio": x["audio"] + 1.0}
    assert not torch.allclose(model(changed, t)["video"], base)
    t_gen = {**t, "audio": torch.full_like(t["audio"], 0.5)}  # audio generated: the stream is the null vector
    plain = perturb(_dit()).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    model.partners.null["audio_to_video"].data.zero_()
    torch.testing.assert_close(model(changed, t_gen)["video"], plain(changed, t_gen)["video"])


def test_per_position_streams_give_each_patch_its_own_read_of_the_partner_frame():
    streams = perturb(PartnerStreams({"video": ["audio"], "audio": ["motion"]}, SPECS, 32, patch_size=2))
    assert streams.positions == {"video": 4, "audio": 1}  # 4 x 4 latents, 2 x 2 patches; audio has no patches
    x, t = _inputs()
    t["audio"][:, 8:] = 0.5
    add = streams("video", 15, x, t)  # [B, 15, 4, D]
    assert add.shape == (2, 15, 4, 32)
    weight = streams.proj["audio_to_video"].weight.view(4, 32, 6)  # position p: rows p * D ... (p + 1) * D
    bias = streams.proj["audio_to_video"].bias.view(4, 32)
    for p in range(4):
        want = x["audio"][:, :8] @ weight[p].T + bias[p]
        torch.testing.assert_close(add[:, :8, p], want)
        assert torch.equal(add[:, 8:, p], streams.null["audio_to_video"][p].expand(2, 7, -1))
    assert not torch.allclose(add[:, :8, 0], add[:, :8, 1])  # the patches read the frame differently


def test_per_position_streams_reach_their_own_patch_tokens_and_start_as_a_no_op():
    plain = _dit()
    placed_model = MultimodalDiT(
        SPECS, d_model=32, depth=2, num_heads=2, segment_seconds=0.5, patch_size=2, partners={"video": ["audio"]},
        partner_positions=True,
    )  # fmt: skip
    x, t = _inputs()
    assert_new_part_is_a_no_op(perturb(plain), placed_model, "partners.", x, t)
    # only position 2's projection reads the audio: at embedding, only the third patch of each frame moves
    proj = placed_model.partners.proj["audio_to_video"]
    with torch.no_grad():
        proj.weight.zero_()
        proj.weight.view(4, 32, 6)[2].normal_()
    layout, _, _ = placed_model.layout({n: z.shape[1] for n, z in x.items()}, 0, torch.device("cpu"))
    base = placed_model._embed_tokens(x, t, None, layout, None)
    changed = {**x, "audio": x["audio"] + 1.0}
    moved = (placed_model._embed_tokens(changed, t, None, layout, None) - base).abs().sum(-1)  # [B, N]
    video = layout.split(moved)["video"].unflatten(1, (15, 4))  # [B, T, patches]
    assert (video[:, :, 2] > 0).all() and video[:, :, [0, 1, 3]].eq(0).all()


@pytest.mark.parametrize(
    "partners",
    [
        {"video": ["video"]},
        {"video": ["sound"]},
        {"screen": ["audio"]},
        {"video": ["audio", "audio"]},
        {"video": []},
    ],
)
def test_bad_partners_raise(partners):
    with pytest.raises(ValueError, match="partners must map"):
        _dit(partners)
