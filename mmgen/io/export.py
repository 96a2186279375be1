"""Writing results as ordinary media files: wav, motion npz / BVH, mp4 (H.264 + AAC), mel PNG.

Every writer is atomic (a temporary file renamed into place) and byte-deterministic for the same
input, so a data set made twice is identical: float wavs are written without libsndfile's
timestamped PEAK chunk, npz zip entries carry a fixed timestamp, and mp4s are encoded from YUV
made in numpy, with x264's mb-tree off and the muxer in bit-exact mode (each of these varied
between runs otherwise). PyAV bundles FFmpeg's H.264 and AAC encoders: no system ffmpeg.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import zipfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mmgen.core.fileio import atomic_path
from mmgen.io.bvh import save_bvh
from mmgen.io.render import render_stick_figure

logger = logging.getLogger(__name__)

__all__ = [
    "load_motion_npz",
    "plot_mel_with_beats",
    "render_stick_figure",
    "rgb_to_yuv420p",
    "save_bvh",
    "save_motion_npz",
    "save_video",
    "save_wav",
]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _check_audio(audio: np.ndarray, sr: int, what: str) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.shape[0] == 0:
        raise ValueError(f"{what}: audio must be [S] or [S, C] with S > 0, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"{what}: audio must be floating point in [-1, 1], got dtype {audio.dtype}")
    if not np.isfinite(audio).all():
        raise ValueError(f"{what}: audio contains NaN or infinite values")
    if int(sr) != sr or sr <= 0:
        raise ValueError(f"{what}: sample rate must be a positive integer, got {sr}")
    return audio.astype(np.float32, copy=False)


def _float_wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """A 32-bit IEEE-float WAV file of audio [S, C]: RIFF, fmt (format 3), fact, data chunks.

    Written by hand because libsndfile adds a PEAK chunk with a wall-clock timestamp to float
    files, which would make equal audio give different bytes.
    """
    frames, channels = audio.shape
    data = np.ascontiguousarray(audio, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHHH", 3, channels, sr, sr * channels * 4, channels * 4, 32, 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"fact" + struct.pack("<II", 4, frames)
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def save_wav(path: str | os.PathLike, audio: np.ndarray, sr: int, subtype: str = "FLOAT") -> Path:
    """Write audio [S] or [S, C] (float, nominally in [-1, 1]) as a wav file.

    The default 32-bit float subtype reads back bit-exactly (and equal audio gives equal bytes);
    other soundfile subtypes (e.g. "PCM_16" for small files) go through soundfile.
    """
    import soundfile as sf

    audio = _check_audio(audio, sr, f"save_wav({path})")
    audio2d = audio[:, None] if audio.ndim == 1 else audio  # [S, C]
    with atomic_path(path) as tmp:
        if subtype == "FLOAT":
            tmp.write_bytes(_float_wav_bytes(audio2d, int(sr)))
        else:
            sf.write(str(tmp), audio2d, int(sr), subtype=subtype, format="WAV")
    return Path(path)


def save_motion_npz(path: str | os.PathLike, joints: np.ndarray, fps: float, **meta: Any) -> Path:
    """Write joints [T, J, 3] (float32), fps and extra arrays/scalars/strings as an .npz file.

    Object arrays are refused (they would need pickle to load); read with `load_motion_npz` or
    `np.load(path)`. Zip entries carry a fixed timestamp so equal inputs give equal bytes.
    """
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[-1] != 3 or joints.shape[0] == 0:
        raise ValueError(f"save_motion_npz({path}): joints must be [T, J, 3] with T > 0, got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError(f"save_motion_npz({path}): joints contain NaN or infinite values")
    if not fps > 0:
        raise ValueError(f"save_motion_npz({path}): fps must be positive, got {fps}")
    arrays = {"joints": joints, "fps": np.asarray(float(fps))}
    for key, value in meta.items():
        if key in arrays:
            raise ValueError(f"save_motion_npz({path}): meta key {key!r} is reserved")
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(f"save_motion_npz({path}): meta {key!r} is not a numeric/string array")
        arrays[key] = arr
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(
                buf, np.asarray(arr, order="C"), allow_pickle=False
            )  # keeps 0-d arrays 0-d
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return Path(path)


def load_motion_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an .npz written by `save_motion_npz` (no pickle); names the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: motion file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: not a readable motion .npz ({err})") from err
    if "joints" not in out or "fps" not in out:
        raise ValueError(f"{path}: motion .npz lacks 'joints' or 'fps' (has {sorted(out)})")
    return out


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> planar YUV 4:2:0 [H * 3 / 2, W] uint8 (BT.601, limited range).

    Done in numpy rather than by swscale, and without reductions, so that the encoder input, and
    with it the mp4, is byte-identical run to run (SIMD code paths can depend on buffer alignment).
    """
    x = frame.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16.0 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    u = 128.0 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    v = 128.0 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    h, w = frame.shape[:2]

    def half(p: np.ndarray) -> np.ndarray:
        # 2x2 average as elementwise adds in a fixed order: a numpy reduction may sum in an order
        # that depends on memory alignment, flipping .5 ties in the rounding below
        return ((p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) * 0.25).ravel()  # [H/2 * W/2]

    planes = np.concatenate([y.ravel(), half(u), half(v)]).reshape(h * 3 // 2, w)  # PyAV's yuv420p layout
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8)


