"""Contrastive sync pre-training: the InfoNCE maths, crop alignment, and a tiny run that learns."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmgen.conditioning.video_sync import VideoSyncEncoder
from mmgen.data.toydance import generate_clip
from mmgen.data.toydance.io import make_dataset
from mmgen.train.sync_audio import AudioSyncEncoder, MelFrontEnd
from mmgen.train.sync_data import SyncClip, SyncCrops, SyncDataModule, clip_front_ends, collate_crops
from mmgen.train.sync_module import SyncModule, shifted_windows, sync_infonce


def tiny_module(**kw) -> SyncModule:
    video = VideoSyncEncoder(hidden=16, feature_dim=8, dilations=(1, 2, 4))
    audio = AudioSyncEncoder(hidden=16, feature_dim=8, fine_dilations=(1,), coarse_dilations=(1, 2, 4))
    return SyncModule(video, audio, window_seconds=1.0, max_shift_frames=kw.pop("max_shift_frames", 6), **kw)


def crops_of(clips, crop_frames: int, random: bool) -> SyncCrops:
    mel = MelFrontEnd(22050, 15.0, 1024, 48)
    fronts = [clip_front_ends(c.video, c.video_fps, c.audio, 15.0, 64, 4, mel, f"clip {c.seed}") for c in clips]
    return SyncCrops([SyncClip(str(c.seed), d, m) for c, (d, m) in zip(clips, fronts, strict=True)], crop_frames, random)


def test_infonce_equals_an_explicit_loop():
    torch.manual_seed(0)
    b, t, f, w, k = 3, 20, 4, 5, 2
    v, a = F.normalize(torch.randn(b, t, f), dim=-1), F.normalize(torch.randn(b, t, f), dim=-1)
    start, scale = 7, torch.tensor(3.0)
    out = sync_infonce(v, a, start, w, k, scale)

    def score(x, y):  # mean per-frame dot product of two windows
        return float((x * y).sum(-1).mean())

    losses = []
    for anchor, other in ((v, a), (a, v)):
        for i in range(b):
            logits = [float(scale) * score(anchor[i, start : start + w], other[j, start + s : start + s + w])
                      for j in range(b) for s in range(-k, k + 1)]
            target = i * (2 * k + 1) + k
            losses.append(-logits[target] + math.log(sum(math.exp(x) for x in logits)))
    assert float(out["loss"]) == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    win = shifted_windows(v, start, w, k)
    assert torch.equal(win[1, 0], v[1, start - k : start - k + w]) and torch.equal(win[2, 2 * k], v[2, start + k : start + k + w])
    with pytest.raises(ValueError, match="outside a crop"):
        shifted_windows(v, 1, w, k)


def test_crops_line_up_frames_and_samples_like_the_raw_encoders():
    clip = generate_clip(20002, seconds=6.0)
    module = tiny_module().eval()
    crops = crops_of([clip], 60, random=False)
    first = 20
    batch = collate_crops([crops.clips[0].crop(first, 60)])
    with torch.no_grad():
        video, audio = module.features(batch)
        gray = module.encoder.conform(clip.video, 15.0)[first : first + 60][None]
        raw_video = module.encoder(gray)
        raw_audio = module.audio(torch.from_numpy(clip.audio[first * 1470 : (first + 60) * 1470])[None])
    r = module.margin
    torch.testing.assert_close(video[:, r:-r], raw_video[:, r:-r], rtol=0, atol=1e-5)
    torch.testing.assert_close(audio[:, r:-r], raw_audio[:, r:-r], rtol=0, atol=1e-4)
    with torch.no_grad():  # and one frame later is not the same
        later = module.audio(torch.from_numpy(clip.audio[(first + 1) * 1470 : (first + 61) * 1470])[None])
    assert (audio[:, r:-r] - later[:, r:-r]).abs().max() > 1e-2


def test_the_data_module_reads_a_folder_with_video_and_sound(tmp_path):
    root = make_dataset(tmp_path / "data", clips=3, seconds=4.0, seed=2, progress=False)
    dm = SyncDataModule(str(root), crop_seconds=3.0, batch_size=2, val_fraction=0.0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["diffs"].shape == (2, 44, 17) and batch["mel"].shape == (2, 48, 135)
    assert len(dm.train_set) == 3 and dm.val_dataloader() == []
    with pytest.raises(ValueError, match="need >= W \\+ 2 \\(K \\+ R\\)"):
        tiny_module(max_shift_frames=12)._check(batch)


def retrieval_accuracy(module: SyncModule, crops: SyncCrops) -> float:
    hits = []
    with torch.no_grad():
        for n in range(len(crops)):
            batch = collate_crops([crops[n]])
            video, audio = module.features(batch)
            for start in module.starts(video.shape[1]):
                stats = sync_infonce(video, audio, start, module.width, module.hparams.max_shift_frames, torch.tensor(1.0))
                hits.append(float(stats["acc_shift"]))
    return float(np.mean(hits))


def test_contrastive_sync_training_beats_chance_on_held_out_clips():
    torch.manual_seed(0)
    module = tiny_module(lr=3e-3)
    train = crops_of([generate_clip(100 + i, seconds=5.0) for i in range(16)], 48, random=True)
    held_out = crops_of([generate_clip(30000 + i, seconds=5.0, tempo_position=i / 5) for i in range(6)], 48, random=False)
    before = retrieval_accuracy(module.eval(), held_out)
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    module.train()
    loader = torch.utils.data.DataLoader(train, batch_size=8, shuffle=True, collate_fn=collate_crops)
    for _ in range(12):
        for batch in loader:
            starts = module.starts(batch["diffs"].shape[1] + 1)
            loss = module._step(batch, starts[int(torch.randint(len(starts), ()))], augment=True)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = retrieval_accuracy(module.eval(), held_out)
    chance = 1 / (2 * module.hparams.max_shift_frames + 1)
    assert after > 5 * chance and after > before + 0.2, (before, after)
