"""tools/train_toydance.py records how many clips each stage trained on, and the checkpoint says it."""

import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "train_toydance.py"


@pytest.fixture
def tool(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("train_toydance", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    return module


def write_data(root: Path, clips: int) -> None:
    record = {"files": {"audio": "a.wav"}, "seconds": 8.0, "caption": "", "bpm": 120.0, "style": "",
              "structure": [], "seed": 1}
    lines = [json.dumps({"id": f"{i:05d}", **record}) for i in range(clips)]
    (root / "data").mkdir(parents=True)
    (root / "data" / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def test_each_stage_counts_the_clips_it_read(tool, tmp_path):
    work = tmp_path / tool.WORK
    assert tool.clips_read("vae_audio") is None  # nothing made yet: no count rather than a wrong one
    write_data(work, 3)
    (work / "cache").mkdir()
    (work / "cache" / "manifest.json").write_text(json.dumps({"format": 1, "modalities": {}, "items": [{}] * 5}))
    assert tool.clips_read("data") == 3
    assert tool.clips_read("vae_motion") == 3
    assert tool.clips_read("cache") == 3
    assert tool.clips_read("dit") == 5  # the DiT reads the cache, which may hold other clips than the VAEs saw
    assert tool.clips_read("dit_tune") == 5
    assert tool.clips_read("dit_task") == 5
    assert tool.clips_read("assemble") is None


def test_the_checkpoint_line_says_which_part_saw_how_many_clips(tool):
    same = {s: {"seconds": 1.0, "clips": 240} for s in ("vae_audio", "vae_motion", "vae_video", "dit", "dit_tune")}
    assert tool.describe_data(same) == "ToyDance (`mmgen toydance make --seed 1`), 240 clips x 8 s"
    more = {**same, "dit": {"seconds": 1.0, "clips": 960}, "dit_tune": {"seconds": 1.0, "clips": 960}}
    assert "VAEs on 240 clips, DiT on 960 clips" in tool.describe_data(more)
    unknown = {"dit": {"seconds": 1.0}}  # a record from before stages counted their clips
    assert "VAEs on ? clips" in tool.describe_data(unknown)
