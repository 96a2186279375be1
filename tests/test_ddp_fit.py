"""`mmgen fit` with DDP on CPU (gloo, 2 processes) streaming a tar-shard cache; FSDP's CPU refusal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "toydance"


def fit_argv(tmp: Path, root: Path, vaes: str, *extra: str) -> list[str]:
    return ["fit", "-c", str(CONFIGS / "trainer_cpu.yaml"), "-c", str(CONFIGS / "dit.yaml"),
            f"--data.init_args.root={root}", f"--data.init_args.vaes={vaes}", "--data.init_args.batch_size=1",
            "--data.init_args.val_fraction=0.0", "--model.init_args.model.init_args.d_model=32",
            "--model.init_args.model.init_args.depth=1", "--model.init_args.model.init_args.num_heads=2",
            # the tiny video VAE's latents come at 3.75 Hz, the shipped config's at 7.5 Hz
            ("--model.init_args.model.init_args.modalities={audio: {channels: 80, rate_hz: 7.5}, "
             "motion: {channels: 16, rate_hz: 7.5}, video: {channels: 12, rate_hz: 3.75, spatial: [8, 8]}}"),
            f"--model.init_args.export_dir={tmp}/export", f"--trainer.default_root_dir={tmp}",
            f"--trainer.logger.init_args.save_dir={tmp}/logs", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--trainer.log_every_n_steps=1", *extra]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("shards")
    data = make_dataset(tmp / "data", clips=4, seconds=4.0, seed=5, progress=False)
    torch.manual_seed(0)
    media = {"audio": AudioModality(MelVAE.from_preset("tiny")), "motion": MotionModality(MotionVAE.tiny()),
             "video": VideoModality(VideoVAE.tiny())}
    for name, m in media.items():
        m.save_pretrained(tmp / name)
    vae_args = [a for name in media for a in ("--vae", f"{name}={tmp / name}")]
    argv = ["cache", "--data", str(data), "--out", str(tmp / "cache"), *vae_args, "--no-progress"]
    assert main([*argv, "--format", "shards", "--shard-size", "1"]) == 0
    vaes = "{" + ", ".join(f"{n}: {tmp / n / 'vae'}" for n in media) + "}"
    return tmp / "cache", vaes


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes_streams_the_shards(shards, tmp_path):
    root, vaes = shards
    argv = fit_argv(tmp_path, root, vaes, "--data.init_args.streaming=true", "--trainer.max_steps=3",
                    "--trainer.strategy=ddp", "--trainer.accelerator=cpu", "--trainer.devices=2")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # its own session: on a timeout the whole group goes, Lightning's second rank included
    proc = subprocess.Popen([sys.executable, "-m", "mmgen.cli", *argv], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=1800)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-3000:]
    # both ranks ran to the end: a rank that failed or ran out of batches first would hang or fail rank 0
    dit = MultimodalDiT.from_pretrained(tmp_path / "export")
    assert any(p.abs().sum() > 0 for n, p in dit.named_parameters() if "out_proj" in n)  # it trained



def test_the_same_run_reads_the_shards_without_streaming(shards, tmp_path):
    root, vaes = shards
    assert main(fit_argv(tmp_path, root, vaes, "--trainer.max_steps=2")) == 0
    assert (tmp_path / "export").is_dir()


def test_fsdp_on_cpu_is_refused_by_lightning(shards, tmp_path, capsys):
    root, vaes = shards
    argv = fit_argv(tmp_path, root, vaes, "--trainer.max_steps=1", "--trainer.strategy=fsdp",
                    "--trainer.accelerator=cpu")
    assert main(argv) != 0
    assert "requires a GPU accelerator" in capsys.readouterr().err
