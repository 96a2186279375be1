"""Every workflow through the CLI on tiny data: audio VAE kind x condition x (a conditional task, joint).

One `mmgen cache` per audio kind encodes audio, motion and video with every condition's frozen
features (`--condition` on a config holding all the conditioners). Each cell: `mmgen fit` (3 steps
of a tiny DiT on its modalities and its condition's cached features) -> a pipeline folder of the
exported parts -> `mmgen generate` of the conditional task with the condition and its guidance
group, without the condition, and the joint task. The condition must reach the sample (with !=
without). Text / CLIP encoders are tiny random models written to tmp dirs (no network).

    audio:      audio_mel (MelVAE + Griffin-Lim) | audio_wave (WaveVAE)
    condition:  none | text (+ timing) | melody | image | quality | sync (video sync stream)
    tasks:      dance2music (video2audio for sync: the stream reads the given video) and joint
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from mmgen.cli import main
from mmgen.conditioning import ConditionEncoder
from mmgen.data.toydance.io import make_dataset
from mmgen.dit.model import MultimodalDiT
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.audio_wave import WaveVAE
from mmgen.modalities.media import AudioModality, MotionModality, VideoModality, WaveAudioModality
from mmgen.modalities.motion import MotionVAE
from mmgen.modalities.video import VideoVAE
from mmgen.pipeline import Pipeline

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "toydance"
AUDIO_KINDS = ("audio_mel", "audio_wave")
CONDITIONS = ("none", "text", "melody", "image", "quality", "sync")


def tiny_wave_vae() -> WaveVAE:
    """22.05 kHz mono, hop 2940 -> 7.5 Hz x 8 channels (the tiny motion VAE's rate)."""
    return WaveVAE(sample_rate=22050, audio_channels=1, latent_channels=8, encoder_channels=4, decoder_channels=4,
                   ratios=(2, 2, 3, 5, 7, 7), channel_mults=(1, 1, 2, 2, 4, 4))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny data (with a quality score per record, a PNG and a melody wav), VAEs and frozen encoders."""
    from PIL import Image
    from test_conditioning import make_tiny_clip, make_tiny_t5

    from mmgen.conditioning.video_sync import VideoSyncEncoder

    tmp = tmp_path_factory.mktemp("matrix")
    data = make_dataset(tmp / "data", clips=2, seconds=4.0, seed=11, progress=False)
    records = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    for i, rec in enumerate(records):
        rec["quality"] = 1.0 + 4.0 * i  # 1 and 5: the two ends of the scale
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    torch.manual_seed(0)
    media = {"audio_mel": AudioModality(MelVAE.from_preset("tiny"), griffin_lim_iters=2),
             "audio_wave": WaveAudioModality(tiny_wave_vae()),
             "motion": MotionModality(MotionVAE.tiny()), "video": VideoModality(VideoVAE.tiny())}
    for name, m in media.items():
        m.save_pretrained(tmp / name)
    VideoSyncEncoder(hidden=8, feature_dim=8, dilations=(1, 2)).save_pretrained(tmp / "sync")
    from mmgen.modalities.video_codec import read_video

    frames, _ = read_video(data / "clips" / f"{records[1]['id']}.mp4")
    Image.fromarray(frames[0]).save(tmp / "ref.png")
    audio, sr = sf.read(data / "clips" / f"{records[1]['id']}.wav", dtype="float32")
    sf.write(tmp / "melody.wav", audio, sr)
    return {"tmp": tmp, "data": data, "t5": make_tiny_t5(tmp / "t5"), "clip": make_tiny_clip(tmp / "clip")}


def conditioner(condition: str, world: dict) -> tuple[dict, dict, dict]:
    """(condition encoder init_args, extra DiT init_args, groups) of one condition."""
    c = "mmgen.conditioning."
    if condition == "text":
        return ({"conditioners": {
            "text": {"class_path": c + "text.T5TextConditioner",
                     "init_args": {"dim": 16, "model": str(world["t5"]), "max_length": 16, "key": "structure_caption",
                                   "feature_dim": 32}},
            "timing": {"class_path": c + "timing.TimingConditioner",
                       "init_args": {"dim": 8, "fourier_dim": 8, "max_value": 16.0}}},
                 "context_dim": 16, "prefix_dim": 8}, {"context_dim": 16, "prefix_dim": 8}, {})
    if condition == "melody":
        args = {"dim": 8, "sample_rate": 22050, "n_fft": 2048, "hop_length": 1470, "key": "audio", "target": "aligned"}
        return ({"conditioners": {"melody": {"class_path": c + "melody.MelodyConditioner", "init_args": args}},
                 "aligned_dim": 8, "aligned_rate_hz": 7.5, "groups": {"melody": "melody"}},
                {"aligned_dim": 8, "aligned_rate_hz": 7.5, "aligned_targets": ["audio"]}, {})
    if condition == "image":
        args = {"dim": 16, "model": world["clip"], "pretrained": None, "key": "video", "frames_per_clip": 1,
                "feature_dim": 16}
        return ({"conditioners": {"image": {"class_path": c + "clip_image.CLIPImageConditioner", "init_args": args}},
                 "context_dim": 16, "groups": {"image": "image"}}, {"context_dim": 16}, {})
    if condition == "quality":
        return ({"conditioners": {"quality": {"class_path": c + "quality.QualityConditioner", "init_args": {"dim": 8}}},
                 "prefix_dim": 8, "groups": {"quality": "quality"}}, {"prefix_dim": 8}, {})
    assert condition == "sync"
    args = {"dim": 8, "encoder": str(world["tmp"] / "sync")}
    return ({"conditioners": {"sync": {"class_path": c + "video_sync.VideoSyncConditioner", "init_args": args}},
             "aligned_dim": 8, "aligned_rate_hz": 15.0},
            {"aligned_dim": 8, "aligned_rate_hz": 15.0, "aligned_targets": ["audio"]}, {})


def all_conditions_config(path: Path, world: dict) -> Path:
    """A ConditionEncoder spec with every condition's conditioner: what `mmgen cache --condition` reads."""
    conditioners = {}
    for condition in CONDITIONS[1:]:
        conditioners.update(conditioner(condition, world)[0]["conditioners"])
    del conditioners["timing"]  # not cached (it belongs to the training window)
    spec = {"class_path": "mmgen.conditioning.encoder.ConditionEncoder",
            "init_args": {"conditioners": conditioners, "context_dim": 16, "prefix_dim": 8, "pooled_dim": 16,
                          "aligned_dim": 8, "aligned_rate_hz": 15.0}}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def caches(world, tmp_path_factory):
    """{audio kind: latent cache of audio, motion and video with every condition's features}, made on first use."""
    made: dict[str, Path] = {}

    def get(audio: str) -> Path:
        if audio not in made:
            tmp = tmp_path_factory.mktemp(f"cache_{audio}")
            spec = all_conditions_config(tmp / "conditions.yaml", world)
            folders = {"audio": audio, "motion": "motion", "video": "video"}
            vaes = [a for n, f in folders.items() for a in ("--vae", f"{n}={world['tmp'] / f}")]
            assert main(["cache", "--data", str(world["data"]), *vaes, "--out", str(tmp / "cache"), "--seconds", "2",
                         "--no-progress", "--condition", str(spec)]) == 0
            made[audio] = tmp / "cache"
        return made[audio]

    return get


def write_config(path: Path, audio: str, condition: str, world: dict, cell: Path, cache: Path) -> list[str]:
    """A tiny DiT training config (the shipped dit.yaml's shape); returns the modality names."""
    names = ["audio", "video"] if condition == "sync" else ["audio", "motion"]
    tmp = world["tmp"]
    specs = {"audio": tmp / audio, "motion": tmp / "motion", "video": tmp / "video"}
    spec_of = {"audio_mel": AudioModality, "audio_wave": WaveAudioModality}
    audio_spec = spec_of[audio].from_pretrained(tmp / audio).spec
    modalities = {"audio": {"channels": audio_spec.channels, "rate_hz": audio_spec.rate_hz},
                  "motion": {"channels": 16, "rate_hz": 7.5},
                  "video": {"channels": 12, "rate_hz": 3.75, "spatial": [8, 8]}}
    dit = {"modalities": {n: modalities[n] for n in names}, "d_model": 32, "depth": 1, "num_heads": 2,
           "patch_size": 4, "segment_seconds": 0.5}
    init = {"monl": {"class_path": "mmgen.diffusion.noise_levels.MoNLConfig",
                     "init_args": {"p_clean": 0.3, "p_drop": 0.1, "p_drop_text": 0.2, "segment_seconds": 0.5}},
            "lr": 1.0e-3, "warmup_steps": 1, "ema_decay": None, "export_dir": str(cell / "dit")}
    if condition != "none":
        encoder, extra, _ = conditioner(condition, world)
        dit.update(extra)
        init["condition"] = {"class_path": "mmgen.conditioning.encoder.ConditionEncoder", "init_args": encoder}
        init["condition_export_dir"] = str(cell / "condition")
    init["model"] = {"class_path": "mmgen.dit.model.MultimodalDiT", "init_args": dit}
    features = [n for n in init.get("condition", {}).get("init_args", {}).get("conditioners", {}) if n != "timing"]
    config = {
        "model": {"class_path": "mmgen.train.dit_module.DiTModule", "init_args": init},
        "data": {"class_path": "mmgen.train.data.LatentCacheDataModule",
                 # with video (3.75 Hz) the window must be whole video frames: 1.6 s = 6 (2 s would be 7.5)
                 "init_args": {"root": str(cache), "window_seconds": 1.6 if "video" in names else 2.0,
                               "batch_size": 2, "val_fraction": 0.0,
                               "modalities": names, "features": features,
                               "vaes": {n: str(specs[n] / "vae") for n in names}}},
        "trainer": {"max_steps": 3, "default_root_dir": str(cell), "enable_progress_bar": False,
                    "enable_model_summary": False, "enable_checkpointing": False,
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(cell)}}},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return names


