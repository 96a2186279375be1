"""The sync stream through the ConditionEncoder and into the DiT's aligned condition."""

import pytest
import torch

from mmgen.conditioning import ConditionEncoder
from mmgen.conditioning.video_sync import VideoSyncConditioner, VideoSyncEncoder
from mmgen.core.timeline import ModalitySpec
from mmgen.data.toydance import generate_clip
from mmgen.diffusion.noise_levels import MoNLConfig, NoiseLevels
from mmgen.dit.model import MultimodalDiT
from mmgen.train.dit_module import DiTModule

SPECS = {"audio": ModalitySpec(4, 7.5), "video": ModalitySpec(2, 3.75, (2, 2))}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    torch.manual_seed(0)
    enc = VideoSyncEncoder(hidden=16, feature_dim=8, dilations=(1, 2, 4))
    folder = enc.save_pretrained(tmp_path_factory.mktemp("sync") / "enc")
    sync = VideoSyncConditioner(dim=16, encoder=str(folder))
    condition = ConditionEncoder({"sync": sync}, aligned_dim=16, aligned_rate_hz=15.0)
    dit = MultimodalDiT(SPECS, d_model=32, depth=1, num_heads=2, segment_seconds=0.5,
                        aligned_dim=16, aligned_rate_hz=15.0, aligned_targets=["audio"])
    with torch.no_grad():  # zero-initialised projections: give every path signal
        for p in [*condition.parameters(), *dit.aligned.parameters()]:
            p.add_(torch.randn_like(p) * 0.1)
    return condition, dit, generate_clip(20003, seconds=6.0)


def test_shifting_the_video_shifts_the_dits_aligned_condition(parts):
    condition, dit, clip = parts
    k = 4  # video frames at 15 Hz = 2 audio latent frames at 7.5 Hz
    adds = []
    for video in (clip.video, clip.video[k:]):
        cond = condition(batch={"video": torch.from_numpy(video)[None]})
        frames = SPECS["audio"].num_frames(video.shape[0] / 15.0)
        adds.append(dit.aligned(cond.aligned, cond.aligned_mask, "audio", 7.5, frames)[0])  # [T_audio, D]
    full, shifted = adds
    assert full.shape[0] == 45 and shifted.shape[0] == 43
    r = 12  # (receptive radius 8 + projection 1) / 2 frames per latent, rounded up, + 1 for the average
    torch.testing.assert_close(shifted[r:-r], full[2:][r:-r], rtol=0, atol=1e-5)
    assert (shifted[r:-r] - full[r:-r][: len(shifted) - 2 * r]).abs().max() > 1e-3


def test_training_puts_the_stream_only_where_the_video_is_given(parts):
    condition, dit, clip = parts
    module = DiTModule(dit, condition=condition, monl=MoNLConfig(segment_seconds=0.5), ema_decay=None)
    video = torch.from_numpy(clip.video[:60])[None].expand(2, -1, -1, -1, -1)  # 4 s
    batch = {"latents": {"audio": torch.randn(2, 30, 4), "video": torch.randn(2, 15, 2, 2, 2)}, "video": video}
    given = torch.zeros(2, 15)
    given[1, 5:] = 0.6  # example 1: video noisy from 4/3 s on (latent frame 5 = stream frame 20)
    levels = NoiseLevels({"audio": torch.full((2, 30), 0.5), "video": given})
    cond, _ = module._cond(batch, levels)
    null = condition.conditioners["sync"].null_embedding[0]
    is_null = (cond.aligned - null).abs().amax(-1) < 1e-6  # [2, 60]
    assert not is_null[0].any()
    assert not is_null[1, :20].any() and is_null[1, 20:].all()
    absent = NoiseLevels({"audio": torch.full((2, 30), 0.5)}, absent=frozenset({"video"}))
    batch_absent = {"latents": {"audio": batch["latents"]["audio"]}, "video": video}
    cond, _ = module._cond(batch_absent, absent)
    assert ((cond.aligned - null).abs().amax(-1) < 1e-6).all()


