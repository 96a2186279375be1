"""Conditions through Pipeline.generate (text, melody, image, quality, timing per window) and the
waveform-VAE audio kind through the pipeline folder and `mmgen cache`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from test_conditioning import make_tiny_clip, make_tiny_t5
from test_pipeline import make_dit, make_media

from mmgen.cli import main
from mmgen.conditioning import (
    CLIPImageConditioner,
    ConditionEncoder,
    MelodyConditioner,
    QualityConditioner,
    T5TextConditioner,
    TimingConditioner,
)
from mmgen.data.manifest_cache import window_structure_caption
from mmgen.data.toydance import generate_clip
from mmgen.diffusion.window_plan import nominal_starts
from mmgen.modalities.audio_wave import WaveVAE
from mmgen.modalities.media import MotionModality, WaveAudioModality
from mmgen.modalities.motion import MotionVAE
from mmgen.pipeline import Pipeline


def wave_media() -> dict:
    torch.manual_seed(0)
    vae = WaveVAE(sample_rate=22050, audio_channels=1, latent_channels=8, encoder_channels=4, decoder_channels=4,
                  ratios=(2, 2, 3, 5, 7, 7), channel_mults=(1, 1, 2, 2, 4, 4))
    return {"audio": WaveAudioModality(vae), "motion": MotionModality(MotionVAE.tiny())}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("enc")
    return make_tiny_t5(tmp / "t5"), make_tiny_clip(tmp / "clip")


def conditioned_pipeline(encoders, media=None, melody=True) -> Pipeline:
    t5, clip = encoders
    torch.manual_seed(3)
    conditioners = {
        "text": T5TextConditioner(16, model=str(t5), max_length=12),
        "timing": TimingConditioner(8, fourier_dim=8, max_value=32.0),
        "image": CLIPImageConditioner(16, model=clip, pretrained=None, frames_per_clip=1, target="global"),
        "quality": QualityConditioner(8),
    }
    if melody:
        conditioners["melody"] = MelodyConditioner(16, sample_rate=22050, n_fft=1024, hop_length=512)
    groups = {"image": "image", "quality": "quality", **({"melody": "melody"} if melody else {})}
    encoder = ConditionEncoder(conditioners, context_dim=16, prefix_dim=8, pooled_dim=16, groups=groups)
    media = media or make_media(video=False)
    dit = make_dit({m: v.spec for m, v in media.items()}, context_dim=16, prefix_dim=8, pooled_dim=16)
    return Pipeline(dit, media, condition=encoder,
                    defaults={"steps": 2, "window_seconds": 2.0, "hop_seconds": 2.0, "guidance": {"melody": 2.0}})


@pytest.fixture(scope="module")
def joints():
    return generate_clip(2, seconds=2.0, render_video=False).joints


def test_each_condition_reaches_the_sample(encoders, joints):
    pipe = conditioned_pipeline(encoders)
    clip = generate_clip(4, seconds=2.0)
    run = lambda **kw: pipe.generate("dance2music", {"motion": joints}, progress=False, **kw).audio
    plain = run()
    given = {"caption": "<kick @ all>", "melody": clip.audio, "image": clip.video[0], "quality": 5.0}
    outs = {k: run(**({k: v, "melody_rate": 22050} if k == "melody" else {k: v})) for k, v in given.items()}
    for name, out in outs.items():
        assert not np.array_equal(out, plain), name
    assert not np.array_equal(outs["quality"], run(quality=1.0))  # the level matters, not only presence
    # the default melody guidance applies only with a melody: without one it equals no guidance
    assert np.array_equal(plain, run(guidance={}))
    guided = run(melody=clip.audio, melody_rate=22050)
    assert np.array_equal(guided, run(melody=clip.audio, melody_rate=22050, guidance={"melody": 2.0}))
    assert not np.array_equal(guided, run(melody=clip.audio, melody_rate=22050, guidance={}))
    # a melody at another rate is resampled to the conditioner's: 2x the rate, every other sample
    up = np.repeat(clip.audio, 2)
    assert np.abs(run(melody=up, melody_rate=44100) - guided).max() < 0.5 * np.abs(guided - plain).max()


def test_bad_conditions_are_refused(encoders, joints):
    pipe = conditioned_pipeline(encoders, melody=False)
    run = lambda **kw: pipe.generate("dance2music", {"motion": joints}, progress=False, **kw)
    with pytest.raises(ValueError, match="melody given, but the pipeline's condition encoder has no melody"):
        run(melody=np.zeros(22050, np.float32), melody_rate=22050)
    with pytest.raises(ValueError, match="quality guidance needs that condition given"):
        run(guidance={"quality": 2.0})
    with pytest.raises(ValueError, match="image must be uint8"):
        run(image=np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="melody_rate must be"):
        run(melody=np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="quality must be a finite number"):
        run(quality=float("nan"))


def test_long_form_windows_get_their_own_timing(encoders, joints, monkeypatch):
    pipe = conditioned_pipeline(encoders)
    seen = []
    encode = TimingConditioner.encode

    def spy(self, batch, device=None):
        seen.append((float(batch["seconds_start"][0]), float(batch["seconds_total"][0])))
        return encode(self, batch, device)

    monkeypatch.setattr(TimingConditioner, "encode", spy)
    long = np.concatenate([joints, joints[::-1], joints])  # 6 s
    pipe.generate("dance2music", {"motion": long}, progress=False)
    starts = nominal_starts(6.0, 2.0, 2.0)
    assert starts == [0.0, 2.0, 4.0] and seen == [(a, 6.0) for a in starts]
    seen.clear()
    pipe.generate("dance2music", {"motion": joints}, progress=False)
    assert set(seen) == {(0.0, 2.0)}


def test_cli_takes_the_conditions(encoders, tmp_path):
    import soundfile as sf
    from PIL import Image

    from mmgen.io.export import save_motion_npz

    pipe = conditioned_pipeline(encoders)
    pipe.save_pretrained(tmp_path / "p")
    clip = generate_clip(4, seconds=2.0)
    save_motion_npz(tmp_path / "d.npz", clip.joints, 30.0)
    sf.write(tmp_path / "m.wav", clip.audio, 22050, subtype="FLOAT")
    Image.fromarray(clip.video[0]).save(tmp_path / "i.png")
    (tmp_path / "bad.png").write_text("not an image")
    base = ["generate", "--pipeline", str(tmp_path / "p"), "--motion", str(tmp_path / "d.npz"), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "o"), "--text", "<kick @ all>", "--melody", str(tmp_path / "m.wav"),
                 "--image", str(tmp_path / "i.png"), "--quality", "5", "--guidance", "melody=2,image=1.5"]) == 0
    api = pipe.generate("dance2music", {"motion": clip.joints}, caption="<kick @ all>", melody=clip.audio,
                        melody_rate=22050, image=clip.video[0], quality=5.0, guidance={"melody": 2, "image": 1.5},
                        progress=False)
    written, _ = sf.read(tmp_path / "o" / "sample.wav", dtype="float32")
    np.testing.assert_allclose(written, api.audio[0], atol=1e-4)  # wav is float32 as written
    assert main([*base, "--out", str(tmp_path / "o2"), "--image", str(tmp_path / "bad.png")]) == 2
    assert main([*base, "--out", str(tmp_path / "o3"), "--melody", str(tmp_path / "missing.wav")]) == 2
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_a_waveform_vae_pipeline_saves_loads_and_caches(tmp_path, joints):
    from mmgen.data.latent_cache import LatentCache
    from mmgen.data.toydance.io import make_dataset

    media = wave_media()
    pipe = Pipeline(make_dit({m: v.spec for m, v in media.items()}), media, defaults={"steps": 2})
    out = pipe.generate("dance2music", {"motion": joints}, progress=False)
    assert out.audio.shape == (1, 44100) and out.sample_rate == 22050 and np.isfinite(out.audio).all()
    pipe.save_pretrained(tmp_path / "p")
    cfg = yaml.safe_load((tmp_path / "p" / "pipeline.yaml").read_text())
    assert cfg["modalities"]["audio"] == {"kind": "audio_wave", "path": "audio"}
    loaded = Pipeline.from_pretrained(tmp_path / "p")
    assert isinstance(loaded.modalities["audio"], WaveAudioModality)
    assert np.array_equal(loaded.generate("dance2music", {"motion": joints}, progress=False).audio, out.audio)
    # chunked encode / decode (long clips) match the whole-clip runs
    from mmgen.modalities.chunked import decode_long, encode_long

    wave = torch.from_numpy(generate_clip(5, seconds=4.0, render_video=False).audio)[None]  # [1, 88200]: 30 frames
    mod = media["audio"]
    whole = mod.encode(wave)
    torch.testing.assert_close(encode_long(mod, wave, chunk=8), whole, rtol=0, atol=1e-4)  # margin: WAVE_MARGIN
    torch.testing.assert_close(decode_long(mod, whole, 88200, chunk=8), mod.decode(whole, 88200).cpu(),
                               rtol=0, atol=1e-4)

    data = make_dataset(tmp_path / "data", clips=1, seconds=2.0, seed=3, progress=False)
    for name, folder in (("c1", tmp_path / "p" / "audio"), ("c2", tmp_path / "p" / "audio" / "vae")):
        assert main(["cache", "--data", str(data), "--vae", f"audio={folder}", "--out", str(tmp_path / name),
                     "--no-progress"]) == 0
        cache = LatentCache(tmp_path / name)
        import soundfile as sf

        wave, _ = sf.read(data / "clips" / f"{cache.items[0]['id']}.wav", dtype="float32")
        expect = media["audio"].encode_item(torch.from_numpy(wave))
        torch.testing.assert_close(cache[0]["latents"]["audio"], expect, rtol=0, atol=1e-5)
    # a motion VAE is not an audio VAE
    assert main(["cache", "--data", str(data), "--vae", f"audio={tmp_path / 'p' / 'motion'}", "--out",
                 str(tmp_path / "c3"), "--no-progress"]) == 2


def test_the_structured_caption_of_a_window():
    structure = [{"instrument": "kick", "start": 0.0, "end": 8.0}, {"instrument": "bass", "start": 5.0, "end": 6.0},
                 {"instrument": "lead", "start": 1.0, "end": 2.0}]
    # window 4-8 s: kick plays throughout, bass 1-2 s into it (centre 0.375 of the window: mid); lead is before it
    assert window_structure_caption(structure, 4.0, 4.0) == "<kick @ all>, <bass @ mid>"
    assert window_structure_caption(structure, 0.0, 4.0) == "<kick @ all>, <lead @ mid>"


def test_training_drops_each_guidance_group_on_its_own():
    from mmgen.conditioning import FeatureStreamConditioner
    from mmgen.core.timeline import ModalitySpec
    from mmgen.diffusion.noise_levels import NoiseLevels
    from mmgen.dit.model import MultimodalDiT
    from mmgen.train.dit_module import DiTModule

    torch.manual_seed(0)
    enc = ConditionEncoder({"quality": QualityConditioner(8), "beat": FeatureStreamConditioner(8, 2, 7.5, key="beat")},
                           prefix_dim=8, aligned_dim=8, aligned_rate_hz=7.5, groups={"beat": "beat"})
    dit = MultimodalDiT({"audio": ModalitySpec(4, 7.5)}, d_model=16, depth=1, num_heads=2, prefix_dim=8,
                        aligned_dim=8, aligned_rate_hz=7.5)
    batch = {"latents": {"audio": torch.randn(4, 8, 4)}, "quality": [5.0] * 4, "beat": torch.randn(4, 8, 2)}
    levels = NoiseLevels({"audio": torch.full((4, 8), 0.5)}, text_null=torch.tensor([True, False, False, False]))
    module = DiTModule(dit, condition=enc, ema_decay=None, group_drop={"beat": 1.0})
    cond, _ = module._cond(batch, levels)
    full = enc(batch=batch)
    null = enc.null_cond(4, aligned_frames=8)
    assert torch.equal(cond.prefix[0], null.prefix[0]) and torch.equal(cond.prefix[1:], full.prefix[1:])  # text_null: row 0
    assert torch.allclose(cond.aligned, null.aligned)  # the beat group: every row
    with pytest.raises(ValueError, match="group_drop names 'melody'"):
        DiTModule(dit, condition=enc, ema_decay=None, group_drop={"melody": 0.5})._cond(batch, levels)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        DiTModule(dit, condition=enc, ema_decay=None, group_drop={"beat": 2.0})
