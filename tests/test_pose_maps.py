"""Pose maps: the given dance drawn per frame (PoseMapConditioner) and read per video patch (MapStream)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dit_helpers import assert_new_part_is_a_no_op, perturb

from mmgen.conditioning import ConditionEncoder
from mmgen.conditioning.pose_map import PoseMapConditioner
from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec
from mmgen.data.toydance import generate_clip
from mmgen.dit import MultimodalDiT
from mmgen.dit.map_stream import MapStream

VIDEO = ModalitySpec(channels=3, rate_hz=7.5, spatial=(4, 4))
SPECS = {"motion": ModalitySpec(channels=4, rate_hz=7.5), "video": VIDEO}


@pytest.fixture(scope="module")
def joints() -> np.ndarray:
    return generate_clip(5, seconds=2.0, render_video=False).joints  # [60, 24, 3] at 30 fps


def test_maps_are_the_dance_drawn_at_the_map_rate_and_shift_with_it(joints):
    pose = PoseMapConditioner(size=16, rate_hz=15.0)
    f = pose.encode({"motion": torch.from_numpy(joints)[None]})
    assert f.values.shape == (1, 30, 3 * 16 * 16) and bool(f.mask.all())  # 2 s at 15 Hz
    maps = f.values[0].reshape(30, 3, 16, 16)
    assert 0.0 <= float(maps.min()) and float(maps.max()) <= 1.0
    lit = (maps.amax(dim=1) > 0.2).float().mean(dim=(1, 2))  # the figure covers part of each frame
    assert bool((lit > 0.02).all()) and bool((lit < 0.5).all())
    assert float((maps[1:] - maps[:-1]).abs().mean()) > 1e-3  # the dance moves
    # two more motion frames of the first pose in front (same view): the maps move one frame later
    shifted = np.concatenate([joints[:1], joints[:1], joints])
    g = pose.encode({"motion": [shifted], "motion_fps": 30.0}).values[0].reshape(-1, 3, 16, 16)
    torch.testing.assert_close(g[1:31], maps, atol=1e-6, rtol=0)
    # the joints' rate is read from the batch: the same dance at 60 fps gives the same maps
    doubled = np.repeat(joints, 2, axis=0)
    h = pose.encode({"motion": [doubled], "motion_fps": 60.0}).values[0].reshape(-1, 3, 16, 16)
    assert (h - maps).abs().mean() < 0.02


def test_a_batch_of_clips_of_different_lengths_pads_as_absent(joints):
    f = PoseMapConditioner(size=16).encode({"motion": [joints, joints[:30]]})
    assert f.values.shape[:2] == (2, 30) and f.mask[0].all() and f.mask[1, :15].all() and not f.mask[1, 15:].any()


@pytest.mark.parametrize(
    ("motion", "match"),
    [
        (np.zeros((1, 10, 17, 3), np.float32), r"clip 0 of batch\['motion'\] must be joints \[T > 0, 24, 3\]"),
        (np.full((1, 10, 24, 3), np.nan, np.float32), "NaN or infinite"),
        ("joints.npz", r"batch\['motion'\] must be \[B, T, J, 3\] or a list of clips"),
    ],
)
def test_bad_joints_are_refused_with_the_key_named(motion, match):
    with pytest.raises((ValueError, TypeError), match=match):
        PoseMapConditioner(size=16).encode({"motion": motion})


def test_the_encoder_puts_maps_in_cond_at_the_stream_rate(joints):
    pose = PoseMapConditioner(size=16, rate_hz=15.0)
    enc = ConditionEncoder({"pose": pose}, map_dim=pose.dim, aligned_rate_hz=15.0)
    features = enc.encode({"motion": torch.from_numpy(joints)[None]})
    cond = enc(features=features, aligned_frames=40)  # 40 frames: the last 10 past the dance
    assert cond.maps.shape == (1, 40, 768) and cond.aligned is None
    torch.testing.assert_close(cond.maps[:, :30], features["pose"].values)
    assert cond.maps_mask[:, :30].all() and not cond.maps_mask[:, 30:].any()
    dropped = enc(features=features, drop=torch.ones(1, dtype=torch.bool), aligned_frames=30)
    assert not dropped.maps_mask.any()  # dropped for guidance: absent, the DiT's null takes over
    null = enc.null_cond(1, aligned_frames=30)
    assert null.maps.shape == (1, 30, 768) and not null.maps_mask.any()
    with pytest.raises(ValueError, match="at most one map conditioner"):
        ConditionEncoder({"a": pose, "b": PoseMapConditioner(size=16)}, map_dim=768, aligned_rate_hz=15.0)
    with pytest.raises(ValueError, match="has dim 768, the map width is 3072"):
        ConditionEncoder({"pose": pose}, map_dim=3072, aligned_rate_hz=15.0)


def test_crop_time_cuts_the_maps_with_the_window_and_pads_past_their_end():
    maps = torch.arange(2 * 30 * 4, dtype=torch.float32).reshape(2, 30, 4)
    cond = Cond(maps=maps, maps_mask=torch.ones(2, 30, dtype=torch.bool))
    cut = cond.crop_time(1.0, 2.4, 15.0)  # frames 15 .. 35: 15 of them past the end
    assert torch.equal(cut.maps[:, :15], maps[:, 15:]) and not cut.maps[:, 15:].any()
    assert cut.maps_mask[:, :15].all() and not cut.maps_mask[:, 15:].any()


def _stream(**kw) -> MapStream:
    torch.manual_seed(0)
    return perturb(MapStream(3, 16, 15.0, "video", VIDEO, 2, 32, **kw), std=0.2)  # type: ignore[return-value]


def test_each_latent_frame_reads_its_own_two_maps_and_absent_frames_take_the_null():
    stream = _stream()
    maps = torch.rand(1, 20, 768)
    base, side = stream(maps, None, 10)  # [1, 10, 4 patches, 32], [1, 40 patches, 2 * 2 * 32]
    assert base.shape == (1, 10, 4, 32) and side.shape == (1, 40, 128)
    other = maps.clone()
    other[:, 5] = torch.rand(768)  # map frame 5 lies under latent frame 2 (15 Hz -> 7.5 Hz)
    changed = (stream(other, None, 10)[0] - base).abs().amax(dim=(2, 3))[0]
    assert changed[2] > 0 and torch.equal(changed[torch.arange(10) != 2], torch.zeros(9))
    mask = torch.ones(1, 20, dtype=torch.bool)
    mask[:, 6:8] = False  # both maps of latent frame 3
    mask[:, 8] = False  # one of latent frame 4's: it keeps the other
    out, side = stream(maps, mask, 12)  # 12 latent frames, the stream covers 10
    null = stream.null[None].expand(1, 4, 32)
    for i in (3, 10, 11):
        assert torch.equal(out[:, i], null) and not side[:, 4 * i : 4 * i + 4].any(), i  # the head sees zeros
    assert not torch.equal(out[:, 4], null) and torch.equal(out[:, 5], base[:, 5])
    assert side[:, 16:20].abs().sum() > 0


def test_a_map_changes_the_patches_under_it_not_the_far_ones():
    stream = _stream()
    maps = torch.rand(1, 2, 3, 16, 16)
    base, side = stream(maps.flatten(2), None, 1)  # [1, 1, 4 patches (2 x 2), 32], [1, 4, 128]
    corner = maps.clone()
    corner[..., :3, :3] = 1.0 - corner[..., :3, :3]  # the top-left corner
    added, side_corner = stream(corner.flatten(2), None, 1)
    moved = (added - base)[0, 0].abs().amax(dim=-1)
    assert moved[0] > 0 and moved[3] == 0  # top-left patch changed, bottom-right not
    moved = (side_corner - side)[0].abs().amax(dim=-1)
    assert moved[0] > 0 and moved[3] == 0


def _dit(maps: bool, seed: int = 0) -> MultimodalDiT:
    torch.manual_seed(seed)
    extra = {"map_channels": 3, "map_size": 16} if maps else {}
    return MultimodalDiT(
        SPECS, d_model=32, depth=2, num_heads=2, patch_size=2, aligned_rate_hz=15.0 if maps else None, **extra
    )


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = {"motion": torch.randn(2, 15, 4, generator=g), "video": torch.randn(2, 15, 4, 4, 3, generator=g)}
    t = {"motion": torch.zeros(2, 15), "video": torch.full((2, 15), 0.7)}
    return x, t


def test_the_map_input_joins_a_trained_dit_as_an_exact_no_op():
    x, t = _inputs()
    cond = Cond(maps=torch.rand(2, 30, 768), maps_mask=torch.ones(2, 30, dtype=torch.bool))
    assert_new_part_is_a_no_op(perturb(_dit(False)), _dit(True), "maps.", x, t, extended_cond=cond)


def test_bad_map_settings_are_refused():
    with pytest.raises(ValueError, match="map_channels and map_size go together"):
        MultimodalDiT(SPECS, d_model=32, depth=1, num_heads=2, aligned_rate_hz=15.0, map_channels=3)
    with pytest.raises(ValueError, match="power-of-two multiple"):
        MultimodalDiT(SPECS, d_model=32, depth=1, num_heads=2, aligned_rate_hz=15.0, map_channels=3, map_size=12)
    with pytest.raises(ValueError, match="whole number of map frames"):
        MultimodalDiT(SPECS, d_model=32, depth=1, num_heads=2, aligned_rate_hz=10.0, map_channels=3, map_size=16)
    with pytest.raises(ValueError, match="needs aligned_rate_hz"):
        MultimodalDiT(SPECS, d_model=32, depth=1, num_heads=2, map_channels=3, map_size=16)
    with pytest.raises(ValueError, match="takes pose maps"):
        _dit(True)(*_inputs(), Cond())


def test_a_tiny_dit_draws_the_video_its_maps_show():
    """Video latents are the maps pooled to the latent grid; with the maps the DiT's x0 error
    ends far below the same training with each clip's maps swapped for another clip's."""
    g = torch.Generator().manual_seed(0)
    maps = (torch.rand(64, 30, 3, 16, 16, generator=g) > 0.8).float()  # 64 clips of 2 s at 15 Hz
    pooled = torch.nn.functional.avg_pool2d(maps.flatten(0, 1), 4).unflatten(0, (64, 30))  # [64, 30, 3, 4, 4]
    video = (pooled[:, 0::2] + pooled[:, 1::2]).permute(0, 1, 3, 4, 2) * 4 - 1.6  # [64, 15, 4, 4, 3]

    def train(shuffle: bool) -> float:
        model = _dit(True, seed=1)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        flat = maps.flatten(2)
        given = flat[torch.randperm(64, generator=torch.Generator().manual_seed(2))] if shuffle else flat
        for _ in range(80):
            idx = torch.randint(0, 48, (16,), generator=g)
            x0 = video[idx]
            noise = torch.randn(x0.shape, generator=g)
            x = {"motion": torch.zeros(16, 15, 4), "video": noise}  # level 1: all from the maps
            t = {"motion": torch.zeros(16, 15), "video": torch.ones(16, 15)}
            cond = Cond(maps=given[idx], maps_mask=torch.ones(16, 30, dtype=torch.bool))
            loss = (model(x, t, cond)["video"] - x0).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():  # the 16 clips it never saw
            held = torch.arange(48, 64)
            x = {"motion": torch.zeros(16, 15, 4), "video": torch.randn(16, 15, 4, 4, 3, generator=g)}
            t = {"motion": torch.zeros(16, 15), "video": torch.ones(16, 15)}
            cond = Cond(maps=given[held], maps_mask=torch.ones(16, 30, dtype=torch.bool))
            return float((model(x, t, cond)["video"] - video[held]).pow(2).mean())

    with_maps, shuffled = train(False), train(True)
    assert with_maps < 0.5 * shuffled, (with_maps, shuffled)
