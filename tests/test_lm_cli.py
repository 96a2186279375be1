"""The codebook LM as a pipeline kind: `Pipeline.from_pretrained` and `mmgen generate` on a tiny LM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from test_pipeline import make_pipeline

from mmgen.cli import main
from mmgen.core.fileio import MARKER
from mmgen.data.toydance.io import make_dataset
from mmgen.io.export import load_motion_npz
from mmgen.lm.model import CodebookLM
from mmgen.lm.pipeline import LMDefaults, LMPipeline
from mmgen.lm.quantizer import ResidualVQ
from mmgen.pipeline import Pipeline


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    base = make_pipeline(video=False)
    base.save_pretrained(root / "base")
    spec = base.modalities["audio"].spec
    dim = math.prod(spec.latent_shape(1))
    torch.manual_seed(0)
    rvq = ResidualVQ(dim=dim, num_codebooks=2, codebook_size=8, rate_hz=spec.rate_hz)
    rvq.fit_step(torch.randn(4, 16, dim))  # k-means init: a usable codebook
    rvq.save_pretrained(root / "lm" / "rvq")
    motion_dim = base.modalities["motion"].spec.channels
    lm = CodebookLM(2, 8, "delay", rate_hz=spec.rate_hz, d_model=16, depth=1, num_heads=2,
                    conditions={"motion": {"dim": motion_dim, "rate_hz": base.modalities["motion"].spec.rate_hz}})  # fmt: skip
    lm.save_pretrained(root / "lm" / "lm")
    fingerprint = base.modalities["audio"].vae.fingerprint()
    LMPipeline.write_config(root / "lm", "../base", fingerprint, LMDefaults(seconds=2.0, prefix_seconds=1.0, top_k=4))
    return root / "lm"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "toydance", clips=1, seconds=2.0, seed=0, progress=False)


@pytest.mark.slow  # a ToyDance clip, Griffin-Lim, the mel PNG
def test_generate_dance2music_with_the_lm(lm_dir, data, tmp_path):
    out = tmp_path / "out"
    motion = data / "clips" / "00000.npz"
    args = ["generate", "--pipeline", str(lm_dir), "--model-kind", "lm", "--task", "dance2music", "--motion", str(motion),
            "--out", str(out), "--seed", "3", "--temperature", "0.9", "--cfg-scale", "2"]  # fmt: skip
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir() if p.name != MARKER) == ["sample.wav", "sample_mel.png"]
    audio, sr = sf.read(str(out / "sample.wav"))
    pipe = Pipeline.from_pretrained(lm_dir)
    assert isinstance(pipe, LMPipeline)
    expected = pipe.generate("dance2music", {"motion": load_motion_npz(motion)["joints"]}, seed=3, temperature=0.9, cfg_scale=2)
    assert sr == 22050 and len(audio) == 2 * 22050
    assert np.array_equal(audio.astype(np.float32), expected.audio[0])  # the CLI is the library call
    other = pipe.generate("dance2music", {"motion": load_motion_npz(motion)["joints"]}, seed=4, temperature=0.9, cfg_scale=2)
    assert not np.array_equal(other.audio, expected.audio)


def test_continue_keeps_the_prefix(lm_dir, data):
    pipe = LMPipeline.from_pretrained(lm_dir)
    audio, sr = sf.read(str(data / "clips" / "00000.wav"), dtype="float32")
    res = pipe.generate("continue", {"audio": audio}, prefix_seconds=1.0, seed=0, batch_size=2)
    assert res.audio.shape == (2, 2 * sr)
    assert np.array_equal(res.audio[:, :sr], np.stack([audio[:sr]] * 2))
    assert res.latents["audio"].shape[:2] == (2, pipe.modalities["audio"].spec.num_frames(2.0))
    unconditional = pipe.generate("music", seconds=1.0, batch_size=1)
    assert unconditional.audio.shape == (1, sr)


def test_lm_errors(lm_dir, data, tmp_path):
    motion = str(data / "clips" / "00000.npz")
    base = ["generate", "--pipeline", str(lm_dir), "--motion", motion, "--out", str(tmp_path / "o")]
    assert main([*base, "--steps", "3"]) == 2  # a DiT flag
    assert main([*base, "--task", "music2dance"]) == 2
    assert main([*base, "--model-kind", "dit"]) == 2
    assert main([*base, "--top-p", "1.5"]) == 2
    pipe = LMPipeline.from_pretrained(lm_dir)
    with pytest.raises(ValueError, match="needs given\\['motion'\\]"):
        pipe.generate("dance2music", {})
    with pytest.raises(ValueError, match="prefix_seconds"):
        pipe.generate("continue", {"audio": np.zeros(22050, np.float32)}, prefix_seconds=3.0)
