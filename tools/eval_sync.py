"""Measure a trained video sync encoder on held-out ToyDance clips (docs/sync_stream.md).

    python tools/eval_sync.py --encoder runs/sync/final --audio runs/sync/audio \
        --train-data data/toydance_train --clips 48 --out runs/sync/eval.json

1. Sync retrieval: for windows of W frames (stride 5) at least R + K frames inside each 8-s
   held-out clip, does the true offset win among the 2K+1 shifted audio windows of the same clip
   (scores as in training: mean per-frame cosine)? Reported for K = 4 and 12, exact and within
   one frame.
2. Beats from the features: a ridge probe (fitted on the training folder's clips, whose motion npz
   carry the beat times) maps per-frame features (with +-c frames of context stacked) to a beat
   activation (a 50 ms gaussian bump per beat); its peaks (parabolic sub-frame refinement) are
   scored with beat F (mir_eval, +-70 ms) against the clip's true beats. Probes on the fixed
   frame-difference front end alone are the baseline, and so are the minima of the smoothed
   whole-frame motion energy (`video_beat_alignment`'s movement pauses) with no learning at all.
3. What survives at the DiT's token rate: the same probes on features area-averaged to the audio
   latent rate (7.5 Hz, pairs of frames, as the DiT resamples the aligned stream), each token
   predicting the activation of the 15 Hz frames under it; and (--video-vae) on the video VAE's
   3.75 Hz latents, the only view of the video the DiT has without the stream.

Held-out clips: generate_clip(first_seed + i, seconds=8, tempo_position=i / (n - 1)) for the
first seeds 20000 and 30000 (the validation sets; not the demo's 10000).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema, find_peaks

from mmgen.conditioning.video_sync import VideoSyncEncoder
from mmgen.data.toydance import generate_clip
from mmgen.metrics import beat_f_measure
from mmgen.train.sync_audio import AudioSyncEncoder
from mmgen.train.sync_module import sync_scores

log = logging.getLogger("eval_sync")
BUMP_SECONDS = 0.05
RIDGE = 1e-2


def pooled(x: np.ndarray, factor: int) -> np.ndarray:
    """[T, F] -> [T // factor, F]: the mean of each run of `factor` frames (area average)."""
    t = len(x) // factor * factor
    return x[:t].reshape(t // factor, factor, -1).mean(axis=1)


def held_out(first_seed: int, n: int) -> list:
    return [generate_clip(first_seed + i, seconds=8.0, tempo_position=i / (n - 1)) for i in range(n)]


def train_clips(root: Path, limit: int | None) -> list[dict]:
    from mmgen.data.manifest import read_manifest_records
    from mmgen.io.export import load_motion_npz
    from mmgen.modalities.video_codec import read_video

    out = []
    for rec in read_manifest_records(root, ("video", "motion"))[:limit]:
        frames, fps = read_video(root / rec["files"]["video"])
        beats = np.asarray(load_motion_npz(root / rec["files"]["motion"])["beat_times"], np.float64)
        out.append({"video": frames, "fps": float(rec.get("video_fps") or fps), "beats": beats})
    return out


@torch.no_grad()
def features(enc: VideoSyncEncoder, video: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sync features [T, F], front-end features [T, C], whole-frame energy [T-1]) of one clip."""
    gray = enc.conform(video, fps)[None]  # [1, T, S, S]
    sync = enc(gray)[0].numpy()
    front = enc.front(gray)[0].numpy()
    energy = (gray[0, 1:] - gray[0, :-1]).abs().mean(dim=(1, 2)).numpy()
    return sync, front, energy


def with_context(x: np.ndarray, c: int) -> np.ndarray:
    """[T, F] -> [T, (2c + 1) F]: frames t-c..t+c side by side (edges repeated)."""
    padded = np.pad(x, ((c, c), (0, 0)), mode="edge")
    return np.concatenate([padded[k : k + len(x)] for k in range(2 * c + 1)], axis=1)


def activation(beats: np.ndarray, num_frames: int, rate: float) -> np.ndarray:
    t = np.arange(num_frames) / rate
    return np.exp(-((t[:, None] - beats[None, :]) ** 2) / (2 * BUMP_SECONDS**2)).sum(axis=1) if len(beats) else np.zeros(num_frames)


def fit_probe(xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
    x = np.concatenate(xs)
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    y = np.concatenate(ys)
    return np.linalg.solve(x.T @ x + RIDGE * len(x) * np.eye(x.shape[1]), x.T @ y)


def apply_probe(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1))], axis=1) @ w


def refine(curve: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Sub-frame positions of extrema `idx` of `curve` by a parabola through 3 points."""
    idx = idx[(idx > 0) & (idx < len(curve) - 1)]
    a, b, c = curve[idx - 1], curve[idx], curve[idx + 1]
    den = a - 2 * b + c
    off = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(np.abs(den) > 1e-12, den, 1), 0.0)
    return idx + np.clip(off, -0.5, 0.5)


def peak_beats(curve: np.ndarray, rate: float) -> np.ndarray:
    idx, _ = find_peaks(curve, height=0.5 * float(np.max(curve)) if len(curve) else 0, distance=max(1, round(0.25 * rate)))
    return refine(curve, idx) / rate


def energy_beats(energy: np.ndarray, rate: float) -> np.ndarray:
    smooth = gaussian_filter1d(energy.astype(np.float64), rate / 6)
    idx = argrelextrema(smooth, np.less)[0]
    return (refine(smooth, idx) + 0.5) / rate  # e_t lies between frames t and t+1


def retrieval(v: np.ndarray, a: np.ndarray, width: int, k: int, margin: int) -> tuple[list[bool], list[bool]]:
    exact, near = [], []
    vt, at = torch.from_numpy(v), torch.from_numpy(a)
    for s in range(margin + k, len(v) - margin - k - width + 1, 5):
        cands = at[s - k : s + k + width].unfold(0, width, 1).permute(0, 2, 1)[None]  # [1, 2K+1, W, F]
        best = int(sync_scores(vt[None, s : s + width], cands).argmax())
        exact.append(best == k)
        near.append(abs(best - k) <= 1)
    return exact, near


def raw_envelopes(energy: np.ndarray, wave: np.ndarray, mel) -> tuple[np.ndarray, np.ndarray]:
    """(motion [T]: mean of the frame differences around frame t; flux [T]: spectral flux of the
    mel front end, averaged over the 3 mel frames centred on frame t) for the no-learning baseline."""
    e = np.concatenate([energy[:1], energy, energy[-1:]])
    motion = (e[:-1] + e[1:]) / 2  # [T]
    from mmgen.train.sync_audio import spectral_input

    with torch.no_grad():
        flux = spectral_input(mel(torch.from_numpy(wave)[None]))[0, -1].numpy()  # [M] at 3 x rate
    flux = np.pad(flux, (1, 2), mode="edge")
    t = len(motion)
    flux = np.stack([flux[3 * np.arange(t) + j] for j in range(3)]).mean(axis=0)  # centred on 3k
    return motion, flux


def raw_retrieval(motion: np.ndarray, flux: np.ndarray, width: int, k: int, margin: int, sign: float) -> list[bool]:
    """The baseline: the shift whose audio flux window correlates best with sign x motion wins."""
    hits = []
    for s in range(margin + k, len(motion) - margin - k - width + 1, 5):
        m = motion[s : s + width]
        scores = [sign * np.corrcoef(m, flux[s + d : s + d + width])[0, 1] for d in range(-k, k + 1)]
        hits.append(int(np.nanargmax(scores)) == k)
    return hits


def video_latents(vae_dir: str | None):
    if vae_dir is None:
        return None
    from mmgen.modalities.media import VideoModality

    modality = VideoModality.from_pretrained(vae_dir) if (Path(vae_dir) / "vae").is_dir() else None
    if modality is None:
        from mmgen.modalities.video import VideoVAE

        modality = VideoModality(VideoVAE.from_pretrained(vae_dir))

    def encode(video: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            z = modality.encode(torch.from_numpy(np.ascontiguousarray(video))[None])[0]  # [T', h, w, C]
        return z.reshape(z.shape[0], -1).numpy()

    return encode, round(modality.raw_rate / modality.spec.rate_hz)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--audio", help="saved AudioSyncEncoder (retrieval needs it)")
    ap.add_argument("--train-data", required=True, type=Path)
    ap.add_argument("--clips", type=int, default=48, help="held-out clips per validation set")
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--video-vae", help="video VAE (or modality) folder: probe its latents too")
    ap.add_argument("--no-probes", action="store_true", help="retrieval only (skip the beat probes)")
    ap.add_argument("--token-factor", type=int, default=2, help="stream frames per audio latent (15 / 7.5)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    enc = VideoSyncEncoder.from_pretrained(args.encoder)
    rate = enc.rate_hz
    audio = AudioSyncEncoder.from_pretrained(args.audio) if args.audio else None

    log.info("probe training clips ...")
    train = [] if args.no_probes else train_clips(args.train_data, args.train_limit)
    f2 = args.token_factor
    vae = video_latents(args.video_vae)
    # name: (source, context, frames per probe row)
    kinds = {"sync c=0": ("sync", 0, 1), "sync c=2": ("sync", 2, 1), "front c=0": ("front", 0, 1),
             "front c=2": ("front", 2, 1), f"front c={enc.receptive_radius}": ("front", enc.receptive_radius, 1),
             f"sync @{rate / f2:g}Hz c=0": ("sync", 0, f2), f"sync @{rate / f2:g}Hz c=1": ("sync", 1, f2),
             f"front @{rate / f2:g}Hz c=0": ("front", 0, f2), f"front @{rate / f2:g}Hz c=1": ("front", 1, f2)}
    if enc.stream_front_end:
        kinds.update({"stream c=0": ("stream", 0, 1), f"stream @{rate / f2:g}Hz c=0": ("stream", 0, f2)})
    if vae is not None:
        kinds.update({f"video latent @{rate / vae[1]:g}Hz c=0": ("latent", 0, vae[1]),
                      f"video latent @{rate / vae[1]:g}Hz c=1": ("latent", 1, vae[1])})

    def rows(feats: dict, src: str, c: int, factor: int) -> np.ndarray:
        x = feats[src] if src == "latent" else pooled(feats[src], factor) if factor > 1 else feats[src]
        return with_context(x, c)

    def clip_feats(video: np.ndarray, fps: float) -> dict:
        sync, front, energy = features(enc, video, fps)
        out = {"sync": sync, "front": front, "energy": energy}
        if enc.stream_front_end:
            out["stream"] = np.concatenate([sync, (front - enc.front_mean.numpy()) / enc.front_std.numpy()], axis=1)
        if vae is not None:
            out["latent"] = vae[0](video)
        return out

    xs: dict[str, list] = {k: [] for k in kinds}
    ys: dict[str, list] = {k: [] for k in kinds}
    for clip in train:
        feats = clip_feats(clip["video"], clip["fps"])
        act = activation(clip["beats"], len(feats["sync"]), rate)
        for name, (src, c, factor) in kinds.items():
            x = rows(feats, src, c, factor)
            xs[name].append(x)
            y = act[: len(x) * factor]
            ys[name].append(np.pad(y, (0, len(x) * factor - len(y))).reshape(len(x), factor))
    probes = {} if args.no_probes else {name: fit_probe(xs[name], ys[name]) for name in kinds}

    results: dict = {}
    for first in (20000, 30000):
        log.info("held-out set %d ...", first)
        scores: dict[str, list[float]] = {name: [] for name in [*kinds, "energy minima"]}
        ret: dict[str, list[bool]] = {}
        for clip in held_out(first, args.clips):
            feats = clip_feats(clip.video, clip.video_fps)
            sync = feats["sync"]
            for name, (src, c, factor) in (kinds.items() if probes else []):
                curve = apply_probe(probes[name], rows(feats, src, c, factor)).reshape(-1)  # 15 Hz
                scores[name].append(beat_f_measure(clip.beat_times, peak_beats(curve, rate)))
            scores["energy minima"].append(beat_f_measure(clip.beat_times, energy_beats(feats["energy"], rate)))
            if audio is not None:
                with torch.no_grad():
                    a = audio(torch.from_numpy(clip.audio)[None])[0, : len(sync)].numpy()
                margin = max(enc.receptive_radius, audio.receptive_radius)
                motion, flux = raw_envelopes(feats["energy"], clip.audio, audio.front)
                for k in (4, 12):
                    exact, near = retrieval(sync, a, round(2 * rate), k, margin)
                    ret.setdefault(f"K={k} exact", []).extend(exact)
                    ret.setdefault(f"K={k} within 1 frame", []).extend(near)
                    for sign, name in ((-1.0, "-corr"), (1.0, "+corr")):
                        ret.setdefault(f"K={k} raw motion {name} flux", []).extend(
                            raw_retrieval(motion, flux, round(2 * rate), k, margin, sign))
        results[first] = {
            "beat_f": {n: float(np.mean(v)) for n, v in scores.items() if v},
            "retrieval": {n: float(np.mean(v)) for n, v in ret.items()},
            "windows": len(ret.get("K=12 exact", [])),
        }
        log.info(json.dumps(results[first], indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
