"""`mmgen cache` stores the video sync features beside the latents: equal to encoding on the fly."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mmgen.conditioning.video_sync import VideoSyncConditioner, VideoSyncEncoder
from mmgen.data.latent_cache import LatentCache, LatentWindows
from mmgen.data.manifest_cache import cache_manifest
from mmgen.data.toydance.io import make_dataset
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.media import AudioModality, VideoModality
from mmgen.modalities.video import VideoVAE
from mmgen.modalities.video_codec import read_video


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, VideoSyncConditioner]:
    tmp = tmp_path_factory.mktemp("sync_cache")
    data = make_dataset(tmp / "data", clips=2, seconds=4.0, seed=7, progress=False)
    torch.manual_seed(0)
    enc = VideoSyncEncoder(hidden=16, feature_dim=8, dilations=(1, 2))
    enc.save_pretrained(tmp / "sync")
    return tmp, data, VideoSyncConditioner(dim=16, encoder=str(tmp / "sync"))


def on_the_fly(cond: VideoSyncConditioner, data: Path, clip_id: str) -> torch.Tensor:
    frames, fps = read_video(data / "clips" / f"{clip_id}.mp4")
    return cond.encode({"video": torch.from_numpy(frames)[None], "video_fps": fps}).values[0]


def test_cached_sync_features_equal_encoding_on_the_fly(setup):
    tmp, data, cond = setup
    video = VideoModality(VideoVAE.tiny())
    root = cache_manifest(data, {"video": video}, tmp / "cache", conditioners={"sync": cond}, progress=False)
    cache = LatentCache(root)
    assert cache.feature_info["sync"] == {
        "fingerprint": cond.feature_fingerprint(), "rate_hz": 15.0, "dim": 42, "target": "aligned", "group": "video",
    }
    for i, item in enumerate(cache.items):
        values, mask = cache.item_features(i)["sync"]
        assert values.shape == (60, 42) and mask.all()
        torch.testing.assert_close(values, on_the_fly(cond, data, item["id"]), rtol=0, atol=1e-6)
    w = LatentWindows(cache, seconds=3.2, random=False)[0]
    assert w["features"]["sync"][0].shape == (48, 42) and w["latents"]["video"].shape[0] == 12


def test_a_modality_only_the_conditioner_reads_comes_from_the_file(setup):
    tmp, data, cond = setup
    audio = AudioModality(MelVAE.from_preset("tiny"))
    root = cache_manifest(data, {"audio": audio}, tmp / "audio_cache", conditioners={"sync": cond}, progress=False)
    cache = LatentCache(root)
    assert cache.modalities == ["audio"] and cache.features == ["sync"]
    for i, item in enumerate(cache.items):
        torch.testing.assert_close(cache.item_features(i)["sync"][0], on_the_fly(cond, data, item["id"]), rtol=0, atol=1e-6)
    assert np.isfinite(cache[0]["latents"]["audio"].numpy()).all()


def test_cached_pose_maps_are_cut_with_the_latent_window(setup):
    """Maps are time-aligned: a training window must carry the maps of its own seconds."""
    from mmgen.conditioning.pose_map import PoseMapConditioner
    from mmgen.io.export import load_motion_npz
    from mmgen.modalities.media import MotionModality
    from mmgen.modalities.motion import MotionVAE

    tmp, data, _ = setup
    pose = PoseMapConditioner(size=8)
    torch.manual_seed(0)
    root = cache_manifest(data, {"motion": MotionModality(MotionVAE.tiny())}, tmp / "pose_cache",
                          conditioners={"pose": pose}, progress=False)  # fmt: skip
    cache = LatentCache(root)
    assert cache.feature_info["pose"]["rate_hz"] == 15.0 and cache.feature_info["pose"]["target"] == "map"
    whole = cache.item_features(0)["pose"][0]  # [60, 192]: 4 s at 15 Hz
    motion = load_motion_npz(data / "clips" / f"{cache.items[0]['id']}.npz")
    torch.testing.assert_close(whole, pose.encode({"motion": [motion["joints"]], "motion_fps": motion["fps"]}).values[0])
    torch.manual_seed(3)
    windows = LatentWindows(cache, seconds=2.0, random=True)
    starts = set()
    for _ in range(8):
        maps = windows[0]["features"]["pose"][0]  # [30, 192]
        starts.add(next(s for s in range(31) if torch.equal(maps, whole[s : s + 30])))  # where in the clip
    assert len(starts) > 1  # random windows, each with the maps of its own seconds
