import pytest
import torch

from mmgen.core.timeline import ModalitySpec, frame_seconds, num_segments, segment_ids


def test_segments_match_the_design_picture():
    # the worked example of docs/design.md: 4 s, segments of 1 s, latent rate 2 Hz
    assert segment_ids(8, 2.0, 1.0).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert num_segments(8, 2.0, 1.0) == 4
    assert frame_seconds(4, 2.0).tolist() == [0.0, 0.5, 1.0, 1.5]


def test_segment_boundaries_are_robust_to_rounding():
    # 7.5 Hz with 0.4 s segments: exactly 3 frames per segment, even though 3 / 7.5 / 0.4 is inexact
    ids = segment_ids(12, 7.5, 0.4)
    assert ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    # partial last segment counts
    assert num_segments(13, 7.5, 0.4) == 5
    assert int(segment_ids(13, 7.5, 0.4).max()) + 1 == num_segments(13, 7.5, 0.4)


def test_different_rates_share_segments_by_time():
    audio = segment_ids(8, 4.0, 0.5)
    video = segment_ids(4, 2.0, 0.5)
    assert audio.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert video.tolist() == [0, 1, 2, 3]
    assert torch.equal(frame_seconds(8, 4.0)[::2], frame_seconds(4, 2.0))


def test_spec_validation_and_shapes():
    assert ModalitySpec(8, 7.5).latent_shape(30) == (30, 8)
    assert ModalitySpec(4, 3.75, (8, 8)).latent_shape(15) == (15, 8, 8, 4)
    assert ModalitySpec(4, 3.75, [8, 8]).spatial == (8, 8)
    assert ModalitySpec(8, 7.5).num_frames(4.0) == 30
    with pytest.raises(ValueError, match="channels"):
        ModalitySpec(0, 7.5)
    with pytest.raises(ValueError, match="rate_hz"):
        ModalitySpec(8, float("nan"))
    with pytest.raises(ValueError, match="spatial"):
        ModalitySpec(8, 7.5, (0, 4))
    with pytest.raises(ValueError, match="segment_seconds"):
        segment_ids(4, 2.0, 0.0)
