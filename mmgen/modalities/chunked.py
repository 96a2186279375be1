r"""Encode and decode clips of any length in overlapping chunks, so memory does not grow with length.

A clip of T latent frames is cut into chunks of `chunk` latent frames; each chunk is run with
`margin` latent frames of context on both sides (clipped at the clip's ends) and only its core is
kept. Where the margin covers the network's receptive field the result equals the whole-clip run
(up to float rounding); tests/test_chunked.py states the measured tolerance at the seams.

    latents      |0 ........ 63|64 ....... 127|128 ..... 150|       chunk = 64, margin = 8
    chunk 1 runs      |56 .................. 135|               keeps 64 .. 127
    decoded      |===== 0 =====|====== 1 ======|==== 2 =====|    hard cut (deterministic VAEs)
    Griffin-Lim  |===== 0 ====\/===== 1 =====\/==== 2 ======|    linear cross-fade over the seam

Per kind (`encode_long` / `decode_long`, used by `mmgen.pipeline`):

    video   uint8 frames -> VideoVAE (causal in time: the left margin is what matters), chunked
            both ways; frames go to float only a chunk at a time
    audio   waveform -> log-mel -> MelVAE chunked; decoding: MelVAE chunked to the log-mel (small),
            then the vocoder / Griffin-Lim chunked; both cross-fade across seams: the MelVAE's
            GroupNorm takes statistics over its whole input (so no margin makes a chunk equal the
            whole clip; chunks of 64 latent frames, 8.5 s, are close to the 4-s training clips),
            and Griffin-Lim draws its own phases per chunk (a hard cut would click)
    audio_wave  waveform -> WaveVAE chunked both ways, hard cuts (convolutional and deterministic),
            with a margin of at least WAVE_MARGIN latent frames: the residual units' dilations
            (1, 3, 9, kernel 7) at the deepest stages reach ~12 latent frames to each side
    motion  joints -> kinematic features (whole clip, cheap) -> MotionVAE chunked; decoding: VAE
            chunked to features, then one integration over the whole clip (root trajectory)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mmgen.modalities.media import (
    AudioModality,
    MediaModality,
    MotionModality,
    VideoModality,
    WaveAudioModality,
)
from mmgen.modalities.video_codec import features_to_frames, frames_to_features

CHUNK = 64  # latent frames per chunk
MARGIN = 8  # latent frames of context on each side
WAVE_MARGIN = 16  # the WaveVAE's reach, latent frames (see the module docstring)


def _bounds(n: int, chunk: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(core start, core end, run start, run end) of every chunk of n frames."""
    if chunk < 1 or margin < 0:
        raise ValueError(f"chunk must be >= 1 and margin >= 0, got {chunk}, {margin}")
    return [(a, min(n, a + chunk), max(0, a - margin), min(n, a + chunk + margin)) for a in range(0, n, chunk)]


