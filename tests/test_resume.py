"""Resuming `mmgen fit`: a run killed with SIGKILL and resumed ends bit for bit where an uninterrupted
run ends; an explicit checkpoint path keeps the command line's settings (or refuses in one line)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from mmgen.cli import main
from mmgen.data.toydance.io import make_dataset
from mmgen.modalities.audio_mel import MelVAE
from mmgen.modalities.media import AudioModality, MotionModality
from mmgen.modalities.motion import MotionVAE
from mmgen.train import cli as train_cli
from mmgen.train.cli import _flatten, load_checkpoint
from mmgen.train.resume import ResumableLoader

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "toydance"
TESTS = Path(__file__).resolve().parent
STEPS = 12


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch) -> None:
    """LightningCLI warns when pytest's own argv sits beside the args it is given."""
    monkeypatch.setattr(sys, "argv", ["mmgen"])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> tuple[Path, str]:
    """A latent cache of 3 ToyDance clips (audio + motion, tiny random VAEs) and the --data vaes value."""
    tmp = tmp_path_factory.mktemp("resume")
    data = make_dataset(tmp / "data", clips=3, seconds=4.0, seed=5, progress=False)
    torch.manual_seed(0)
    media = {"audio": AudioModality(MelVAE.from_preset("tiny")), "motion": MotionModality(MotionVAE.tiny())}
    for name, m in media.items():
        m.save_pretrained(tmp / name)
    vae_args = [a for name in media for a in ("--vae", f"{name}={tmp / name}")]
    assert main(["cache", "--data", str(data), "--out", str(tmp / "cache"), *vae_args, "--no-progress"]) == 0
    vaes = "{" + ", ".join(f"{n}: {tmp / n / 'vae'}" for n in media) + "}"
    return tmp / "cache", vaes


def fit_args(cache: tuple[Path, str], run: Path, steps: int, *extra: str, kill: tuple[int, str] | None = None) -> list[str]:
    """A tiny DiT fit: 3 clips, batch 1 (3 batches an epoch, so kills land mid-epoch and on epoch
    ends), 2-s random windows, EMA, a checkpoint every step."""
    root, vaes = cache
    checkpoint = (
        "{class_path: lightning.pytorch.callbacks.ModelCheckpoint, "
        f"init_args: {{dirpath: {run / 'ckpt'}, filename: '{{step}}', save_top_k: -1, save_last: true, "
        "every_n_train_steps: 1}}"
    )
    callbacks = [checkpoint]
    if kill is not None:
        callbacks.append(f"{{class_path: resume_helpers.KillAt, init_args: {{step: {kill[0]}, hook: {kill[1]}}}}}")
    return [
        "fit", "-c", str(CONFIGS / "trainer_cpu.yaml"), "-c", str(CONFIGS / "dit.yaml"),
        f"--data.init_args.root={root}", f"--data.init_args.vaes={vaes}", "--data.init_args.batch_size=1",
        "--data.init_args.window_seconds=2.0", "--data.init_args.val_fraction=0.0",
        "--model.init_args.model.init_args.modalities={audio: {channels: 80, rate_hz: 7.5}, motion: "
        + "{channels: 16, rate_hz: 7.5}}",
        "--model.init_args.model.init_args.d_model=32", "--model.init_args.model.init_args.depth=1",
        "--model.init_args.model.init_args.num_heads=2", "--model.init_args.warmup_steps=3",
        f"--model.init_args.export_dir={run / 'export'}", f"--trainer.max_steps={steps}",
        f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run / 'logs'}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--trainer.callbacks=[{', '.join(callbacks)}]", *extra,
    ]


