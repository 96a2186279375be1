"""The `evaluate` stage of tools/musicgen_toydance.py: RVQ usage and round trip, LM and DiT
dance -> music on held-out ToyDance clips, scored against the true and the shuffled dances."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("musicgen_eval")
TABLE = ("d2m_beat_f", "d2m_tempo_match", "d2m_bas", "music_beat_f", "music_tempo_match")


def _held_clips(work: Path, n: int) -> list[str]:
    ids = sorted(p.stem for p in (work / "data_held" / "clips").glob("*.npz"))
    return ids[:n]


def quantizer_report(work: Path, rvq_dir: Path) -> dict[str, Any]:
    from mmgen.data.latent_cache import LatentCache
    from mmgen.lm.quantizer import ResidualVQ

    rvq = ResidualVQ.from_pretrained(rvq_dir)
    cache = LatentCache(str(work / "cache_held"), ["audio"])
    x = torch.stack([cache.latents(i)["audio"] for i in range(len(cache))]).float()  # [N, T, 80]
    x = x.reshape(x.shape[0], x.shape[1], -1)
    usage = rvq.usage(x)
    return {"clips": int(x.shape[0]), "frames": int(x.shape[0] * x.shape[1]), "codebook_size": rvq.codebook_size,
            "perplexity": usage["perplexity"], "used": usage["used"], "relative_error": rvq.round_trip(x),
            "bits_per_second": rvq.rate_hz * rvq.num_codebooks * float(np.log2(rvq.codebook_size))}  # fmt: skip


def _motions(work: Path, ids: list[str], modality: Any) -> torch.Tensor:
    from mmgen.io.read import read_motion

    return torch.stack([torch.as_tensor(read_motion(work / "data_held" / "clips" / f"{i}.npz", modality)) for i in ids])


def _write(folder: Path, ids: list[str], audio: np.ndarray, sr: int) -> None:
    from mmgen.io.export import save_wav

    folder.mkdir(parents=True, exist_ok=True)
    for i, a in zip(ids, audio):
        save_wav(folder / f"{i}.wav", a, sr)


def generate(kind: str, pipe_dir: Path, work: Path, ids: list[str], batch: int, seed: int = 0) -> dict[str, Any]:
    """dance2music for every clip; returns timing. LM: the pipeline's defaults; DiT: its defaults.
    Batch i samples with seed `seed + i * batch` (another `seed` = another sampling draw)."""
    from mmgen.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(pipe_dir)
    out = work / f"gen_{kind}"
    if out.exists():
        shutil.rmtree(out)  # this script's own output folder
    seconds = 8.0
    wall = 0.0
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        motion = _motions(work, chunk, pipe.modalities["motion"])
        t0 = time.perf_counter()
        if kind == "lm":
            res = pipe.generate("dance2music", {"motion": motion}, seconds=seconds, seed=seed + start)
        else:
            res = pipe.generate("dance2music", {"motion": motion}, seconds=seconds, seed=seed + start, progress=False)
        wall += time.perf_counter() - t0
        _write(out, chunk, res.audio, res.sample_rate)
        log.info("%s: %d / %d clips, %.1f s", kind, start + len(chunk), len(ids), wall)
    audio_seconds = seconds * len(ids)
    info: dict[str, Any] = {"wall_seconds": round(wall, 1), "audio_per_compute": audio_seconds / wall}
    if kind == "lm":
        pattern = pipe.lm.pattern(round(seconds * pipe.lm.rate_hz))
        info["steps_per_audio_second"] = (pattern.steps - 1) / seconds
        info["tokens_per_audio_second"] = pipe.lm.num_codebooks * pipe.lm.rate_hz
        info["cfg_passes_per_step"] = 2
    else:
        d = pipe.defaults
        windows = 1 + int(np.ceil((seconds - d.window_seconds) / d.hop - 1e-9)) if seconds > d.window_seconds else 1
        info["steps_per_audio_second"] = d.steps * windows / seconds
        info["tokens_per_audio_second"] = sum(m.spec.rate_hz for m in pipe.modalities.values())
        info["note"] = f"{d.steps} {d.sampler} steps x {windows} windows of {d.window_seconds:g} s; every step runs the whole latent window"
    return info


def _shuffled_refs(work: Path, ids: list[str]) -> Path:
    """ref_shuffled/<id>.npz = the dance of the next clip (a derangement): music vs an unrelated dance."""
    out = work / "ref_shuffled"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    for a, b in zip(ids, ids[1:] + ids[:1]):
        shutil.copyfile(work / "data_held" / "clips" / f"{b}.npz", out / f"{a}.npz")
    return out


def score(work: Path, kind: str, ids: list[str]) -> dict[str, Any]:
    from mmgen.evaluation.folder import evaluate_folder

    gen = work / f"gen_{kind}"
    true = evaluate_folder(gen, work / "data_held" / "clips", out=work / f"metrics_{kind}.json", progress=False, overwrite=True)
    shuf = evaluate_folder(gen, _shuffled_refs(work, ids), out=work / f"metrics_{kind}_shuffled.json", progress=False, overwrite=True)
    row = {k: true["mean"].get(k) for k in TABLE}
    row.update({f"shuffled_{k}": shuf["mean"].get(k) for k in ("d2m_beat_f", "d2m_tempo_match", "d2m_bas")})
    return row


def evaluate(work: Path, lm_dir: Path, dit_dir: Path, n_clips: int, batch: int,
             kinds: tuple[str, ...] = ("lm", "dit"), seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Both models on the first `n_clips` held-out clips; a kind left out of `kinds` keeps its row
    from an earlier results.json on the same clips (the DiT's does not change when the LM is retrained)."""
    logging.basicConfig(level=logging.INFO)
    torch.manual_seed(0)
    ids = _held_clips(work, n_clips)
    result: dict[str, Any] = {"clips": len(ids), "quantizer": quantizer_report(work, lm_dir / "rvq")}
    earlier = json.loads((work / "results.json").read_text()) if (work / "results.json").is_file() else {}
    for kind, folder in (("lm", lm_dir), ("dit", dit_dir)):
        if kind in kinds:
            result[kind] = {**generate(kind, folder, work, ids, batch, seed), **score(work, kind, ids), "seed": seed}
        elif earlier.get("clips") == len(ids) and kind in earlier:
            result[kind] = earlier[kind]
        else:
            raise SystemExit(f"evaluate: no earlier {kind} row on {len(ids)} clips in {work / 'results.json'}; add {kind}")
    (work / "results.json").write_text(json.dumps(result, indent=1))
    (work / "results.md").write_text(markdown(result))
    print(markdown(result))
    return result


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def markdown(r: dict[str, Any]) -> str:
    q = r["quantizer"]
    lines = [f"Held-out ToyDance clips: {r['clips']} x 8 s", "",
             "| codebook | perplexity | codes used | rel. error with 1..k codebooks |", "|---|---|---|---|"]  # fmt: skip
    for k, (p, u, e) in enumerate(zip(q["perplexity"], q["used"], q["relative_error"])):
        lines.append(f"| {k} | {p:.1f} / {q['codebook_size']} | {100 * u:.1f}% | {e:.3f} |")
    lines += ["", ("| model | beat F (shuffled) | tempo match (shuffled) | BAS (shuffled) | beat F vs ref music | "
                   "audio s / compute s | steps / audio s | tokens / audio s |"), "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for kind, name in (("lm", "codebook LM (delay, K=4)"), ("dit", "DiT (shipped)")):
        m = r[kind]
        lines.append(
            f"| {name} | {_f(m['d2m_beat_f'])} ({_f(m['shuffled_d2m_beat_f'])}) | {_f(m['d2m_tempo_match'])} "
            f"({_f(m['shuffled_d2m_tempo_match'])}) | {_f(m['d2m_bas'])} ({_f(m['shuffled_d2m_bas'])}) | "
            f"{_f(m['music_beat_f'])} | {_f(m['audio_per_compute'], 2)} | {_f(m['steps_per_audio_second'], 1)} | "
            f"{_f(m['tokens_per_audio_second'], 1)} |"
        )
    return "\n".join(lines) + "\n"
