"""`LMPipeline`: the codebook LM baseline as a pipeline folder, beside the DiT's `Pipeline`.

    <dir>/pipeline.yaml
        format: 1
        kind: lm                      what `Pipeline.from_pretrained` / `mmgen generate` dispatch on
        base: ../toydance             the DiT pipeline folder whose VAEs make the LM's latents
        lm: lm                        CodebookLM folder        quantizer: rvq   ResidualVQ folder
        audio_fingerprint: <sha256>   the audio VAE the RVQ was fitted on (checked at load)
        defaults: {seconds, prefix_seconds, temperature, top_k, top_p, cfg_scale}
        info: {...}

    given motion / video ──base VAEs──► latents ──► condition memory ─┐
    given audio (continue) ──VAE──► latents ──RVQ──► prompt codes ────┼─► generate_codes ─► codes
                                                                       ▼
                         codes ──RVQ.decode──► audio latents ──audio VAE decoder──► waveform

Tasks: dance2music (motion), video2audio (video), continue (audio prefix, plus any motion /
video given), music (unconditional). `base` is the one path that may leave the folder: the LM
shares the DiT's VAEs instead of copying them, and the fingerprint check refuses a base whose
audio VAE is not the one the codes were made with.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import yaml

from mmgen.core.errors import MmgenError
from mmgen.lm.model import CodebookLM, CondInput, condition_frames
from mmgen.lm.quantizer import ResidualVQ
from mmgen.lm.sampling import SamplingConfig, generate_codes
from mmgen.modalities.media import MediaModality
from mmgen.modalities.raw_length import coverage_length, fit_length, pad_mode
from mmgen.pipeline.generation import Generation

CONFIG_NAME = "pipeline.yaml"
LM_TASKS = ("dance2music", "video2audio", "continue", "music")
_TASK_INPUT = {"dance2music": "motion", "video2audio": "video", "continue": "audio"}


def pipeline_kind(directory: str | os.PathLike) -> str:
    """"lm" for a codebook-LM pipeline folder, "dit" for every other (the DiT's) pipeline.yaml."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        return "dit"
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return "dit"  # the DiT loader reports the broken YAML
    return "lm" if isinstance(cfg, dict) and cfg.get("kind") == "lm" else "dit"


@dataclass(frozen=True)
class LMDefaults:
    """Generation defaults of an LM pipeline (every one overridable per call)."""

    seconds: float = 8.0
    prefix_seconds: float = 2.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    cfg_scale: float = 3.0

    def __post_init__(self) -> None:
        if not self.seconds > 0 or not self.prefix_seconds > 0:
            raise ValueError(f"defaults.seconds and prefix_seconds must be > 0, got {self.seconds}, {self.prefix_seconds}")
        self.sampling()  # checks temperature / top_k / top_p / cfg_scale

    def sampling(self, **override: Any) -> SamplingConfig:
        values = {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "cfg_scale": self.cfg_scale}
        values.update({k: v for k, v in override.items() if v is not None})
        return SamplingConfig(**values)


class LMPipeline:
    """Codebook LM + RVQ + the modality VAEs of a DiT pipeline."""

    def __init__(self, lm: CodebookLM, quantizer: ResidualVQ, modalities: Mapping[str, MediaModality],
                 defaults: LMDefaults | None = None, info: Mapping[str, Any] | None = None, audio: str = "audio") -> None:  # fmt: skip
        if audio not in modalities:
            raise ValueError(f"LMPipeline: no {audio!r} modality among {sorted(modalities)}")
        spec = modalities[audio].spec
        dim = math.prod(spec.latent_shape(1))
        if quantizer.dim != dim or not math.isclose(quantizer.rate_hz, spec.rate_hz):
            raise ValueError(f"LMPipeline: the quantizer is for {quantizer.dim}-channel frames at {quantizer.rate_hz} Hz, "
                             f"the {audio} VAE makes {dim} at {spec.rate_hz} Hz")  # fmt: skip
        if (lm.num_codebooks, lm.card) != (quantizer.num_codebooks, quantizer.codebook_size):
            raise ValueError("LMPipeline: the LM and the quantizer disagree on codebooks / codebook size")
        missing = [n for n in lm.condition_names if n not in modalities and n != audio]
        self.lm, self.quantizer, self.modalities = lm.eval(), quantizer.eval(), dict(modalities)
        self.defaults, self.info, self.audio = defaults or LMDefaults(), dict(info or {}), audio
        self.feature_conditions = tuple(missing)  # e.g. melody / text: passed as `conditions=`

    @property
    def device(self) -> torch.device:
        return self.lm.null_token.device

    # ------------------------------------------------------------------ folders
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: torch.device | str = "cpu") -> LMPipeline:
        from mmgen.pipeline.config import part_path, read_config
        from mmgen.pipeline.load import load_modalities, load_part

        directory = Path(directory)
        path = directory / CONFIG_NAME
        cfg = yaml.safe_load(path.read_text())
        known = {"format", "kind", "base", "lm", "quantizer", "audio_fingerprint", "defaults", "info"}
        if not isinstance(cfg, dict) or cfg.get("kind") != "lm" or set(cfg) - known:
            raise MmgenError(f"{path}: an LM pipeline.yaml has kind: lm and keys {sorted(known)}, got {cfg!r:.200}")
        for key in ("base", "lm", "quantizer"):
            if not isinstance(cfg.get(key), str):
                raise MmgenError(f"{path}: {key!r} must name a folder, got {cfg.get(key)!r}")
        base = (directory / cfg["base"]).resolve()
        modalities = load_modalities(base, read_config(base), device)
        lm_dir, rvq_dir = part_path(directory, cfg["lm"], "lm"), part_path(directory, cfg["quantizer"], "quantizer")
        lm = load_part("lm", lm_dir, lambda: CodebookLM.from_pretrained(lm_dir, device))
        rvq = load_part("quantizer", rvq_dir, lambda: ResidualVQ.from_pretrained(rvq_dir, device))
        want = cfg.get("audio_fingerprint")
        if want is not None and modalities["audio"].vae.fingerprint() != want:
            raise MmgenError(f"{path}: the audio VAE of base {cfg['base']} is not the one this LM's codes were made with")
        try:
            defaults = LMDefaults(**(cfg.get("defaults") or {}))
        except TypeError as err:
            raise MmgenError(f"{path}: defaults: {err} (known: {[f.name for f in fields(LMDefaults)]})") from None
        return cls(lm, rvq, modalities, defaults, cfg.get("info"))

    @staticmethod
    def write_config(directory: str | os.PathLike, base: str, audio_fingerprint: str, defaults: LMDefaults,
                     info: Mapping[str, Any] | None = None, lm: str = "lm", quantizer: str = "rvq") -> Path:  # fmt: skip
        """Write an LM pipeline.yaml next to `lm/` and `rvq/` folders written by `save_pretrained`."""
        from mmgen.core.fileio import atomic_path

        cfg = {"format": 1, "kind": "lm", "base": base, "lm": lm, "quantizer": quantizer,
               "audio_fingerprint": audio_fingerprint, "defaults": asdict(defaults), "info": dict(info or {})}  # fmt: skip
        path = Path(directory) / CONFIG_NAME
        with atomic_path(path) as tmp:
            tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    # ------------------------------------------------------------------ generation
    def _latents(self, name: str, raw: torch.Tensor, seconds: float) -> torch.Tensor:
        from mmgen.pipeline.media import check_raw

        mod = self.modalities[name]
        x = check_raw(mod, name, raw)
        frames = mod.spec.num_frames(seconds)
        x = fit_length(x, coverage_length(mod, frames), pad_mode(mod))
        return mod.encode(x.to(mod.device)).float()[:, :frames]  # [B, T_m, ...]

    @torch.no_grad()
    def generate(
        self,
        task: str = "dance2music",
        given: Mapping[str, Any] | None = None,
        *,
        seconds: float | None = None,
        prefix_seconds: float | None = None,
        conditions: CondInput | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        cfg_scale: float | None = None,
        seed: int = 0,
        batch_size: int | None = None,
    ) -> Generation:
        """Music for `task` from raw `given` media (the `Pipeline.generate` inputs); `conditions`
        adds precomputed features the LM takes (melody chroma, text) as {name: (values, mask)}."""
        if task not in LM_TASKS:
            raise ValueError(f"the codebook LM runs {', '.join(LM_TASKS)}; got task {task!r}")
        given = dict(given or {})
        need = _TASK_INPUT.get(task)
        if need is not None and need not in given:
            raise ValueError(f"task {task!r} needs given[{need!r}]")
        unknown = sorted(set(given) - set(self.modalities))
        if unknown:
            raise ValueError(f"given names modalities {unknown} this pipeline lacks (has {sorted(self.modalities)})")
        useless = sorted(m for m in given if m != self.audio and m not in self.lm.condition_names)
        if useless or (self.audio in given and task != "continue"):
            raise ValueError(f"task {task!r} with this LM does not use given {useless or [self.audio]} "
                             f"(its conditions: {list(self.lm.condition_names)})")  # fmt: skip
        if seconds is None:
            from mmgen.pipeline.media import check_raw

            lengths = [check_raw(self.modalities[m], m, v).shape[1] / self.modalities[m].raw_rate for m, v in given.items()]
            seconds = max(lengths, default=self.defaults.seconds)
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        sampling = self.defaults.sampling(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale)
        cond: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for m, raw in given.items():
            if m == self.audio:
                continue
            x = condition_frames(self._latents(m, raw, seconds))
            cond[m] = (x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))
        for name, (values, mask) in (conditions or {}).items():
            cond[name] = (values.to(self.device), mask.to(self.device))
        audio = self.modalities[self.audio]
        frames = audio.spec.num_frames(seconds)
        prompt = None
        if task == "continue":
            prefix = self.defaults.prefix_seconds if prefix_seconds is None else prefix_seconds
            if not 0 < prefix < seconds:
                raise ValueError(f"prefix_seconds must be in (0, seconds={seconds:g}), got {prefix}")
            z = self._latents(self.audio, given[self.audio], seconds)
            z = z.reshape(z.shape[0], z.shape[1], -1)[:, : audio.spec.num_frames(prefix)]
            prompt = self.quantizer.encode(z)  # [B, K, P]
        sizes = {v.shape[0] for v, _ in cond.values()} | ({prompt.shape[0]} if prompt is not None else set())
        batch = batch_size or max(sizes, default=1)
        if any(b not in (1, batch) for b in sizes):
            raise ValueError(f"given inputs have batch sizes {sorted(sizes)}; each must be 1 or {batch}")
        cond = {n: (v.expand(batch, *v.shape[1:]), m.expand(batch, -1)) for n, (v, m) in cond.items()}
        if prompt is not None:
            prompt = prompt.expand(batch, -1, -1)
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        codes = generate_codes(self.lm, frames, cond or None, sampling, prompt=prompt, batch_size=batch, generator=g)
        z = self.quantizer.decode(codes).view(batch, frames, *audio.spec.latent_shape(1)[1:])
        n = audio.raw_length(seconds)
        wave = audio.decode(z.to(audio.device), n, generator=torch.Generator(device=audio.device).manual_seed(int(seed) + 1))
        wave = fit_length(wave.cpu().float(), n, "zeros")
        if task == "continue":  # the given prefix is returned as given, like the DiT's GIVEN frames
            from mmgen.pipeline.media import check_raw

            raw = fit_length(check_raw(audio, self.audio, given[self.audio]), n, "zeros").expand(batch, -1)
            keep = round(prefix * audio.raw_rate)
            wave[:, :keep] = raw[:, :keep]
        res = Generation(task=task, seconds=float(seconds), seed=int(seed), given=tuple(sorted(given)))
        res.audio, res.sample_rate = wave.numpy(), int(audio.raw_rate)
        res.latents = {self.audio: z.cpu()}
        return res
