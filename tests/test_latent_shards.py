"""Tar-shard caches (`mmgen cache --format shards`): the same clips as the folder cache, streamed per reader."""

from __future__ import annotations

import tarfile

import pytest
import torch
from test_latent_cache import SPECS, CaptionLength, RampEncoder, RampStream

import mmgen.data.latent_shards as shards_module
from mmgen.core.errors import MmgenError
from mmgen.data.latent_cache import LatentCache, LatentWindows, build_latent_cache
from mmgen.data.latent_shards import StreamingLatentWindows

SECONDS = (4.0, 8.0, 1.0, 5.0, 6.0, 4.0, 3.0)


def build(tmp_path, name, layout, workers=1, shard_size=2):
    encoders = {m: RampEncoder(s, f"fp-{m}") for m, s in SPECS.items()}
    captions = ["one", "a longer caption here", "two words", "x", "y z", "w", "v u t"]
    items = [
        {"id": f"c{i}@{s:g}", "audio": s, "video": s, "caption": captions[i], "bpm": 90 + i}
        for i, s in enumerate(SECONDS)
    ]
    return build_latent_cache(
        tmp_path / name, items, encoders, shard_size=shard_size, progress=False, layout=layout, workers=workers,
        conditioners={"sync": RampStream(), "text": CaptionLength()},
    )


def same_item(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if key == "latents":
            assert value.keys() == b[key].keys()
            for m, z in value.items():
                assert z.dtype == b[key][m].dtype and torch.equal(z, b[key][m]), m
        elif key == "features":
            for n, pair in value.items():
                for x, y in zip(pair, b[key][n]):
                    assert x.dtype == y.dtype and torch.equal(x, y), n
        else:
            assert value == b[key], key


def test_shard_round_trip_equals_the_folder_cache_item_by_item(tmp_path):
    folder = LatentCache(build(tmp_path, "folder", "safetensors"))
    root = build(tmp_path, "tar", "tar")
    assert sorted(p.name for p in root.iterdir()) == [".mmgen-output.json", "manifest.json", *(f"shard-{k:05d}.tar" for k in range(4))]
    with tarfile.open(root / "shard-00001.tar") as tar:  # WebDataset keys: one member per clip, no dots in keys
        assert tar.getnames() == ["000000002.safetensors", "000000003.safetensors"]
    for in_memory in (True, False):
        sharded = LatentCache(root, in_memory=in_memory)
        assert sharded.layout == "tar" and sharded.items == folder.items and len(sharded) == len(SECONDS)
        for i in range(len(folder)):
            same_item(folder[i], sharded[i])


def test_tar_shards_are_byte_identical_across_runs_and_worker_counts(tmp_path):
    a, b = build(tmp_path, "a", "tar"), build(tmp_path, "b", "tar", workers=2)
    for p in sorted(a.iterdir()):
        assert p.read_bytes() == (b / p.name).read_bytes(), p.name


def test_streaming_yields_the_windows_of_the_map_style_reader(tmp_path, monkeypatch):
    cache = LatentCache(build(tmp_path, "tar", "tar"), in_memory=False)
    windows = LatentWindows(cache, seconds=3.2, random=False)
    assert windows.indices == [0, 1, 3, 4, 5]  # the 1 s and 3 s clips are too short
    wanted = [0, 1, 2, 3, 5, 6]
    stream = StreamingLatentWindows(windows, wanted, shuffle=False)
    got = {w["id"]: w for w in stream}
    assert sorted(got) == sorted(cache.items[i]["id"] for i in wanted if i in windows.indices)
    for i in windows.indices:
        if i in wanted:
            same_item(got[cache.items[i]["id"]], windows.cut(i, cache.latents(i), cache.item_features(i)))


@pytest.mark.parametrize("readers", [2, 3, 5])
def test_readers_get_disjoint_equal_shares_in_a_new_order_per_epoch(tmp_path, monkeypatch, readers):
    cache = LatentCache(build(tmp_path, "tar", "tar"), in_memory=False)
    windows = LatentWindows(cache, seconds=3.2, random=True)
    epochs = []
    for _ in range(2):
        seen = []
        for slot in range(readers):
            monkeypatch.setattr(shards_module, "_reader_slot", lambda slot=slot: (slot, readers))
            stream = StreamingLatentWindows(windows, list(range(len(cache))), shuffle=True, seed=3)
            stream.epoch = len(epochs)
            ids = [w["id"] for w in stream]
            assert len(ids) == stream.per_reader(readers) > 0  # equal counts: DDP ranks stay in step
            seen.append(ids)
        flat = [i for ids in seen for i in ids]
        assert len(flat) == len(set(flat))  # no clip twice in one epoch
        epochs.append(seen)
    if readers == 2:
        assert epochs[0] != epochs[1]  # a new order (and cut of the largest shares) every epoch


def test_streaming_refuses_a_folder_cache(tmp_path):
    cache = LatentCache(build(tmp_path, "folder", "safetensors"), in_memory=False)
    with pytest.raises(ValueError, match="streaming needs a tar-shard cache"):
        StreamingLatentWindows(LatentWindows(cache, seconds=3.2), [0, 1])


def test_a_missing_or_bad_layout_is_named(tmp_path):
    with pytest.raises(ValueError, match="cache layout must be one of"):
        build(tmp_path, "bad", "zip")
    root = build(tmp_path, "tar", "tar")
    (root / "shard-00002.tar").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00002.tar: shard listed in the manifest is missing"):
        LatentCache(root)
    assert isinstance(MmgenError("x"), Exception)