def assemble(cell: Path, names: list[str], audio: str, world: dict) -> Path:
    """The exported DiT (+ condition encoder) and the VAEs as a pipeline folder for `mmgen generate`."""
    kinds = {"audio": {"audio_mel": AudioModality, "audio_wave": WaveAudioModality}[audio],
             "motion": MotionModality, "video": VideoModality}
    folders = {"audio": audio, "motion": "motion", "video": "video"}
    media = {n: kinds[n].from_pretrained(world["tmp"] / folders[n]) for n in names}
    condition = ConditionEncoder.from_pretrained(cell / "condition") if (cell / "condition").exists() else None
    pipe = Pipeline(MultimodalDiT.from_pretrained(cell / "dit"), media, condition=condition,
                    defaults={"steps": 2, "seconds": 2.0, "window_seconds": 2.0})
    return pipe.save_pretrained(cell / "pipeline")


def flags(condition: str, world: dict) -> list[str]:
    tmp = world["tmp"]
    return {"none": [], "text": ["--text", "<kick @ all>", "--guidance", "text=2"],
            "melody": ["--melody", str(tmp / "melody.wav"), "--guidance", "melody=2"],
            "image": ["--image", str(tmp / "ref.png"), "--guidance", "image=2"],
            "quality": ["--quality", "5", "--guidance", "quality=2"],
            "sync": ["--guidance", "video=2"]}[condition]


