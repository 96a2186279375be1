"""One real training run of each kind through `mmgen fit`, on the shipped ToyDance configs made tiny."""

from pathlib import Path

import pytest
import torch

from mmgen.cli import main
from mmgen.data.toydance.io import make_dataset
from mmgen.dit.model import MultimodalDiT
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.media import AudioModality, MotionModality, VideoModality
from mmgen.modalities.motion import MotionVAE
from mmgen.modalities.video import VideoVAE

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "toydance"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("toydance") / "data", clips=3, seconds=4.0, seed=5, progress=False)


def logged_tags(logs: Path) -> dict[str, list[str]]:
    """The tags of the TensorBoard event files under `logs` (the trainer configs log there)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: dict[str, list[str]] = {}
    for events in logs.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"images": 0, "audio": 0, "scalars": 0})
        acc.Reload()
        for kind, names in acc.Tags().items():
            if isinstance(names, list):
                tags.setdefault(kind, []).extend(names)
    return tags


def fit(config: str | tuple[str, ...], tmp: Path, steps: int, *overrides: str) -> int:
    """`mmgen fit` on a shipped config; overrides come after every -c, so they win (later wins).

    The shipped configs export into checkpoints/toydance/ (relative to the working directory):
    every test run exports under `tmp` instead, or it would overwrite the shipped checkpoint.
    """
    layers = [a for c in ((config,) if isinstance(config, str) else config) for a in ("-c", str(CONFIGS / c))]
    return main(["fit", "-c", str(CONFIGS / "trainer_cpu.yaml"), *layers,
                 f"--model.init_args.export_dir={tmp}/export",
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
    logged = logged_tags(tmp_path / "logs")["scalars"]
    assert "train/rhythm" in logged and "train/positions" in logged  # named losses, logged under their names
    assert not torch.allclose(vae.latent_stats.std, torch.ones_like(vae.latent_stats.std))  # stats were measured


def test_fine_tuning_the_motion_decoder_keeps_every_latent(data, tmp_path):
    torch.manual_seed(0)
    MelVAE.from_preset("tiny").save_pretrained(tmp_path / "music_vae")
    first = tmp_path / "stage3"
    assert fit("vae_motion.yaml", tmp_path / "a", 2, f"--data.init_args.root={data}", "--data.init_args.batch_size=2",
               f"--model.init_args.objective.init_args.music_vae={tmp_path / 'music_vae'}",
               f"--model.init_args.export_dir={first}",
               "--model.init_args.stats_batches=2") == 0
    tuned = tmp_path / "stage3b"
    assert fit(("vae_motion.yaml", "vae_motion_decoder.yaml"), tmp_path / "b", 3, f"--data.init_args.root={data}",
               "--data.init_args.batch_size=2", f"--model.init_args.init_weights={first}",
               f"--model.init_args.export_dir={tuned}") == 0
    before, after = MotionVAE.from_pretrained(first), MotionVAE.from_pretrained(tuned)
    old, new = before.state_dict(), after.state_dict()
    frozen = [k for k in old if not k.startswith("decoder.")]  # encoder, feature normalisation, latent stats
    assert any(k.startswith("latent_stats.") for k in frozen) and any(k.startswith("codec.") for k in frozen)
    assert all(torch.equal(old[k], new[k]) for k in frozen)
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("decoder."))  # the decoder trained
    joints = torch.randn(1, 60, 24, 3) * 0.1
    assert torch.equal(before.encode_joints(joints)[0], after.encode_joints(joints)[0])  # same latents: caches stay valid
    assert before.fingerprint() == after.fingerprint()  # so a cache made with `first` is accepted for `tuned`


def test_freezing_a_submodule_the_model_lacks_is_refused():
    from mmgen.train.objectives import MotionVAEObjective
    from mmgen.train.vae_module import VAEModule

    with pytest.raises(ValueError, match=r"freeze: MotionVAE has no submodule 'encoders' \(it has \[.*'encoder'"):
        VAEModule(MotionVAEObjective(MotionVAE.tiny()), freeze=["encoders"])


@pytest.fixture(scope="module")
def cache(data, tmp_path_factory) -> tuple[Path, dict, str]:
    """A latent cache of the test clips made by tiny random VAEs: (cache dir, media, the --data vaes value)."""
    tmp = tmp_path_factory.mktemp("cache")
    torch.manual_seed(0)
    media = {"audio": AudioModality(MelVAE.from_preset("tiny")), "motion": MotionModality(MotionVAE.tiny()),
             "video": VideoModality(VideoVAE.tiny(temporal_downsample=2))}  # 7.5 Hz, as configs/toydance
    for name, m in media.items():
        m.save_pretrained(tmp / name)
    vae_args = [a for name in media for a in ("--vae", f"{name}={tmp / name}")]
    assert main(["cache", "--data", str(data), "--out", str(tmp / "cache"), *vae_args, "--no-progress"]) == 0
    vaes = "{" + ", ".join(f"{n}: {tmp / n / 'vae'}" for n in media) + "}"
    return tmp / "cache", media, vaes


def fit_tiny_dit(cache, tmp: Path, steps: int, *overrides: str) -> int:
    root, _, vaes = cache
    return fit("dit.yaml", tmp, steps,
               f"--data.init_args.root={root}", f"--data.init_args.vaes={vaes}", "--data.init_args.batch_size=2",
               "--data.init_args.val_fraction=0.0", "--model.init_args.model.init_args.d_model=32",
               "--model.init_args.model.init_args.depth=1", "--model.init_args.model.init_args.num_heads=2",
               *overrides)


def test_cache_then_fit_the_dit_through_the_cli(cache, tmp_path):
    out = tmp_path / "dit"
    assert fit_tiny_dit(cache, tmp_path, 4, f"--model.init_args.export_dir={out}") == 0
    dit = MultimodalDiT.from_pretrained(out)
    assert dit.specs == {n: m.spec for n, m in cache[1].items()}
    assert any(p.abs().sum() > 0 for n, p in dit.named_parameters() if "out_proj" in n)  # it trained (zero at init)


def test_resuming_continues_the_same_run(cache, tmp_path):
    """`--ckpt_path last` picks up step, LR schedule, optimizer and EMA where the first run stopped."""

    def run(name: str, steps: int, *extra: str) -> dict:
        ckpts = tmp_path / name
        callback = ("--trainer.callbacks=[{class_path: lightning.pytorch.callbacks.ModelCheckpoint, "
                    f"init_args: {{dirpath: {ckpts}, save_last: true, every_n_train_steps: 1}}}}]")
        assert fit_tiny_dit(cache, tmp_path / name, steps, callback, *extra) == 0
        # tensors and plain values only (hyperparameters as YAML values, random states as tensors)
        return torch.load(ckpts / "last.ckpt", weights_only=True, map_location="cpu")

    first = run("split", 3)
    # the first run finished and exported: continuing it replaces that export, which needs saying so
    resumed = run("split", 5, "--ckpt_path=last", "--model.init_args.overwrite_export=true")
    straight = run("straight", 5)
    assert first["global_step"] == 3 and resumed["global_step"] == straight["global_step"] == 5
    sched = [c["lr_schedulers"][0] for c in (resumed, straight)]
    assert sched[0]["last_epoch"] == sched[1]["last_epoch"] == 5 and sched[0]["_last_lr"] == sched[1]["_last_lr"]
    assert int(resumed["state_dict"]["ema.num_updates"]) == 5  # EMA kept counting across the restart
    adam = [c["optimizer_states"][0]["state"][0]["step"] for c in (first, resumed)]
    assert float(adam[0]) == 3 and float(adam[1]) == 5  # Adam moments continued, not restarted
    moved = [k for k, v in first["state_dict"].items() if v.is_floating_point() and not torch.equal(v, resumed["state_dict"][k])]
    assert moved  # and it trained on from there


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


def test_fits_export_under_the_test_directory(cache, tmp_path, monkeypatch):
    """A fit from a shipped config writes its export under tmp, never into the shipped checkpoint."""
    monkeypatch.chdir(tmp_path)  # where a relative export_dir of the config would land
    assert fit_tiny_dit(cache, tmp_path / "run", 1) == 0
    assert (tmp_path / "run" / "export" / "model.safetensors").is_file()
    assert not (tmp_path / "checkpoints").exists()
