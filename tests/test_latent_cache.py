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


# ---------------------------------------------------------------- condition features in the cache
class RampStream:
    """An aligned conditioner stand-in: frame s of a clip of `audio` seconds holds the value s (15 Hz)."""

    target, rate_hz, group = "aligned", 15.0, "video"
    keys = ("audio",)

    def encode(self, batch, device=None):
        from mmgen.conditioning.base import Features

        n = round(float(batch["audio"][0]) * self.rate_hz)
        values = torch.arange(n, dtype=torch.float32).view(1, n, 1).expand(1, n, 3).clone()
        return Features(values, torch.ones(1, n, dtype=torch.bool))

    def feature_fingerprint(self):
        return "fp-ramp"


class CaptionLength:
    """A text conditioner stand-in: one token per word of the caption (no time axis); fingerprint from config."""

    target = "context"
    keys = ("caption",)

    def encode(self, batch, device=None):
        from mmgen.conditioning.base import Features

        n = len(batch["caption"][0].split())
        return Features(torch.full((1, n, 2), float(n)), torch.ones(1, n, dtype=torch.bool))

    def config_yaml(self):
        return {"class_path": "tests.CaptionLength", "init_args": {"dim": 8, "words": True}}


def make_feature_cache(tmp_path, seconds=(4.0, 8.0, 1.0)):
    encoders = {m: RampEncoder(s, f"fp-{m}") for m, s in SPECS.items()}
    captions = ["one", "a longer caption here", "two words"]
    items = [{"id": f"c{i}", "audio": s, "video": s, "caption": captions[i]} for i, s in enumerate(seconds)]
    return build_latent_cache(tmp_path / "cache", items, encoders, shard_size=2, progress=False,
                              conditioners={"sync": RampStream(), "text": CaptionLength()})


def test_features_round_trip_beside_the_latents(tmp_path):
    root = make_feature_cache(tmp_path)
    for in_memory in (True, False):
        cache = LatentCache(root, in_memory=in_memory)
        assert cache.features == ["sync", "text"]
        assert cache.feature_info["sync"]["rate_hz"] == 15.0 and cache.feature_info["sync"]["dim"] == 3
        assert cache.feature_info["text"]["rate_hz"] is None and cache.feature_info["text"]["group"] is None
        item = cache[1]
        values, mask = item["features"]["sync"]
        assert values.shape == (120, 3) and mask.all() and torch.equal(values[:, 0], torch.arange(120.0))
        assert torch.equal(item["features"]["text"][0], torch.full((4, 2), 4.0))
    assert "features" not in LatentCache(root, features=[])[0]


def test_windows_cut_aligned_features_with_the_latents(tmp_path):
    cache = LatentCache(make_feature_cache(tmp_path))
    windows = LatentWindows(cache, seconds=3.2, random=True)
    torch.manual_seed(0)
    for _ in range(20):
        w = windows[1]
        a, s = w["latents"]["audio"][:, 0], w["features"]["sync"][0][:, 0]
        assert s.shape == (48,) and float(s[0]) / 15 == pytest.approx(float(a[0]) / 7.5)
        assert torch.equal(s, s[0] + torch.arange(48.0))
        assert w["features"]["text"][0].shape == (4, 2)  # no time axis: whole
    batch = collate_latents([windows[0], windows[1]])
    text = batch["features"]["text"]
    assert text["values"].shape == (2, 4, 2) and text["mask"].tolist() == [[True, False, False, False], [True] * 4]
    assert batch["features"]["sync"]["values"].shape == (2, 48, 3)


def test_feature_fingerprints_and_bad_requests(tmp_path):
    from mmgen.data.cached_features import feature_fingerprint

    cache = LatentCache(make_feature_cache(tmp_path))
    text_fp = feature_fingerprint(CaptionLength())
    assert len(text_fp) == 64 and cache.feature_info["text"]["fingerprint"] == text_fp
    cache.check_feature_fingerprints({"sync": "fp-ramp", "text": text_fp})
    with pytest.raises(MmgenError, match="different encoder"):
        cache.check_feature_fingerprints({"sync": "other"})
    with pytest.raises(MmgenError, match="no 'melody' condition features"):
        cache.check_feature_fingerprints({"melody": "x"})
    with pytest.raises(MmgenError, match="not \\['melody'\\]"):
        LatentCache(cache.root, features=["melody"])


def test_a_latents_only_cache_of_format_1_still_reads(tmp_path):
    import json

    root = make_cache(tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["format"] = 1
    del manifest["features"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    cache = LatentCache(root)
    assert cache.features == [] and "features" not in cache[0]
    assert "features" not in collate_latents([LatentWindows(cache, 3.2, random=False)[0]])
