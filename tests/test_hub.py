"""Loading outside a checkout: the ToyDance checkpoint as package data, and hub ids from the local
Hugging Face cache (a fake cache layout, HF_HUB_OFFLINE=1: never the network)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmgen.pipeline import Pipeline, hub

REPO = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_toydance_is_package_data_first_then_the_checkouts_folder(monkeypatch, tmp_path):
    site = tmp_path / "site-packages" / "mmgen"
    monkeypatch.setattr(hub, "_PACKAGE", site)
    # no package data: the checkout layout <repo>/checkpoints/toydance (returned even if missing)
    assert hub.toydance_dir() == tmp_path / "site-packages" / "checkpoints" / "toydance"
    with pytest.raises(FileNotFoundError, match="toydance checkpoint is not there"):
        hub.locate("toydance")
    packaged = site / "checkpoints" / "toydance"
    packaged.mkdir(parents=True)
    (packaged / "pipeline.yaml").write_text("format: 1\n")
    assert hub.toydance_dir() == packaged and hub.locate("toydance") == packaged
    # a local folder always wins, even one named like a hub id
    local = tmp_path / "me" / "tiny"
    local.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert hub.locate("me/tiny") == Path("me/tiny")


@pytest.fixture(scope="module")
def tiny_pipe() -> Pipeline:
    from test_pipeline import make_pipeline

    return make_pipeline(video=False, defaults={"steps": 2, "sampler": "unipc2", "grid": "log_snr"})


def _fake_cache(root: Path, repo_id: str, pipe: Pipeline) -> Path:
    """The huggingface_hub cache layout: models--owner--name/{refs/main, snapshots/<commit>/...}."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    pipe.save_pretrained(repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return repo / "snapshots" / COMMIT


def test_hub_id_loads_from_the_offline_cache(monkeypatch, tmp_path, tiny_pipe):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # "me/tiny" is no local folder here
    snapshot = _fake_cache(tmp_path / "hf", "me/tiny", tiny_pipe)
    assert hub.locate("me/tiny", cache_dir=tmp_path / "hf") == snapshot
    loaded = Pipeline.from_pretrained("me/tiny", cache_dir=tmp_path / "hf")
    assert loaded.defaults == tiny_pipe.defaults
    a, b = loaded.dit.state_dict(), tiny_pipe.dit.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert Pipeline.from_pretrained("me/tiny", revision=COMMIT, cache_dir=tmp_path / "hf").defaults.grid == "log_snr"
    with pytest.raises(FileNotFoundError, match=r"me/other: not a local folder; offline \(HF_HUB_OFFLINE=1\)"):
        Pipeline.from_pretrained("me/other", cache_dir=tmp_path / "hf")
    # a path that is neither a folder nor a hub id keeps the loader's own error
    with pytest.raises(FileNotFoundError, match="pipeline.yaml: missing"):
        Pipeline.from_pretrained(tmp_path / "nowhere" / "a" / "b")


@pytest.mark.slow
def test_built_package_carries_the_checkpoint_and_finds_it_from_another_folder(tmp_path):
    """setup.py's build step copies checkpoints/toydance into the package; an install of that
    build (no checkout around it) resolves "toydance" to its own copy."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "mmgen", src / "mmgen", ignore=shutil.ignore_patterns("__pycache__", "checkpoints"))
    for name in ("toydance", "toydance_lm"):
        shutil.copytree(REPO / "checkpoints" / name, src / "checkpoints" / name)
    lib = tmp_path / "lib"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(lib)], cwd=src, check=True,
                   capture_output=True)
    packaged = lib / "mmgen" / "checkpoints" / "toydance"
    shipped = sorted(p.relative_to(REPO / "checkpoints" / "toydance") for p in (REPO / "checkpoints" / "toydance").rglob("*"))
    assert sorted(p.relative_to(packaged) for p in packaged.rglob("*")) == shipped
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "from mmgen.pipeline.hub import locate; from mmgen.pipeline.config import read_config; " \
           "d = locate('toydance'); read_config(d); print(d)"
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env={"PYTHONPATH": str(lib), "HF_HUB_OFFLINE": "1"},
                         check=True, capture_output=True, text=True)
    assert Path(out.stdout.strip()) == packaged
    code = "from mmgen.pipeline import Pipeline; print(type(Pipeline.from_pretrained('toydance_lm')).__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env={"PYTHONPATH": str(lib), "HF_HUB_OFFLINE": "1"},
                         check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "LMPipeline"  # its base ../toydance resolves inside the package too