def fit_process(args: list[str]) -> subprocess.CompletedProcess:
    """`mmgen fit` in its own process (the point: a real SIGKILL of a real run)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]), "OMP_NUM_THREADS": "1"}
    code = "import sys, torch; torch.set_num_threads(1); from mmgen.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False)


def assert_same_state(a: dict, b: dict, what: str) -> None:
    assert a["global_step"] == b["global_step"] == STEPS, what
    for key, value in a["state_dict"].items():  # weights and EMA
        assert torch.equal(value, b["state_dict"][key]), f"{what}: {key} differs"
    opt_a, opt_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert opt_a.keys() == opt_b.keys()
    for i in opt_a:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a[i][name], opt_b[i][name]), f"{what}: Adam {name} of parameter {i} differs"
    assert torch.equal(a["callbacks"]["mmgen.RNGState"]["torch"], b["callbacks"]["mmgen.RNGState"]["torch"])


@pytest.fixture(scope="module")
def straight(cache, tmp_path_factory) -> Path:
    """The uninterrupted reference run, shared by the kill patterns (run in this process)."""
    run = tmp_path_factory.mktemp("straight")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["mmgen"])
        assert main(fit_args(cache, run, STEPS)) == 0
    return run


# kill points (step, hook) of the runs below; 3 batches an epoch, so steps 3, 6, 9 end epochs and a
# kill at the end of step 4 or 7 (before that step's checkpoint) resumes from an epoch's last batch.
# "4,7,9" and "3,6,11" resume from an epoch-end checkpoint written by a run that had itself resumed
# from one: Lightning's epoch counters lagged there, so the resumed epochs replayed earlier epochs'
# batch orders (fixed by mmgen.train.resume.EpochBoundaryResume)
KILLS = {
    "1,7,10": ([1, 7, 10], ["on_before_optimizer_step", "on_train_batch_end", "on_before_optimizer_step"]),
    "2,3,5": ([2, 3, 5], ["on_train_batch_start", "on_before_optimizer_step", "on_before_optimizer_step"]),
    "4,7,9": ([4, 7, 9], ["on_train_batch_end", "on_train_batch_end", "on_before_optimizer_step"]),
    "3,6,11": ([3, 6, 11], ["on_train_batch_start", "on_before_optimizer_step", "on_train_batch_end"]),
}


@pytest.mark.slow
@pytest.mark.parametrize(("kills", "hooks"), list(KILLS.values()), ids=list(KILLS))
def test_sigkill_at_three_steps_then_resume_equals_an_uninterrupted_run(cache, straight, tmp_path, kills, hooks):
    what = f"killed at steps {kills} in {hooks}"
    run = tmp_path / "killed"
    for i, (step, hook) in enumerate(zip(kills, hooks)):
        resume = ["--ckpt_path=last"] if i else []
        proc = fit_process(fit_args(cache, run, STEPS, *resume, kill=(step, hook)))
        assert proc.returncode == -signal.SIGKILL, f"{what}: run {i} ended with {proc.returncode}: {proc.stderr[-3000:]}"
        assert not (run / "export").exists()
        assert "data position" not in proc.stderr, f"{what}: run {i}: {proc.stderr[-3000:]}"
    done = fit_process(fit_args(cache, run, STEPS, "--ckpt_path=last"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data position" not in done.stderr, done.stderr[-3000:]  # the loader and the trainer agreed
    a = load_checkpoint(straight / "ckpt" / "last.ckpt")
    b = load_checkpoint(run / "ckpt" / "last.ckpt")
    assert_same_state(a, b, what)
    assert a["loops"]["fit_loop"] == b["loops"]["fit_loop"], f"{what}: the loop counters differ"
    for name in ("model.safetensors", "config.yaml"):  # so are the exported sampling weights
        assert (run / "export" / name).read_bytes() == (straight / "export" / name).read_bytes(), what


@pytest.mark.parametrize("lagging", [False, True], ids=["this-version", "lagging-counters"])
def test_runs_that_stop_on_epoch_ends_resume_to_the_uninterrupted_runs_state(cache, straight, tmp_path, lagging):
    """Stops on the last batches of epochs 0 and 1 (steps 3 and 6), each resumed: the end equals the
    uninterrupted run's, loop counters too. `lagging`: the step-6 checkpoint is written as a run
    without `EpochBoundaryResume` wrote it (epoch counters one behind); resuming it repairs them."""
    run = tmp_path / "run"
    common = ("--model.init_args.total_steps=12", "--model.init_args.overwrite_export=true")
    assert main(fit_args(cache, run, 3, *common)) == 0
    with pytest.MonkeyPatch.context() as mp:
        if lagging:
            mp.setattr(train_cli, "EpochBoundaryResume", L.Callback)
        assert main(fit_args(cache, run, 6, *common, "--ckpt_path=last")) == 0
    written = load_checkpoint(run / "ckpt" / "step=6.ckpt")["loops"]["fit_loop"]["epoch_progress"]["current"]
    assert written["ready"] == (1 if lagging else 2)  # the uninterrupted run has 2 (epoch 1 started)
    assert main(fit_args(cache, run, STEPS, *common, "--ckpt_path=last")) == 0
    a = load_checkpoint(straight / "ckpt" / "last.ckpt")
    b = load_checkpoint(run / "ckpt" / "last.ckpt")
    assert_same_state(a, b, f"lagging={lagging}")
    assert a["loops"]["fit_loop"] == b["loops"]["fit_loop"]
    assert (run / "export" / "model.safetensors").read_bytes() == (straight / "export" / "model.safetensors").read_bytes()


def test_a_loader_resumed_into_another_epoch_than_the_trainers_says_so(caplog):
    """The data position a checkpoint holds and the epoch the trainer starts must agree; if they do
    not (as when Lightning's epoch counters lagged), the resumed run says so instead of silently
    training on another epoch's batch order."""
    loader = ResumableLoader(list(range(6)), batch_size=2, seed=3)
    loader.load_state_dict({"seed": 3, "epoch": 1, "batches": 3})  # saved on epoch 1's last batch
    assert loader.sampler.epoch == 2
    caplog.set_level(logging.WARNING)
    loader.sampler.set_epoch(2)  # what the trainer sets after a sound resume: quiet, a whole epoch
    assert len(list(loader)) == 3 and not caplog.records
    loader.load_state_dict({"seed": 3, "epoch": 1, "batches": 1})
    loader.sampler.set_epoch(1)
    assert len(list(loader)) == 2 and not caplog.records  # mid-epoch: the consumed batch is skipped
    loader.load_state_dict({"seed": 3, "epoch": 1, "batches": 3})
    loader.sampler.set_epoch(1)  # a trainer one epoch behind the checkpoint
    list(loader)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "data position is in epoch 2, but the trainer starts epoch 1" in said[0]


def test_an_explicit_checkpoint_path_keeps_the_command_lines_settings(cache, tmp_path, caplog):
    first = tmp_path / "first"
    assert main(fit_args(cache, first, 3)) == 0
    exported = (first / "export" / "model.safetensors").read_bytes()
    ckpt = first / "ckpt" / "step=3.ckpt"
    assert ckpt.is_file()
    second = tmp_path / "second"
    caplog.set_level(logging.WARNING)
    args = fit_args(cache, second, 5, f"--ckpt_path={ckpt}", "--model.init_args.monl.init_args.p_clean=0.7")
    assert main(args) == 0
    assert (second / "export" / "model.safetensors").is_file()  # the new export_dir won ...
    assert (first / "export" / "model.safetensors").read_bytes() == exported  # ... the first run's is untouched
    resumed = load_checkpoint(second / "ckpt" / "last.ckpt")
    assert resumed["global_step"] == 5
    hp = _flatten(resumed["hyper_parameters"])  # the run trained with the new settings
    assert hp["export_dir"] == str(second / "export") and hp["monl.p_clean"] == 0.7
    said = [r.getMessage() for r in caplog.records if "not the checkpoint's" in r.getMessage()]
    assert len(said) == 1 and "export_dir" in said[0] and "monl.p_clean: 0.3 -> 0.7" in said[0]
    assert said[0].count(" -> ") == 2  # nothing else differs


def test_a_checkpoint_that_does_not_fit_the_configured_model_is_refused_in_one_line(cache, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(fit_args(cache, first, 2)) == 0
    capsys.readouterr()
    wider = fit_args(cache, tmp_path / "wider", 4, f"--ckpt_path={first / 'ckpt' / 'last.ckpt'}",
                     "--model.init_args.model.init_args.d_model=48")
    assert main(wider) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "weights do not fit the configured model (size mismatch for model." in err
    assert not (tmp_path / "wider" / "export").exists()
