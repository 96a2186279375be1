"""Fixed-length windows cut from a latent cache at the same moment in every modality, and their collation."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch

from mmgen.core.errors import MmgenError
from mmgen.core.timeline import ModalitySpec
from mmgen.data.cached_features import collate_features

if TYPE_CHECKING:
    from mmgen.data.latent_cache import LatentCache

log = logging.getLogger(__name__)


def common_step_seconds(specs: Mapping[str, ModalitySpec], extra_rates: Sequence[float] = ()) -> Fraction:
    """Shortest time step on which every modality (and every rate in `extra_rates`, e.g. aligned
    condition features) has a frame boundary (1 / gcd of rates)."""
    rates = [Fraction(r).limit_denominator(10_000) for r in [*(s.rate_hz for s in specs.values()), *extra_rates]]
    num = math.gcd(*(r.numerator for r in rates))
    den = math.lcm(*(r.denominator for r in rates))
    return 1 / Fraction(num, den)


class LatentWindows(torch.utils.data.Dataset):
    """Fixed-length windows of cached clips, cut at the same moment in every modality.

        audio  7.5 Hz  |a a a a a a a a a a a a a a a|   window of 2 s starting at 0.8 s
        video 3.75 Hz  |v   v   v   v   v   v   v   v|   starts lie on multiples of 1/3.75 s
        sync   15 Hz   |sssssssssssssssssssssssssssss|   aligned condition features: cut alike

    Training (`random=True`) draws the start uniformly from the common frame grid of the
    modalities and aligned features; otherwise the first window is taken. Clips shorter than
    the window are skipped (with a log line), never padded. Features with no time axis (text)
    come whole with every window.
    """

    def __init__(self, cache: LatentCache, seconds: float, random: bool = True) -> None:
        self.cache, self.seconds, self.random = cache, float(seconds), random
        self.rates = {m: float(spec.rate_hz) for m, spec in cache.specs.items()}
        self.feature_rates = {
            n: float(cache.feature_info[n]["rate_hz"]) for n in cache.features if cache.feature_info[n]["rate_hz"]
        }
        self.step = common_step_seconds(cache.specs, list(self.feature_rates.values()))
        self.frames, self.feature_frames = {}, {}
        for kind, rates, out in (("latent", self.rates, self.frames), ("feature", self.feature_rates, self.feature_frames)):
            for m, rate in rates.items():
                n = seconds * rate
                if abs(n - round(n)) > 1e-6 or round(n) < 1:
                    raise ValueError(f"window of {seconds} s is not a whole number of {m!r} {kind} frames at {rate} Hz")
                out[m] = round(n)
        self.indices = [i for i, it in enumerate(cache.items) if self._long_enough(it)]
        if len(self.indices) < len(cache.items):
            log.info("latent windows: %d of %d clips shorter than %.2f s skipped",
                     len(cache.items) - len(self.indices), len(cache.items), seconds)
        if not self.indices:
            raise MmgenError(f"{cache.root}: no clip is at least {seconds} s long")

    def _long_enough(self, item: Mapping[str, Any]) -> bool:
        return all(item["frames"][m] >= self.frames[m] for m in self.cache.modalities) and all(
            item["feature_frames"][n] >= self.feature_frames[n] for n in self.feature_frames
        )

    def __len__(self) -> int:
        return len(self.indices)

    def _num_starts(self, item: Mapping[str, Any]) -> int:
        starts = None
        lengths = [(item["frames"][m], self.frames[m], r) for m, r in self.rates.items()]
        lengths += [(item["feature_frames"][n], self.feature_frames[n], r) for n, r in self.feature_rates.items()]
        for total, window, rate in lengths:
            frames_per_step = float(self.step * Fraction(rate).limit_denominator(10_000))
            n = (total - window) // round(frames_per_step) + 1
            starts = n if starts is None else min(starts, n)
        return int(starts or 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self.indices[index]
        features = self.cache.item_features(i) if self.cache.features else {}
        return self.cut(i, self.cache.latents(i), features)

    def cut(
        self,
        i: int,
        latents: Mapping[str, torch.Tensor],
        features: dict[str, tuple[torch.Tensor, torch.Tensor]],
    ) -> dict[str, Any]:
        """The window of clip `i` (a position in the cache's items) from its whole latents / features."""
        item = self.cache.items[i]
        # torch's global RNG: DataLoader seeds it per worker, Lightning's seed_everything seeds it
        k = int(torch.randint(self._num_starts(item), ())) if self.random else 0
        start = float(k * self.step)
        out = {}
        for m, rate in self.rates.items():
            first = round(start * rate)
            out[m] = latents[m][first : first + self.frames[m]]
        meta = dict(item["meta"])
        meta["window_start"] = start
        # Stable Audio's timing: where the window sits in its source recording, and how long that is
        whole = max(item["frames"][m] / r for m, r in self.rates.items())
        meta["seconds_start"] = float(meta.get("start") or 0.0) + start
        meta["seconds_total"] = float(meta.get("source_seconds") or meta.get("seconds") or whole)
        window = {"id": item["id"], "latents": out, **meta}
        if self.cache.features:
            features = dict(features)
            for n, rate in self.feature_rates.items():
                first, count = round(start * rate), self.feature_frames[n]
                values, mask = features[n]
                features[n] = (values[first : first + count], mask[first : first + count])
            window["features"] = features
        return window


def collate_latents(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack latents per modality and condition features per name ({"values", "mask"}, padded);
    keep other fields as lists (captions, beat times of any length)."""
    out: dict[str, Any] = {"latents": {m: torch.stack([b["latents"][m] for b in batch]) for m in batch[0]["latents"]}}
    if "features" in batch[0]:
        out["features"] = collate_features([b["features"] for b in batch])
    for key in batch[0]:
        if key not in ("latents", "features"):
            out[key] = [b.get(key) for b in batch]
    return out