def test_mmgen_cache_stores_the_features_a_training_config_asks_for(tmp_path):
    import yaml

    from mmgen.cli import main
    from mmgen.data.latent_cache import LatentCache
    from mmgen.data.toydance.io import make_dataset
    from mmgen.modalities.media import VideoModality
    from mmgen.modalities.video import VideoVAE
    from mmgen.modalities.video_codec import read_video

    data = make_dataset(tmp_path / "data", clips=1, seconds=4.0, seed=3, progress=False)
    torch.manual_seed(0)
    VideoModality(VideoVAE.tiny()).save_pretrained(tmp_path / "video")
    VideoSyncEncoder(hidden=16, feature_dim=8, dilations=(1, 2)).save_pretrained(tmp_path / "sync")
    sync = {"class_path": "mmgen.conditioning.video_sync.VideoSyncConditioner",
            "init_args": {"dim": 16, "encoder": str(tmp_path / "sync")}}
    config = {"model": {"class_path": "mmgen.train.dit_module.DiTModule", "init_args": {"condition": {
        "class_path": "mmgen.conditioning.ConditionEncoder",
        "init_args": {"aligned_dim": 16, "aligned_rate_hz": 15.0, "conditioners": {"sync": sync}}}}}}
    (tmp_path / "dit.yaml").write_text(yaml.safe_dump(config))
    assert main(["cache", "--data", str(data), "--vae", f"video={tmp_path / 'video'}", "--out", str(tmp_path / "cache"),
                 "--condition", str(tmp_path / "dit.yaml"), "--no-progress"]) == 0
    cache = LatentCache(tmp_path / "cache")
    cond = VideoSyncConditioner(dim=16, encoder=str(tmp_path / "sync"))
    assert cache.features == ["sync"] and cache.feature_info["sync"]["fingerprint"] == cond.feature_fingerprint()
    frames, fps = read_video(data / "clips" / f"{cache.items[0]['id']}.mp4")
    expect = cond.encode({"video": torch.from_numpy(frames)[None], "video_fps": fps}).values[0]
    torch.testing.assert_close(cache.item_features(0)["sync"][0], expect, rtol=0, atol=1e-6)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": {"init_args": {}}}))
    assert main(["cache", "--data", str(data), "--vae", f"video={tmp_path / 'video'}", "--out", str(tmp_path / "c2"),
                 "--condition", str(bad), "--no-progress"]) == 2
    assert not (tmp_path / "c2").exists()


def test_a_saved_condition_carries_its_sync_encoder_wherever_it_is_moved(tmp_path, monkeypatch):
    """A pipeline names its frozen sync encoder relative to its condition folder ('../sync'):
    saved, moved elsewhere and loaded from another working directory, it finds the encoder it was
    saved with and computes the same stream; a path leaving the saved folder is refused."""
    import shutil

    from mmgen.conditioning.encoder import save_frozen_parts
    from mmgen.core.pretrained import configs_relative_to

    torch.manual_seed(0)
    build = tmp_path / "build"
    VideoSyncEncoder(hidden=16, feature_dim=8, dilations=(1, 2)).save_pretrained(build / "sync")
    with configs_relative_to(build / "condition"):
        condition = ConditionEncoder({"sync": VideoSyncConditioner(dim=16, encoder="../sync")},
                                     aligned_dim=16, aligned_rate_hz=15.0)
    root = tmp_path / "pipe"
    condition.save_pretrained(root / "condition")
    save_frozen_parts(condition, root, root / "condition")
    moved = shutil.move(str(root), str(tmp_path / "elsewhere"))
    shutil.rmtree(build)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    loaded = ConditionEncoder.from_pretrained(f"{moved}/condition")
    assert loaded.conditioners["sync"].encoder_dir == str(tmp_path / "elsewhere" / "sync")
    frames = torch.from_numpy(generate_clip(20007, seconds=3.0).video)[None]
    batch = {"video": frames, "video_fps": 15.0}
    torch.testing.assert_close(loaded.conditioners["sync"].encode(batch).values,
                               condition.conditioners["sync"].encode(batch).values, rtol=0, atol=0)
    VideoSyncEncoder(hidden=16, feature_dim=8, dilations=(1, 2)).save_pretrained(tmp_path / "outside" / "sync")
    with configs_relative_to(tmp_path / "elsewhere" / "condition"):
        escaping = ConditionEncoder({"sync": VideoSyncConditioner(dim=16, encoder="../../outside/sync")},
                                    aligned_dim=16, aligned_rate_hz=15.0)
    with pytest.raises(ValueError, match="outside the folder being saved"):
        save_frozen_parts(escaping, tmp_path / "elsewhere", tmp_path / "elsewhere" / "condition")
