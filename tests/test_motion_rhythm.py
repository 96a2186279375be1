import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmgen.modalities.motion_rhythm import (
    RhythmContrastive,
    beat_windows,
    bidirectional_info_nce,
    motion_beat_frames,
    window_max_pool,
)


def _hand_info_nce() -> float:
    """a = (1,0), (0,1); m = (1,0), (1,1)/sqrt2; tau = 0.5 -> cosine similarities by hand."""
    s = [[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]]
    e = [[math.exp(v / 0.5) for v in row] for row in s]
    rows = [-math.log(e[0][0] / (e[0][0] + e[0][1])), -math.log(e[1][1] / (e[1][0] + e[1][1]))]
    cols = [-math.log(e[0][0] / (e[0][0] + e[1][0])), -math.log(e[1][1] / (e[0][1] + e[1][1]))]
    return 0.5 * sum(rows) / 2 + 0.5 * sum(cols) / 2


def test_info_nce_matches_a_hand_computed_example():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    m = torch.tensor([[2.0, 0.0], [3.0, 3.0]])  # lengths do not matter: cosine similarity
    loss = bidirectional_info_nce(a, m, temperature=0.5)
    assert loss.item() == pytest.approx(_hand_info_nce(), rel=1e-6)
    # a masked third pair is neither an anchor nor a negative
    a3 = torch.cat([a, torch.tensor([[5.0, -1.0]])])
    m3 = torch.cat([m, torch.tensor([[0.3, 7.0]])])
    masked = bidirectional_info_nce(a3, m3, 0.5, mask=torch.tensor([True, True, False]))
    assert masked.item() == pytest.approx(_hand_info_nce(), rel=1e-6)
    a3.requires_grad_(True)
    bidirectional_info_nce(a3, m3, 0.5, mask=torch.tensor([True, False, True])).backward()
    assert torch.isfinite(a3.grad).all() and a3.grad[1].abs().sum() == 0


def test_beat_windows_maps_frames_to_latent_frames():
    # 30 fps -> 7.5 Hz: latent i holds frames 4i .. 4i+3
    index, mask = beat_windows([[0, 3, 4, 7, 8, 30], [13]], fps=30, latent_rate_hz=7.5, num_latent_frames=8)
    assert index.tolist() == [[0, 1, 2, 7], [3, 0, 0, 0]]
    assert mask.tolist() == [[True] * 4, [True, False, False, False]]
    index, mask = beat_windows([np.array([0, 40])], fps=30, latent_rate_hz=7.5, num_latent_frames=11, max_beats=1)
    assert index.tolist() == [[0]]
    with pytest.raises(ValueError, match="clip 0 has beats outside its 8 latent frames"):
        beat_windows([[32]], fps=30, latent_rate_hz=7.5, num_latent_frames=8)


def test_window_max_pool_matches_a_loop():
    z = torch.randn(2, 9, 3)
    index = torch.tensor([[0, 4, 8], [2, 3, 7]])
    out = window_max_pool(z, index, radius=2)
    for b in range(2):
        for k in range(3):
            i = int(index[b, k])
            expected = z[b, max(0, i - 2) : i + 3].max(0).values
            torch.testing.assert_close(out[b, k], expected)


def test_module_is_heads_plus_info_nce_and_music_stays_frozen():
    torch.manual_seed(0)
    head = RhythmContrastive(motion_channels=4, music_channels=6, dim=8, temperature=0.2, radius=1)
    motion = torch.randn(2, 10, 4, requires_grad=True)
    music = torch.randn(2, 10, 6, requires_grad=True)
    index, mask = beat_windows([[4, 12, 30], [8]], 30, 7.5, 10)
    loss = head(motion, music, index, mask)
    a = head.music_head(window_max_pool(music, index, 1)).flatten(0, 1)
    m = head.motion_head(window_max_pool(motion, index, 1)).flatten(0, 1)
    logits = F.normalize(a, dim=-1) @ F.normalize(m, dim=-1).T / 0.2
    valid = mask.flatten().nonzero().squeeze(1)
    logits = logits[valid][:, valid]
    target = torch.arange(len(valid))
    expected = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert motion.grad is not None and motion.grad.abs().sum() > 0
    assert music.grad is None  # the music encoder's latents are a fixed target
    with pytest.raises(ValueError, match="same B and T"):
        head(motion, music[:, :9], index, mask)


def test_motion_beat_frames_find_toydance_beats():
    from mmgen.data.toydance import generate_clip

    clip = generate_clip(0, 4.0, render_video=False)
    true = np.round(clip.beat_times * clip.fps)
    for method in ("speed", "amplitude"):
        beats = motion_beat_frames(clip.joints, clip.fps, method)
        assert beats.dtype == np.int64 and len(beats) >= 4
        assert ((beats >= 0) & (beats < len(clip.joints))).all()
    speed = motion_beat_frames(clip.joints, clip.fps, "speed")
    near = np.abs(speed[:, None] - true[None, :]).min(1) <= 2  # joint-speed minima sit on the beats
    assert near.mean() >= 0.8
    with pytest.raises(ValueError, match="unknown beat method 'onset'"):
        motion_beat_frames(clip.joints, clip.fps, "onset")
