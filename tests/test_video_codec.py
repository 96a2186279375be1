import numpy as np
import pytest
import torch

from mmgen.modalities.video_codec import features_to_frames, frames_to_features, read_video, resample_indices


def _write_mp4(path, num_frames: int, fps: int, height: int = 32, width: int = 48) -> None:
    """Frame k is a flat grey of level 20 k (so decoded frames can be identified)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qscale": "2"}
        for k in range(num_frames):
            img = np.full((height, width, 3), 20 * k, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_uint8_round_trip_is_exact_and_range_is_minus_one_to_one():
    frames = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16, 1).expand(1, 1, 16, 16, 3)
    feats = frames_to_features(frames)
    assert feats.dtype == torch.float32 and feats.min() == -1.0 and feats.max() == 1.0
    assert torch.equal(features_to_frames(feats), frames)
    assert torch.equal(features_to_frames(torch.full((1, 2, 2, 3), 7.0)), torch.full((1, 2, 2, 3), 255, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expected uint8"):
        frames_to_features(torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError, match="RGB"):
        frames_to_features(np.zeros((1, 4, 4, 4), dtype=np.uint8))


def test_resample_indices_by_hand():
    assert resample_indices(10, 30, 15).tolist() == [0, 2, 4, 6, 8]
    assert resample_indices(5, 15, 30).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert resample_indices(10, 25, 15).tolist() == [0, 1, 3, 5, 6, 8]  # floor(k * 5 / 3)
    assert resample_indices(7, 30, 30).tolist() == list(range(7))
    with pytest.raises(ValueError, match="positive"):
        resample_indices(10, 0, 15)


def test_read_video_resamples_and_resizes(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_mp4(path, num_frames=12, fps=30, width=64)
    frames, fps = read_video(path)
    assert frames.shape == (12, 32, 64, 3) and frames.dtype == np.uint8 and fps == pytest.approx(30)
    np.testing.assert_allclose(frames.reshape(12, -1).mean(1), 20 * np.arange(12), atol=6)
    frames, fps = read_video(path, fps=15, size=(16, 32))
    assert frames.shape == (6, 16, 32, 3) and fps == 15.0
    np.testing.assert_allclose(frames.reshape(6, -1).mean(1), 20 * np.arange(0, 12, 2), atol=6)  # frames 0, 2, ..


@pytest.mark.parametrize("width, size", [(48, None), (64, (16, 24))])
def test_read_video_falls_back_to_pyav_where_decord_fails(tmp_path, width, size):
    # decord 0.6 cannot output frames 24 or 48 pixels wide (dmlc/decord#336)
    path = tmp_path / "clip.mp4"
    _write_mp4(path, num_frames=12, fps=30, width=width)
    frames, fps = read_video(path, fps=10, size=size)
    h, w = size or (32, width)
    assert frames.shape == (4, h, w, 3) and fps == 10.0
    np.testing.assert_allclose(frames.reshape(4, -1).mean(1), 20 * np.arange(0, 12, 3), atol=6)


def test_read_video_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="junk.mp4: decord cannot open"):
        read_video(junk)
    path = tmp_path / "ok.mp4"
    _write_mp4(path, 4, 30)
    with pytest.raises(ValueError, match="size must be"):
        read_video(path, size=(0, 8))
