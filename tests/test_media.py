import pytest
import torch

from mmgen.data.toydance import generate_clip
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.media import AudioModality, MotionModality, VideoModality
from mmgen.modalities.motion import MotionVAE
from mmgen.modalities.video import VideoVAE


@pytest.fixture(scope="module")
def clip():
    return generate_clip(1, seconds=4.0)


@pytest.fixture(scope="module")
def media():
    torch.manual_seed(0)
    return {
        "audio": AudioModality(MelVAE.from_preset("tiny"), griffin_lim_iters=4).eval(),
        "motion": MotionModality(MotionVAE.tiny()).eval(),
        "video": VideoModality(VideoVAE.tiny()).eval(),
    }


def test_latents_line_up_in_time_and_decode_to_raw_lengths(clip, media):
    raw = {"audio": clip.audio, "motion": clip.joints, "video": clip.video}
    z = {m: media[m].encode_item(raw[m]) for m in media}
    for m, latents in z.items():
        spec = media[m].spec
        assert latents.shape == spec.latent_shape(spec.num_frames(4.0)), m
        assert media[m].raw_length(4.0) == len(raw[m])
    assert media["audio"].decode(z["audio"][None]).shape == (1, len(clip.audio))
    assert media["motion"].decode(z["motion"][None], len(clip.joints)).shape == (1, *clip.joints.shape)
    frames = media["video"].decode(z["video"][None], len(clip.video))
    assert frames.shape == (1, *clip.video.shape) and frames.dtype == torch.uint8


def test_latents_are_normalized_by_the_vae_stats(clip, media):
    audio = media["audio"]
    raw = audio.encode_item(clip.audio)
    audio.vae.latent_stats.mean.fill_(1.0)
    audio.vae.latent_stats.std.fill_(2.0)
    try:
        assert torch.allclose(audio.encode_item(clip.audio), (raw - 1.0) / 2.0, atol=1e-5)
    finally:
        audio.vae.latent_stats.mean.fill_(0.0)
        audio.vae.latent_stats.std.fill_(1.0)


def test_save_load_round_trip_keeps_the_fingerprint(tmp_path, clip, media):
    for name, cls in (("audio", AudioModality), ("motion", MotionModality), ("video", VideoModality)):
        media[name].save_pretrained(tmp_path / name)
        loaded = cls.from_pretrained(tmp_path / name)
        assert loaded.fingerprint() == media[name].fingerprint()
    raw = torch.from_numpy(clip.joints)
    assert torch.equal(MotionModality.from_pretrained(tmp_path / "motion").encode_item(raw), media["motion"].encode_item(raw))
