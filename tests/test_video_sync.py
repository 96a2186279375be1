"""The video sync encoder: input rule, fixed front end, time equivariance, save/load, bad input."""

import numpy as np
import pytest
import torch

from mmgen.conditioning.video_frames import conform_sync_chunks, conform_sync_frames, resampled_positions
from mmgen.conditioning.video_sync import (
    VideoSyncConditioner,
    VideoSyncEncoder,
    frame_difference_features,
)
from mmgen.data.toydance import generate_clip
from mmgen.io.read import resize_frames
from mmgen.io.render import render_stick_figure


@pytest.fixture(scope="module")
def clip():
    return generate_clip(20001, seconds=6.0)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    torch.manual_seed(3)
    enc = VideoSyncEncoder(hidden=16, feature_dim=8, dilations=(1, 2, 4))
    with torch.no_grad():  # random, non-degenerate weights
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return enc.save_pretrained(tmp_path_factory.mktemp("sync") / "enc")


@pytest.fixture(scope="module")
def encoder(encoder_dir):
    return VideoSyncEncoder.from_pretrained(encoder_dir)


def test_front_end_equals_a_numpy_reference():
    g = np.random.default_rng(0).random((2, 5, 8, 8)).astype(np.float32)
    got = frame_difference_features(torch.from_numpy(g), grid=2, eps=1e-3).numpy()
    d = np.abs(np.diff(g, axis=1))  # [2, 4, 8, 8]
    cells = d.reshape(2, 4, 2, 4, 2, 4).mean(axis=(3, 5)).reshape(2, 4, 4)  # 2x2 grid of 4x4 blocks
    ref = np.log(1e-3 + np.concatenate([cells, d.mean(axis=(2, 3))[..., None]], axis=-1))  # [2, 4, 5]
    before = np.concatenate([ref[:, :1], ref], axis=1)
    after = np.concatenate([ref, ref[:, -1:]], axis=1)
    np.testing.assert_allclose(got, np.concatenate([before, after], axis=-1), rtol=1e-5, atol=1e-5)


def test_time_resampling_blends_the_two_source_frames_around_each_output_time():
    # frame j holds the value j / 255: linear interpolation reproduces a ramp exactly
    frames = np.repeat(np.arange(48, dtype=np.uint8)[:, None, None, None], 3, axis=-1) * np.ones((1, 4, 4, 3), np.uint8)
    out = conform_sync_frames(frames, fps=24.0, rate=15.0, size=4)
    assert out.shape == (30, 4, 4)  # floor(48 * 15 / 24)
    np.testing.assert_allclose(out[:, 0, 0].numpy() * 255, np.arange(30) * 24 / 15, atol=1e-3)
    assert np.array_equal(resampled_positions(240, 30.0, 15.0), np.arange(120) * 2.0)


