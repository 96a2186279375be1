"""LORIS 2-D pose end to end through the CLI: preprocess -> fit (2-D motion VAE) -> cache -> fit (DiT)
-> generate dance2music from a 2-D keypoint npz, on a test-made LORIS tree; and the DataModule's
split of the confidence column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from test_aistpp_pose2d import write_loris_set

from mmgen.cli import main
from mmgen.io.export import load_motion_npz, save_motion_npz
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.media import AudioModality
from mmgen.modalities.motion import MotionVAE
from mmgen.train.media_data import MediaDataModule

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(scope="module")
def loris_data(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("loris")
    poses = write_loris_set(tmp / "raw", seconds=3.0)
    for name, kp in poses.items():  # confidence that varies, so a split is visible
        kp[..., 2] = np.linspace(0.2, 1.0, 17)[None] * (0.5 + 0.5 * np.cos(np.arange(len(kp)))[:, None])
        np.save(tmp / "raw" / "pose2d_s25" / f"{name}.npy", kp)
    out = tmp / "data"
    args = ["preprocess", "loris", "--root", str(tmp / "raw"), "--out", str(out), "--fps", "30", "--no-progress"]
    assert main(args) == 0
    return out, poses


def test_datamodule_gives_positions_and_confidence_apart(loris_data):
    out, poses = loris_data
    dm = MediaDataModule(str(out), modalities=["motion"], window_seconds=1.0, batch_size=2, val_fraction=0.0)
    dm.setup("fit")
    item = dm.train_set[0]
    rec = dm.train_set.dataset.data.records[dm.train_set.dataset.data.windows[dm.train_set.indices[0]][0]]
    stored = load_motion_npz(out / rec["files"]["motion"])["joints"][:30]  # [T, 17, 3] at 30 fps
    assert item["motion"].shape == (30, 17, 2) and item["motion_confidence"].shape == (30, 17)
    np.testing.assert_array_equal(item["motion"].numpy(), stored[..., :2])
    np.testing.assert_array_equal(item["motion_confidence"].numpy(), stored[..., 2])
    # 20 -> 30 fps by linear interpolation: frame 1 at t = 1/30 s is source frame 2/3
    src = poses[rec["id"]]
    np.testing.assert_allclose(stored[1], src[0] / 3 + 2 * src[1] / 3, rtol=1e-5)
    batch = next(iter(dm.train_dataloader()))
    assert batch["motion"].shape == (2, 30, 17, 2)


def fit(tmp: Path, configs: tuple[str, ...], *overrides: str) -> int:
    layers = [a for c in ("toydance/trainer_cpu.yaml", *configs) for a in ("-c", str(CONFIGS / c))]
    return main(["fit", *layers, f"--trainer.default_root_dir={tmp}", f"--trainer.logger.init_args.save_dir={tmp}/logs",
                 "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
                 "--trainer.log_every_n_steps=1", *overrides])


@pytest.mark.slow
def test_loris_preprocess_cache_fit_generate(loris_data, tmp_path, capsys):
    data, _ = loris_data
    pipe = tmp_path / "pipeline"  # the parts are exported straight into a pipeline folder
    torch.manual_seed(0)
    AudioModality(MelVAE.from_preset("tiny")).save_pretrained(pipe / "audio")  # the music side, untrained
    small = ["--data.init_args.batch_size=2", "--data.init_args.num_workers=0", "--trainer.max_steps=3"]
    assert fit(tmp_path / "vae", ("loris/vae_motion.yaml",), *small, f"--data.init_args.root={data}",
               "--data.init_args.window_seconds=2", "--model.init_args.stats_batches=2",
               f"--model.init_args.export_dir={pipe / 'motion' / 'vae'}") == 0
    vae = MotionVAE.from_pretrained(pipe / "motion" / "vae")
    assert (vae.codec.layout.skeleton.name, vae.codec.dims) == ("coco17", 2)
    # normalisation statistics were measured on the 2-D pose (pixels: x ~ 320 +- 50, y down the body)
    assert not torch.allclose(vae.codec.feature_std, torch.ones_like(vae.codec.feature_std))

    cache = tmp_path / "cache"
    assert main(["cache", "--data", str(data), "--vae", f"audio={pipe / 'audio'}", "--vae",
                 f"motion={pipe / 'motion'}", "--out", str(cache), "--no-progress"]) == 0
    vaes = f"{{audio: {pipe / 'audio' / 'vae'}, motion: {pipe / 'motion' / 'vae'}}}"
    assert fit(tmp_path / "dit", ("loris/dit_dance_music.yaml",), *small, f"--data.init_args.root={cache}",
               f"--data.init_args.vaes={vaes}", "--data.init_args.window_seconds=2",
               "--data.init_args.val_fraction=0.0", "--model.init_args.model.init_args.d_model=32",
               "--model.init_args.model.init_args.depth=1", "--model.init_args.model.init_args.num_heads=2",
               f"--model.init_args.export_dir={pipe / 'dit'}") == 0
    (pipe / "pipeline.yaml").write_text(yaml.safe_dump({
        "format": 1, "modalities": {"audio": {"kind": "audio_mel", "path": "audio"},
                                    "motion": {"kind": "motion", "path": "motion"}},
        "dit": "dit", "process": {"class_path": "mmgen.diffusion.process.VPCosine", "init_args": {"prediction": "v"}},
    }))

    # a 2-D keypoint npz at another rate (25 fps), with its confidence column, as `--motion`
    t = np.arange(50) / 25.0
    pose = np.zeros((50, 17, 3), np.float32)
    pose[..., 0] = 300 + 40 * np.sin(2 * np.pi * t)[:, None] + 5 * np.arange(17)
    pose[..., 1] = 200 + 12 * np.arange(17)[None, :]
    pose[..., 2] = 0.8
    save_motion_npz(tmp_path / "pose.npz", pose, 25.0, skeleton="coco17")
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["generate", "--pipeline", str(pipe), "--task", "dance2music", "--motion", str(tmp_path / "pose.npz"),
                 "--out", str(out), "--steps", "2", "--no-progress"]) == 0
    assert "dance2music: 1 sample(s)" in capsys.readouterr().out
    audio, sr = sf.read(str(out / "sample.wav"))
    assert sr == 22050 and abs(len(audio) / sr - 49 / 25) < 0.05 and np.isfinite(audio).all() and audio.std() > 0
    given = load_motion_npz(out / "sample.npz")
    # the given dance comes back as given, resampled 25 -> 30 fps (x, y; confidence 1)
    assert given["joints"].shape[1:] == (17, 3) and float(given["fps"]) == 30.0
    np.testing.assert_allclose(given["joints"][6, :, :2], pose[5, :, :2], rtol=1e-5)  # t = 0.2 s
    np.testing.assert_allclose(given["joints"][1, :, :2], (pose[0] / 6 + 5 * pose[1] / 6)[:, :2], rtol=1e-5)
    assert (given["joints"][..., 2] == 1).all()


def test_loris_dit_specs_match_its_vaes():
    def init(path: str) -> dict:
        return yaml.safe_load((CONFIGS / path).read_text())["model"]["init_args"]

    specs = init("loris/dit_dance_music.yaml")["model"]["init_args"]["modalities"]
    audio = init("loris/vae_audio.yaml")["objective"]["init_args"]["vae"]["init_args"]
    motion = init("loris/vae_motion.yaml")["objective"]["init_args"]["vae"]["init_args"]
    assert specs["audio"] == {"channels": audio["z_channels"] * 80 // 4, "rate_hz": 7.5}  # 80 mels / 4
    strides = int(np.prod(motion["strides"]))
    assert specs["motion"] == {"channels": motion["latent_channels"], "rate_hz": motion["fps"] / strides}
    assert (motion["skeleton"], motion["dims"]) == ("coco17", 2)