def generate(pipe: Path, out: Path, task: str, given: list[str], extra: list[str]) -> np.ndarray:
    assert main(["generate", "--pipeline", str(pipe), "--task", task, *given, "--seconds", "2", "--steps", "2",
                 "--out", str(out), "--no-progress", *extra]) == 0
    audio, sr = sf.read(out / "sample.wav", dtype="float32")
    assert sr == 22050 and audio.shape == (44100,) and np.isfinite(audio).all()
    return audio


@pytest.mark.slow
@pytest.mark.parametrize("condition", CONDITIONS)
@pytest.mark.parametrize("audio", AUDIO_KINDS)
def test_cache_fit_generate(audio, condition, world, caches, tmp_path):
    data, cell = world["data"], tmp_path
    names = write_config(cell / "dit.yaml", audio, condition, world, cell, caches(audio))
    assert main(["fit", "-c", str(CONFIGS / "trainer_cpu.yaml"), "-c", str(cell / "dit.yaml")]) == 0
    pipe = assemble(cell, names, audio, world)
    conditional, given = (
        ("video2audio", ["--video", str(data / "clips" / "00001.mp4")]) if condition == "sync"
        else ("dance2music", ["--motion", str(data / "clips" / "00001.npz")])
    )
    with_cond = generate(pipe, cell / "cond", conditional, given, flags(condition, world))
    if condition == "sync":  # the stream is the video's: without it, no video guidance group
        without = generate(pipe, cell / "plain", conditional, given, ["--guidance", "none"])
    else:
        without = generate(pipe, cell / "plain", conditional, given, [])
    assert (condition == "none") == np.array_equal(with_cond, without)
    generate(pipe, cell / "joint", "joint", [], [a for a in flags(condition, world) if condition != "sync"])
