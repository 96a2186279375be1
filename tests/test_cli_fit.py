"""One real training run of each kind through `mmgen fit`, on the shipped ToyDance configs made tiny."""

from pathlib import Path

import pytest
import torch

from mmgen.cli import main
from mmgen.data.toydance_io import make_dataset
from mmgen.dit.model import MultimodalDiT
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.media import AudioModality, MotionModality, VideoModality
from mmgen.modalities.motion import MotionVAE
from mmgen.modalities.video import VideoVAE

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "toydance"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("toydance") / "data", clips=3, seconds=4.0, seed=5, progress=False)


def fit(config: str, tmp: Path, steps: int, *overrides: str) -> int:
    """`mmgen fit` on a shipped config; overrides come after every -c, so they win (later wins)."""
    return main(["fit", "-c", str(CONFIGS / "trainer_cpu.yaml"), "-c", str(CONFIGS / config),
                 f"--trainer.max_steps={steps}", f"--trainer.default_root_dir={tmp}",
                 f"--trainer.logger.init_args.save_dir={tmp}/logs", "--trainer.enable_progress_bar=false",
                 "--trainer.enable_model_summary=false", "--trainer.log_every_n_steps=1", *overrides])


def test_fit_a_motion_vae_with_the_rhythm_term_through_the_cli(data, tmp_path):
    torch.manual_seed(0)
    MelVAE.from_preset("tiny").save_pretrained(tmp_path / "music_vae")  # the frozen music side
    out = tmp_path / "motion_vae"
    code = fit("vae_motion.yaml", tmp_path, 3, f"--data.init_args.root={data}", "--data.init_args.batch_size=2",
                 f"--model.init_args.objective.init_args.music_vae={tmp_path / 'music_vae'}",
                 f"--model.init_args.export_dir={out}",
                 "--model.init_args.stats_batches=2")
    assert code == 0
    vae = MotionVAE.from_pretrained(out)
    logged = (next((tmp_path / "logs").rglob("metrics.csv"))).read_text().splitlines()[0]
    assert "train/rhythm" in logged and "train/positions" in logged  # named losses, logged under their names
    assert not torch.allclose(vae.latent_stats.std, torch.ones_like(vae.latent_stats.std))  # stats were measured


def test_cache_then_fit_the_dit_through_the_cli(data, tmp_path):
    torch.manual_seed(0)
    media = {"audio": AudioModality(MelVAE.from_preset("tiny")), "motion": MotionModality(MotionVAE.tiny()),
             "video": VideoModality(VideoVAE.tiny())}
    for name, m in media.items():
        m.save_pretrained(tmp_path / name)
    cache = tmp_path / "cache"
    vae_args = [a for name in media for a in ("--vae", f"{name}={tmp_path / name}")]
    assert main(["cache", "--data", str(data), "--out", str(cache), *vae_args, "--no-progress"]) == 0
    vaes = "{" + ", ".join(f"{n}: {tmp_path / n / 'vae'}" for n in media) + "}"
    out = tmp_path / "dit"
    code = fit("dit.yaml", tmp_path, 4,
                 f"--data.init_args.root={cache}", f"--data.init_args.vaes={vaes}", "--data.init_args.batch_size=2",
                 "--data.init_args.val_fraction=0.0", "--model.init_args.model.init_args.d_model=32",
                 "--model.init_args.model.init_args.depth=1", "--model.init_args.model.init_args.num_heads=2",
                 f"--model.init_args.export_dir={out}")
    assert code == 0
    dit = MultimodalDiT.from_pretrained(out)
    assert dit.specs == {n: m.spec for n, m in media.items()}
    assert any(p.abs().sum() > 0 for n, p in dit.named_parameters() if "out_proj" in n)  # it trained (zero at init)


def test_fit_refuses_a_cache_made_by_other_vaes(data, tmp_path):
    torch.manual_seed(0)
    audio = AudioModality(MelVAE.from_preset("tiny"))
    audio.save_pretrained(tmp_path / "audio")
    cache = tmp_path / "cache"
    assert main(["cache", "--data", str(data), "--out", str(cache), "--vae", f"audio={tmp_path / 'audio'}",
                 "--no-progress"]) == 0
    torch.manual_seed(1)
    AudioModality(MelVAE.from_preset("tiny")).save_pretrained(tmp_path / "other")  # other weights
    code = fit("dit.yaml", tmp_path, 2, f"--data.init_args.root={cache}", f"--data.init_args.vaes={{audio: {tmp_path / 'other' / 'vae'}}}",
                 "--model.init_args.model.init_args.modalities={audio: {channels: 80, rate_hz: 7.5}}")
    assert code == 2