def run_chunked(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    in_per_frame: int,
    out_per_frame: int,
    *,
    chunk: int = CHUNK,
    margin: int = MARGIN,
    fade: int = 0,
    in_dim: int = 1,
    out_dim: int = 1,
) -> torch.Tensor:
    """Apply `fn` over frames of `x` (along `in_dim`, `in_per_frame` samples per frame) in chunks.

    `fn` maps k frames of input to k * out_per_frame outputs along `out_dim` (the last chunk may
    be shorter: its outputs are kept as they come). `fade` (outputs, <= margin * out_per_frame)
    cross-fades linearly across each seam instead of cutting.
    """
    n_in = x.shape[in_dim]
    n = -(-n_in // in_per_frame)
    if fade > margin * out_per_frame:
        raise ValueError(f"fade {fade} is longer than the margin ({margin} x {out_per_frame})")
    out: torch.Tensor | None = None  # filled in place: one output-sized buffer plus one chunk
    end = prev = 0  # outputs written so far; how many of them the previous piece wrote
    for a, b, ea, eb in _bounds(n, chunk, margin):
        y = fn(x.narrow(in_dim, ea * in_per_frame, min(n_in, eb * in_per_frame) - ea * in_per_frame))
        lo = (a - ea) * out_per_frame - (fade // 2 if a > 0 else 0)
        hi = min(y.shape[out_dim], (b - ea) * out_per_frame + (fade - fade // 2 if b < n else 0))
        piece = y.narrow(out_dim, lo, hi - lo)
        if out is None:
            shape = list(y.shape)
            shape[out_dim] = n * out_per_frame + fade  # an upper bound; trimmed to `end` at the end
            out = y.new_empty(shape)
        f = min(fade, piece.shape[out_dim], prev) if a > 0 else 0
        if f:  # ramp linearly from the previous piece's tail to this piece's head
            ramp = _ramp(f, fade, y.ndim, out_dim, y.device)
            seam = out.narrow(out_dim, end - f, f)
            seam.copy_(seam * (1 - ramp) + piece.narrow(out_dim, 0, f) * ramp)
        rest = piece.narrow(out_dim, f, piece.shape[out_dim] - f)
        out.narrow(out_dim, end, rest.shape[out_dim]).copy_(rest)
        end, prev = end + rest.shape[out_dim], rest.shape[out_dim]
    assert out is not None
    return out.narrow(out_dim, 0, end)


def _ramp(f: int, fade: int, ndim: int, dim: int, device: torch.device) -> torch.Tensor:
    """The first `f` weights of a linear 0 -> 1 ramp over `fade` samples, shaped to broadcast along `dim`.

    A last piece shorter than `fade` (a clip ending just past a chunk boundary) overlaps its
    predecessor by its own length only: both were cut at the clip's end, so the ramp stops there.
    """
    shape = [1] * ndim
    shape[dim] = f
    return ((torch.arange(f, dtype=torch.float32) + 0.5) / fade).reshape(shape).to(device)  # 0 -> 1


def _per_latent(mod: MediaModality) -> int:
    ratio = mod.raw_rate / mod.spec.rate_hz
    if abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(f"{mod.kind}: {mod.raw_rate:g} raw per second is not a whole number per latent frame")
    return round(ratio)


@torch.no_grad()
def encode_long(mod: MediaModality, raw: torch.Tensor, chunk: int = CHUNK, margin: int = MARGIN) -> torch.Tensor:
    """Raw clip [B, N, ...] -> normalized latents [B, T, ...] (as `mod.encode`), chunk by chunk."""
    device = mod.device
    if isinstance(mod, VideoModality):
        vae = mod.vae
        return run_chunked(
            lambda x: vae.encode_normalized(frames_to_features(x).to(device)).cpu(),
            raw, _per_latent(mod), 1, chunk=chunk, margin=margin,
        )
    if isinstance(mod, MotionModality):
        vae = mod.vae
        feats = vae.codec.encode(raw.to(device, torch.float32))  # [B, T, F] translation-invariant features
        mean = run_chunked(lambda f: vae.encode(f)[0], feats, vae.downsample, 1, chunk=chunk, margin=margin)
        return vae.latent_stats.normalize(mean).cpu()
    if isinstance(mod, AudioModality):
        return run_chunked(  # GroupNorm statistics span the chunk: cross-fade the latents across seams
            lambda w: mod.encode(w.to(device)).cpu(), raw, _per_latent(mod), 1, chunk=chunk, margin=margin, fade=margin
        )
    if isinstance(mod, WaveAudioModality):
        return run_chunked(lambda w: mod.encode(w.to(device)).cpu(), raw, _per_latent(mod), 1, chunk=chunk,
                           margin=max(margin, WAVE_MARGIN))
    return mod.encode(raw).cpu()


@torch.no_grad()
def decode_long(
    mod: MediaModality,
    z: torch.Tensor,
    num: int,
    *,
    state: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk: int = CHUNK,
    margin: int = MARGIN,
) -> torch.Tensor:
    """Normalized latents [B, T, ...] -> raw [B, num, ...] on the CPU (as `mod.decode`), chunk by chunk.

    `state` is motion's frame-0 root state; `generator` draws Griffin-Lim's phases (one stream
    for all chunks, so the same seed gives the same audio)."""
    z = z.to(mod.device)
    if isinstance(mod, VideoModality):
        vae = mod.vae
        frames = run_chunked(
            lambda q: features_to_frames(vae.decode(vae.latent_stats.denormalize(q))).cpu(),
            z, 1, vae.temporal_downsample, chunk=chunk, margin=margin,
        )
        return frames[:, :num]
    if isinstance(mod, MotionModality):
        vae = mod.vae
        feats = run_chunked(
            lambda q: vae.decode(vae.latent_stats.denormalize(q)), z, 1, vae.downsample, chunk=chunk, margin=margin
        )
        return vae.codec.decode(feats[:, :num], state).cpu()
    if isinstance(mod, AudioModality):
        vae, hop = mod.vae, mod.vae.mel.hop_length
        per = _per_latent(mod) // hop  # mel frames per latent frame
        mel = run_chunked(
            lambda q: vae.decode(vae.latent_stats.denormalize(q)), z, 1, per,
            chunk=chunk, margin=margin, fade=margin * per, out_dim=2,
        )  # [B, n_mels, N]
        mel = mel[..., : -(-num // hop)]
        wave = run_chunked(
            lambda m: mod.codec.decode(m, m.shape[-1] * hop, generator=generator).cpu(),
            mel, per, per * hop, chunk=chunk, margin=margin, fade=margin * per * hop, in_dim=2, out_dim=1,
        )  # [B, S]
        if wave.shape[1] < num:
            wave = torch.nn.functional.pad(wave, (0, num - wave.shape[1]))
        return wave[:, :num].clamp_(-1.0, 1.0)  # in place: the buffer is this function's own
    if isinstance(mod, WaveAudioModality):
        per = _per_latent(mod)  # samples per latent frame (the hop)
        wave = run_chunked(lambda q: mod.decode(q, q.shape[1] * per).cpu(), z, 1, per, chunk=chunk,
                           margin=max(margin, WAVE_MARGIN))
        return torch.nn.functional.pad(wave, (0, max(0, num - wave.shape[1])))[:, :num]
    raise TypeError(f"decode_long: no chunked decoding for {type(mod).__name__}")
