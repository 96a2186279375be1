import pytest
import torch

from mmgen.data.toydance import generate_clip
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.audio_wave import WaveVAE
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


def test_fingerprint_covers_exactly_the_weights_that_make_latents(clip):
    """Changing every decoder-only weight keeps the latents and the fingerprint (a decoder
    fine-tune leaves latent caches valid); changing an encoder weight changes the fingerprint."""
    torch.manual_seed(0)
    wave = WaveVAE.from_preset("tiny").eval()
    encoders = {
        "mel": (AudioModality(MelVAE.from_preset("tiny")).eval(), clip.audio),
        "motion": (MotionModality(MotionVAE.tiny()).eval(), clip.joints),
        "video": (VideoModality(VideoVAE.tiny()).eval(), clip.video),
    }
    cases = {}
    for name, (modality, raw) in encoders.items():
        cases[name] = (modality.vae, lambda m=modality, r=raw: m.encode_item(r))
    audio = torch.from_numpy(clip.audio)[None]
    cases["wave"] = (wave, lambda: wave.encode_normalized(wave.prepare(audio, clip.sample_rate)))
    for name, (vae, encode) in cases.items():
        fingerprint, latents = vae.fingerprint(), encode()
        decoder = [p for k, p in vae.named_parameters() if k.startswith(vae.decoder_prefixes)]
        assert len(decoder) > 4, f"{name}: decoder_prefixes {vae.decoder_prefixes} match no decoder"
        with torch.no_grad():
            for p in decoder:
                p.add_(torch.randn_like(p))
        assert vae.fingerprint() == fingerprint, name
        assert torch.equal(encode(), latents), f"{name}: a decoder-only weight changed the latents"
        encoder = next(p for k, p in vae.named_parameters() if not k.startswith(vae.decoder_prefixes))
        with torch.no_grad():
            encoder.add_(0.01)
        assert vae.fingerprint() != fingerprint, name
