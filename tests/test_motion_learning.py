"""The tiny motion VAE learns ToyDance dances, with the rhythm-contrastive term on."""

import numpy as np
import pytest
import torch

from mmgen.data.toydance import MOTION_FPS, SAMPLE_RATE, generate_clip
from mmgen.modalities.motion import MotionVAE
from mmgen.modalities.motion_rhythm import RhythmContrastive, beat_windows, motion_beat_frames
from mmgen.modalities.motion_train import MotionLossWeights, motion_training_step

STEPS = 150
SECONDS = 4.0


def _music_latents(audio: np.ndarray) -> torch.Tensor:
    """A frozen 'music encoder' at 7.5 Hz: 16-band log-mel averaged over 4 frames of 30 fps."""
    import librosa

    hop = SAMPLE_RATE // 30
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=2048, hop_length=hop, n_mels=16)
    logmel = np.log(mel[:, : int(SECONDS * 30)] + 1e-5).T  # [120, 16]
    return torch.from_numpy(logmel.reshape(-1, 4, 16).mean(1)).float()  # [30, 16]


def _mpjpe(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm(dim=-1).mean())


@pytest.mark.slow
def test_tiny_motion_vae_learns_toydance_with_the_rhythm_term():
    clips = [generate_clip(seed, SECONDS, render_video=False) for seed in range(4)]
    joints = torch.stack([torch.from_numpy(c.joints) for c in clips])  # [4, 120, 24, 3]
    music = torch.stack([_music_latents(c.audio) for c in clips])  # [4, 30, 16]
    music = (music - music.mean((0, 1))) / music.std((0, 1))
    beats = [motion_beat_frames(c.joints, MOTION_FPS) for c in clips]
    assert all(len(b) >= 4 for b in beats)
    index, mask = beat_windows(beats, MOTION_FPS, 7.5, num_latent_frames=30)

    vae = MotionVAE.tiny()
    vae.codec.fit(list(joints))
    rhythm = RhythmContrastive(motion_channels=16, music_channels=16, dim=32, temperature=0.1)
    params = list(vae.parameters()) + list(rhythm.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=STEPS, pct_start=0.1)
    weights = MotionLossWeights(rhythm=0.1)

    def evaluate() -> tuple[float, float, float]:
        vae.eval()
        with torch.no_grad():
            mean, _ = vae.encode_joints(joints)
            err = _mpjpe(vae.reconstruct(joints), joints)
            return err, float(rhythm(mean, music, index, mask)), float(rhythm.retrieval_accuracy(mean, music, index, mask))

    err0, nce0, _ = evaluate()
    for _ in range(STEPS):
        motion_training_step(
            vae, opt, joints, weights, rhythm=rhythm, music_latents=music, beat_index=index, beat_mask=mask
        )
        sched.step()
    err, nce, acc = evaluate()

    mean_pose = _mpjpe(joints.mean(1, keepdim=True).expand_as(joints), joints)  # ~6 cm
    assert err < 0.5 * mean_pose, (err, mean_pose)
    assert err < 0.2 * err0, (err, err0)
    chance = 1.0 / int(mask.sum())
    assert nce < 0.5 * nce0, (nce, nce0)
    assert acc > 10 * chance, (acc, chance)
