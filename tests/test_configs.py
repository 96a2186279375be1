"""Every YAML under configs/ parses against the constructors it names (STYLE 6: the signature is the config)."""

from pathlib import Path

import pytest

from mmgen.train.cli import MmgenCLI

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TRAINER_FILES = {"trainer_cpu.yaml", "gpu.yaml"}
RUN_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.name not in TRAINER_FILES)
# overlays: files that only change a few values of the run they are layered on
BASES = {
    "dit_tune.yaml": ("dit.yaml",),
    "dit_task.yaml": ("dit.yaml",),
    "dit_sync.yaml": ("dit.yaml", "dit_task.yaml"),
    "dit_video.yaml": ("dit.yaml", "dit_task.yaml", "dit_sync.yaml"),
    "dit_wide.yaml": ("dit.yaml", "dit_task.yaml", "dit_sync.yaml"),
    "dit_pose.yaml": ("dit.yaml", "dit_task.yaml", "dit_sync.yaml", "dit_wide.yaml"),
    "vae_motion_decoder.yaml": ("vae_motion.yaml",),
    "vae_video_decoder.yaml": ("vae_video.yaml",),
}


class ParseOnlyCLI(MmgenCLI):
    def instantiate_classes(self) -> None:  # parse and type-check, build nothing
        pass


def parse(*files: Path):
    args = []
    for f in files:
        args += ["-c", str(f)]
    return ParseOnlyCLI(model_class=None, datamodule_class=None, subclass_mode_model=True,
                        subclass_mode_data=True, args=args, run=False).config


def test_configs_exist():
    assert len(RUN_CONFIGS) >= 10


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_parses(path):
    trainer = CONFIGS / ("toydance/trainer_cpu.yaml" if path.parent.name == "toydance" else "trainer/gpu.yaml")
    base = [path.parent / name for name in BASES.get(path.name, ())]
    config = parse(trainer, *base, path)
    assert config.model.class_path.startswith("mmgen.train.")
    assert config.data.class_path.startswith("mmgen.train.")
    assert config.trainer.max_steps > 0


def test_a_bad_config_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "toydance/dit.yaml").read_text().replace("d_model: 128", "d_modle: 128"))
    with pytest.raises(SystemExit):
        parse(CONFIGS / "toydance/trainer_cpu.yaml", bad)


def test_dit_specs_match_the_toydance_vaes():
    """The DiT config's modality specs are the specs of the VAE configs beside it (one source of truth)."""
    dit = parse(CONFIGS / "toydance/trainer_cpu.yaml", CONFIGS / "toydance/dit.yaml")
    specs = dit.model.init_args.model.init_args.modalities
    audio = parse(CONFIGS / "toydance/trainer_cpu.yaml", CONFIGS / "toydance/vae_audio.yaml")
    vae = audio.model.init_args.objective.init_args.vae.init_args
    assert specs["audio"]["channels"] == vae.z_channels * 80 // 4
    motion = parse(CONFIGS / "toydance/trainer_cpu.yaml", CONFIGS / "toydance/vae_motion.yaml")
    assert specs["motion"]["channels"] == motion.model.init_args.objective.init_args.vae.init_args.latent_channels
    video = parse(CONFIGS / "toydance/trainer_cpu.yaml", CONFIGS / "toydance/vae_video.yaml")
    assert specs["video"]["channels"] == video.model.init_args.objective.init_args.vae.init_args.latent_channels


def test_the_tune_overlay_changes_only_the_noise_level_mixture_and_steps():
    base = parse(CONFIGS / "toydance/trainer_cpu.yaml", CONFIGS / "toydance/dit.yaml")
    tuned = parse(CONFIGS / "toydance/trainer_cpu.yaml", CONFIGS / "toydance/dit.yaml", CONFIGS / "toydance/dit_tune.yaml")
    assert tuned.model.init_args.model == base.model.init_args.model
    assert tuned.model.init_args.lr == base.model.init_args.lr and tuned.data == base.data
    assert tuned.model.init_args.monl.init_args.drop_mode == "absent"
    assert tuned.trainer.max_steps > base.trainer.max_steps