def save_video(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sr: int | None = None,
    crf: int = 16,
    audio_bitrate: int = 128_000,
) -> Path:
    """Write frames [F, H, W, 3] uint8 (or an iterable of such chunks, written as they come) as an
    mp4 (H.264, yuv420p), muxing audio [S] as AAC if given.

    H and W must be even (yuv420p). decord reads the result; its audio decodes a few hundred
    samples longer than `audio` (AAC priming), so trim to the expected length when reading.
    """
    import itertools

    import av

    chunks: Iterable[np.ndarray]
    if isinstance(frames, np.ndarray):
        chunks = [frames]
    else:  # chunks [n, H, W, 3], written as they come (memory holds one)
        it = iter(frames)
        first = next(it, None)
        frames = np.asarray(first) if first is not None else np.zeros((0, 2, 2, 3), np.uint8)
        chunks = itertools.chain([frames], it)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0 or frames.dtype != np.uint8:
        raise ValueError(
            f"save_video({path}): frames must be uint8 [F, H, W, 3] with F > 0, got {frames.dtype} {frames.shape}"
        )
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"save_video({path}): H.264 yuv420p needs even frame sizes, got {height}x{width}")
    if not fps > 0:
        raise ValueError(f"save_video({path}): fps must be positive, got {fps}")
    if audio is not None:
        if sr is None:
            raise ValueError(f"save_video({path}): audio given without its sample rate sr")
        audio = _check_audio(audio, sr, f"save_video({path})")
        audio = audio[:, None] if audio.ndim == 1 else audio  # [S, C]
    rate = Fraction(fps).limit_denominator(1001)
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container,
    ):
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        # mb-tree's float propagation takes alignment-dependent SIMD paths: with it on, the same
        # input gave two different (equally decodable) bitstreams across processes
        vstream.options = {"crf": str(crf), "preset": "medium", "threads": "1", "x264-params": "mbtree=0"}
        vstream.codec_context.flags |= av.codec.context.Flags.bitexact
        astream = None
        if audio is not None:
            layout = "mono" if audio.shape[1] == 1 else "stereo"
            astream = container.add_stream("aac", rate=int(sr))
            astream.layout, astream.bit_rate = layout, audio_bitrate
            astream.codec_context.flags |= av.codec.context.Flags.bitexact
        i = 0
        for part in chunks:
            part = np.asarray(part)
            if part.shape[1:] != frames.shape[1:] or part.dtype != np.uint8:
                raise ValueError(f"save_video({path}): a chunk of {part.dtype} {part.shape} among {frames.shape[1:]} frames")
            for frame in part:
                vf = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
                vf.pts = i
                container.mux(vstream.encode(vf))
                i += 1
        container.mux(vstream.encode(None))
        if astream is not None:
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.T), format="fltp", layout=layout)
            af.sample_rate, af.pts = int(sr), 0
            container.mux(astream.encode(af))
            container.mux(astream.encode(None))
    return Path(path)


def plot_mel_with_beats(
    path: str | os.PathLike,
    audio: np.ndarray,
    sr: int,
    music_beats: np.ndarray | None = None,
    motion_beats: np.ndarray | None = None,
    title: str = "",
    n_mels: int = 80,
    hop_length: int = 256,
) -> Path:
    """Write a PNG: log-mel spectrogram of `audio` [S] with music beats (white dashed) and motion
    beats (cyan, solid, lower half) marked as vertical lines; both beat lists are in seconds."""
    import librosa
    from matplotlib.figure import Figure

    audio = _check_audio(audio, sr, f"plot_mel_with_beats({path})")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    mel = librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=1024, hop_length=hop_length, n_mels=n_mels)
    mel_db = librosa.power_to_db(mel, ref=np.max(mel) if mel.max() > 0 else 1.0, top_db=80.0)
    duration = len(audio) / sr
    fig = Figure(figsize=(max(6.0, min(16.0, 1.2 * duration + 2)), 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    img = ax.imshow(mel_db, origin="lower", aspect="auto", cmap="magma", extent=(0.0, duration, 0, n_mels))
    fig.colorbar(img, ax=ax, format="%+.0f dB", pad=0.01)
    for beats, color, style, label, span in (
        (music_beats, "white", "--", "music beats", (0.0, 1.0)),
        (motion_beats, "#00e5ff", "-", "motion beats", (0.0, 0.45)),
    ):
        if beats is None:
            continue
        beats = np.asarray(beats, dtype=np.float64).ravel()
        for k, t in enumerate(beats[(beats >= 0) & (beats <= duration)]):
            ax.axvline(
                t,
                ymin=span[0],
                ymax=span[1],
                color=color,
                linestyle=style,
                linewidth=1.2,
                alpha=0.9,
                label=label if k == 0 else None,
            )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    ax.set_xlim(0.0, duration)
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8, framealpha=0.6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
