from fractions import Fraction

import pytest
import torch

from mmgen.core.errors import MmgenError
from mmgen.core.timeline import ModalitySpec
from mmgen.data.latent_cache import (
    LatentCache,
    LatentWindows,
    build_latent_cache,
    collate_latents,
    common_step_seconds,
)


class RampEncoder:
    """Latent frame i of a clip of length L carries the value i (so crops can be checked by value)."""

    def __init__(self, spec: ModalitySpec, tag: str) -> None:
        self.spec, self.tag = spec, tag

    def encode_item(self, raw: float) -> torch.Tensor:
        frames = round(raw * self.spec.rate_hz)
        ramp = torch.arange(frames, dtype=torch.float32)
        return ramp.view(-1, *([1] * (self.spec.latent_rank - 2))).expand(frames, *self.spec.latent_shape(1)[1:]).clone()

    def fingerprint(self) -> str:
        return self.tag


SPECS = {"audio": ModalitySpec(4, 7.5), "video": ModalitySpec(2, 3.75, (2, 2))}


def make_cache(tmp_path, seconds=(4.0, 8.0, 1.0), shard_size=2):
    encoders = {m: RampEncoder(s, f"fp-{m}") for m, s in SPECS.items()}
    items = [{"id": f"c{i}", "audio": s, "video": s, "caption": f"clip {i}", "bpm": 100 + i} for i, s in enumerate(seconds)]
    return build_latent_cache(tmp_path / "cache", items, encoders, shard_size=shard_size, progress=False)


def test_cache_round_trip_and_sharding(tmp_path):
    root = make_cache(tmp_path)
    assert sorted(p.name for p in root.glob("shard-*")) == ["shard-00000.safetensors", "shard-00001.safetensors"]
    for in_memory in (True, False):
        cache = LatentCache(root, in_memory=in_memory)
        assert len(cache) == 3 and cache.specs == SPECS
        item = cache[1]
        assert item["caption"] == "clip 1" and item["bpm"] == 101
        assert item["latents"]["audio"].shape == (60, 4) and item["latents"]["video"].shape == (30, 2, 2, 2)
        assert torch.equal(item["latents"]["audio"][:, 0], torch.arange(60.0))


def test_cache_refuses_other_vaes(tmp_path):
    cache = LatentCache(make_cache(tmp_path))
    cache.check_fingerprints({"audio": "fp-audio", "video": "fp-video"})
    with pytest.raises(MmgenError, match="different VAE"):
        cache.check_fingerprints({"audio": "something-else"})
    with pytest.raises(MmgenError, match="no 'motion' latents"):
        cache.check_fingerprints({"motion": "x"})


def test_windows_cut_the_same_moment_in_every_modality(tmp_path):
    cache = LatentCache(make_cache(tmp_path))
    assert common_step_seconds(cache.specs) == Fraction(4, 15)  # 1 / 3.75 Hz
    windows = LatentWindows(cache, seconds=3.2, random=True)
    assert len(windows) == 2  # the 1-s clip is skipped
    torch.manual_seed(0)
    starts = set()
    for _ in range(40):
        w = windows[1]
        a, v = w["latents"]["audio"][:, 0], w["latents"]["video"][:, 0, 0, 0]
        assert a.shape == (24,) and v.shape == (12,)
        # audio frame index / 7.5 Hz == video frame index / 3.75 Hz at the window start
        assert float(a[0]) / 7.5 == pytest.approx(float(v[0]) / 3.75)
        assert w["window_start"] == pytest.approx(float(a[0]) / 7.5)
        starts.add(float(a[0]))
    assert len(starts) > 5 and max(starts) <= 60 - 24
    fixed = LatentWindows(cache, seconds=3.2, random=False)
    assert float(fixed[0]["latents"]["audio"][0, 0]) == 0.0
    batch = collate_latents([windows[0], windows[1]])
    assert batch["latents"]["video"].shape == (2, 12, 2, 2, 2) and batch["caption"] == ["clip 0", "clip 1"]


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="whole number"):
        LatentWindows(LatentCache(make_cache(tmp_path)), seconds=0.3)
    with pytest.raises(FileNotFoundError, match="not a latent cache"):
        LatentCache(tmp_path / "nowhere")
    bad = {"audio": RampEncoder(ModalitySpec(5, 7.5), "x")}
    bad["audio"].encode_item = lambda raw: torch.zeros(7, 3)  # claims 5 channels, returns 3
    with pytest.raises(ValueError, match="expected rank 2 with 5 channels"):
        build_latent_cache(tmp_path / "bad", [{"id": "a", "audio": 1.0}], bad, progress=False)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="duplicated"):
        build_latent_cache(tmp_path / "dup", [{"id": "a", "audio": 1.0}] * 2,
                           {"audio": RampEncoder(ModalitySpec(1, 7.5), "x")}, progress=False)