def test_a_long_clip_is_conformed_and_encoded_in_chunks_with_the_same_values(encoder):
    # 24 fps -> 15 Hz blends frames; 520 frames -> 325 outputs: seams after 128, 256 (and 256)
    frames = np.random.default_rng(1).integers(0, 256, (520, 48, 40, 3), dtype=np.uint8)
    whole = conform_sync_frames(frames, fps=24.0, rate=15.0, size=64)  # [325, 64, 64]
    for chunk in (128, 256):
        pieces = list(conform_sync_chunks(frames, 24.0, 15.0, 64, chunk=chunk))
        assert [len(x) for x in pieces] == [chunk] * (325 // chunk) + [325 % chunk]
        assert torch.equal(torch.cat(pieces), whole)
    front = encoder.front(whole[None])[0]
    assert torch.allclose(encoder.clip_front(frames, 24.0), front, atol=1e-6)  # a seam is one difference
    got = encoder.encode_clips([frames], [24.0]).values[0]
    assert torch.allclose(got, encoder.stream(whole[None])[0], atol=1e-5)


def test_shifting_the_video_shifts_the_features_exactly(clip, encoder):
    r = encoder.receptive_radius
    full = encoder.encode_clips([clip.video], [15.0]).values[0]  # [90, F]
    for k in (1, 4, 7):
        shifted = encoder.encode_clips([clip.video[k:]], [15.0]).values[0]  # frame t of it = frame t + k
        inner = slice(r, shifted.shape[0] - r)
        torch.testing.assert_close(shifted[inner], full[k:][inner], rtol=0, atol=1e-5)
        assert (shifted[inner] - full[inner]).abs().max() > 0.05  # and it is not shift-invariant


def test_the_aligned_tokens_shift_with_the_video(clip, encoder_dir):
    cond = VideoSyncConditioner(dim=12, encoder=str(encoder_dir))
    with torch.no_grad():
        for p in cond.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    r = cond.sync_encoder().receptive_radius + 1  # + the projection's kernel-3 conv
    k = 6
    full, _ = cond({"video": torch.from_numpy(clip.video)[None]})
    shifted, mask = cond({"video": torch.from_numpy(clip.video[k:])[None], "video_fps": 15.0})
    assert cond.rate_hz == 15.0 and cond.target == "aligned" and cond.group == "video"
    assert mask.all() and shifted.shape == (1, 90 - k, 12)
    torch.testing.assert_close(shifted[0, r:-r], full[0, k:][r:-r], rtol=0, atol=1e-5)


def test_other_frame_rates_and_sizes_give_the_same_features(clip, encoder):
    f15 = encoder.encode_clips([clip.video], [15.0]).values[0]
    # a 30 fps clip whose even frames are the 15 fps frames: the rule keeps exactly those
    odd = render_stick_figure(clip.joints, clip.fps, size=64, out_fps=30.0, background=(0, 0, 0))[1::2]
    at_30 = np.stack([clip.video, odd], axis=1).reshape(-1, 64, 64, 3)  # [180, 64, 64, 3]
    f30 = encoder.encode_clips([at_30], [30.0]).values[0]
    torch.testing.assert_close(f30, f15, rtol=0, atol=1e-6)

    # other sizes / rates render the motion a little differently (line widths, blends), so the
    # fixed front end's features agree closely, not exactly: far closer than one frame apart
    def front(video, fps):
        return encoder.front(encoder.conform(video, fps)[None])[0]

    ref = render_stick_figure(clip.joints, clip.fps, size=64, out_fps=15.0)
    f_ref = front(ref, 15.0)
    one_frame_off = float((f_ref[1:] - f_ref[:-1]).norm(dim=-1).mean())
    variants = {
        "160 px": (render_stick_figure(clip.joints, clip.fps, size=160, out_fps=15.0), 15.0),
        "48 x 80 px": (resize_frames(ref, (48, 80)), 15.0),
        "24 fps": (render_stick_figure(clip.joints, clip.fps, size=64, out_fps=24.0), 24.0),
        "60 fps": (render_stick_figure(clip.joints, clip.fps, size=64, out_fps=60.0), 60.0),
    }
    for name, (video, fps) in variants.items():
        f = front(video, fps)
        assert f.shape == f_ref.shape, name
        assert float((f - f_ref).norm(dim=-1).mean()) < 0.25 * one_frame_off, name


def test_save_load_and_conditioner_state(encoder_dir, encoder, clip):
    again = VideoSyncEncoder.from_pretrained(encoder_dir)
    x = encoder.conform(clip.video[:30], 15.0)[None]
    torch.testing.assert_close(again(x), encoder(x))
    cond = VideoSyncConditioner(dim=4, encoder=str(encoder_dir))
    assert cond.proj_in.in_channels == encoder.stream_dim == 8 + 34  # read from config.yaml, no weights loaded
    assert not any(k.startswith("_frozen") or "blocks" in k for k in cond.state_dict())
    assert cond.feature_fingerprint() == encoder.fingerprint()


def test_the_stream_is_the_learned_features_then_the_standardised_front_end(clip, tmp_path):
    from mmgen.conditioning.video_sync import pooled_differences

    torch.manual_seed(0)
    enc = VideoSyncEncoder(hidden=8, feature_dim=4, dilations=(1,))
    gray = enc.conform(clip.video, 15.0)[None]  # [1, 90, 64, 64]
    halves = [pooled_differences(gray[:, :40], 4)[0], pooled_differences(gray[:, 40:], 4)[0]]
    enc.set_front_stats(halves)
    front = torch.cat([enc.front(gray[:, :40])[0], enc.front(gray[:, 40:])[0]])  # every frame of both clips
    torch.testing.assert_close(enc.front_mean, front.mean(0))
    torch.testing.assert_close(enc.front_std, front.std(0).clamp_min(0.25))
    stream = enc.stream(gray)[0]
    torch.testing.assert_close(stream[:, :4], enc(gray)[0])
    torch.testing.assert_close(stream[:, 4:], (enc.front(gray)[0] - front.mean(0)) / enc.front_std)
    enc.save_pretrained(tmp_path / "e")  # the statistics travel with the weights and the fingerprint
    again = VideoSyncEncoder.from_pretrained(tmp_path / "e")
    torch.testing.assert_close(again.front_std, enc.front_std)
    assert again.fingerprint() == enc.fingerprint() != VideoSyncEncoder(hidden=8, feature_dim=4, dilations=(1,)).fingerprint()
    plain = VideoSyncEncoder(hidden=8, feature_dim=4, dilations=(1,), stream_front_end=False)
    assert plain.stream_dim == 4 and plain.stream(gray).shape == (1, 90, 4)


def test_clips_of_different_lengths_batch_like_alone(clip, encoder):
    both = encoder.encode_clips([clip.video, clip.video[:40]], [15.0, 15.0])
    alone = encoder.encode_clips([clip.video[:40]], [15.0]).values[0]
    assert both.mask[1].sum() == 40 and not both.mask[1, 40:].any()
    torch.testing.assert_close(both.values[1, :40], alone)


def test_bad_input_is_refused(encoder, encoder_dir, tmp_path):
    ok = np.zeros((10, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="no frames"):
        conform_sync_frames(np.zeros((0, 8, 8, 3), np.uint8), 15.0, 15.0, 8)
    with pytest.raises(ValueError, match="uint8 .* or float"):
        conform_sync_frames(ok.astype(np.int64), 15.0, 15.0, 8)
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        conform_sync_frames(ok[..., 0], 15.0, 15.0, 8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        conform_sync_frames(ok.astype(np.float32) + 255, 15.0, 15.0, 8)
    with pytest.raises(ValueError, match="at least 2"):
        conform_sync_frames(ok[:1], 15.0, 15.0, 8)
    with pytest.raises(ValueError, match="positive"):
        conform_sync_frames(ok, 0.0, 15.0, 8)
    with pytest.raises(ValueError, match="VideoSyncEncoder: expected gray frames"):
        encoder(torch.zeros(1, 10, 32, 32))
    with pytest.raises(ValueError, match=">= 15"):
        VideoSyncEncoder(rate_hz=10.0)
    cond = VideoSyncConditioner(dim=4, encoder=str(encoder_dir))
    with pytest.raises(ValueError, match="has no 'video'"):
        cond.encode({"frames": ok[None]})
    with pytest.raises(ValueError, match=r"batch\['video'\]\[0\]: .*no frames"):
        cond.encode({"video": [np.zeros((0, 8, 8, 3), np.uint8)]})
    with pytest.raises(ValueError, match="2 rates for 1 clips"):
        cond.encode({"video": ok[None], "video_fps": [15.0, 30.0]})
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        VideoSyncConditioner(dim=4, encoder=str(tmp_path / "nowhere"))
