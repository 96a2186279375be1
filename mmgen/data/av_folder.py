"""A folder of videos with sound (mp4 / mkv / webm / mov) as a data set of frames + waveform.

    root/**/*.mp4 ──probe──► items (decodable, with audio)      skipped: [(path, reason), ...]
                              │
                read_av(item, fps, size, sample_rate, start, seconds)
                              ▼
             frames uint8 [T, H, W, 3] at `fps`     audio float32 [S] mono at `sample_rate`
             T = floor(seconds · fps)               S = round(T / fps · sample_rate)

Frames are decoded with decord or PyAV (`mmgen.io.video_backend`), resized with antialiasing (center-cropped to keep the aspect
ratio) and resampled by frame selection: output frame k shows source frame
floor(k · src_fps / fps), the frame a player shows at time k / fps. Audio is decoded with PyAV at
the file's own rate (decord's AudioReader keeps AAC's priming samples in mkv, a 64 ms shift at
16 kHz) and resampled with soxr; AAC decoders add up to one frame of padding at the
end, so audio is trimmed (or zero-padded) to exactly cover the T video frames.

Every file is probed once when the folder is scanned; a file that cannot be opened, without an
audio track (when audio is required) or without frames is reported with its path and the
reason and left out. A file that fails later while decoding is reported the same way and the
data set returns the next readable item instead of crashing the epoch.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mmgen.core.errors import MmgenError
from mmgen.data.aistpp import clip_starts
from mmgen.io.audio import resample_audio

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class AVInfo:
    """What one probe of a file found."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    audio_rate: int | None  # None: no audio track

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


@dataclass(frozen=True)
class AVClip:
    frames: np.ndarray  # [T, H, W, 3] uint8
    audio: np.ndarray | None  # [S] float32 mono, None when read without audio
    fps: float
    sample_rate: int
    path: str
    start: float


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1].strip() if text else type(err).__name__


def probe(path: str | os.PathLike) -> AVInfo:
    """Open `path` (video: `mmgen.io.video_backend`; audio stream header: PyAV); ValueError with the reason."""
    import av

    from mmgen.io.video_backend import probe_video

    path = Path(path)
    try:
        meta = probe_video(path)
    except ValueError as err:
        raise ValueError(f"cannot open it ({str(err).split(': ', 1)[-1]})") from None
    n, fps, height, width = meta.num_frames, meta.fps, meta.height, meta.width
    if n == 0 or not fps > 0:
        raise ValueError(f"no video frames (frames={n}, fps={fps})")
    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio
            rate = int(streams[0].sample_rate) if streams else None
    except (av.FFmpegError, OSError) as err:
        raise ValueError(f"cannot read the audio header ({_first_line(err)})") from None
    return AVInfo(str(path), n, fps, int(width), int(height), rate)


def scan_folder(
    root: str | os.PathLike,
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
    require_audio: bool = True,
    min_seconds: float = 0.0,
) -> tuple[list[AVInfo], list[Skipped]]:
    """Probe every video file under `root` (recursively, sorted); returns (usable, skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder of videos")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
    items, skipped = [], []
    for f in files:
        try:
            info = probe(f)
        except ValueError as err:
            skipped.append(Skipped(str(f), str(err)))
            continue
        if require_audio and info.audio_rate is None:
            skipped.append(Skipped(str(f), "no audio track"))
        elif info.seconds < min_seconds:
            skipped.append(Skipped(str(f), f"shorter than {min_seconds:g} s ({info.seconds:.2f} s)"))
        else:
            items.append(info)
    for s in skipped:
        logger.warning("skipping %s", s)
    return items, skipped


def frame_indices(
    num_frames: int, src_fps: float, fps: float, start: float = 0.0, seconds: float | None = None
) -> np.ndarray:
    """Source frame of each output frame k (time start + k / fps): floor((start + k / fps) · src_fps)."""
    if not (src_fps > 0 and fps > 0):
        raise ValueError(f"frame rates must be positive, got {src_fps} -> {fps}")
    available = num_frames / src_fps - start
    seconds = available if seconds is None else seconds
    if seconds > available + 1e-6:
        raise ValueError(f"window {start:g} + {seconds:g} s exceeds the video's {num_frames / src_fps:g} s")
    count = math.floor(seconds * fps + 1e-6)
    idx = np.floor((start + np.arange(count) / fps) * src_fps + 1e-6).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


def resize_frames(
    frames: np.ndarray, size: tuple[int, int], crop: bool = True, chunk: int = 64
) -> np.ndarray:
    """Resize uint8 [T, h, w, 3] to `size` = (H, W) with antialiased bilinear filtering.

    crop=True keeps the aspect ratio: scale so the frame covers (H, W), then center-crop.
    (decord's own resize-on-decode fails for some widths, e.g. 16 or 48, so we resize here.)
    """
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    src_h, src_w = frames.shape[1:3]
    scale = max(h / src_h, w / src_w)
    mid = (max(h, round(src_h * scale)), max(w, round(src_w * scale))) if crop else (h, w)
    out = np.empty((frames.shape[0], h, w, 3), np.uint8)
    top, left = (mid[0] - h) // 2, (mid[1] - w) // 2
    for s in range(0, frames.shape[0], chunk):
        x = torch.from_numpy(frames[s : s + chunk]).permute(0, 3, 1, 2).float()  # [t, 3, h0, w0]
        x = torch.nn.functional.interpolate(x, size=mid, mode="bilinear", antialias=True, align_corners=False)
        x = x[:, :, top : top + h, left : left + w]  # [t, 3, H, W]
        out[s : s + chunk] = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def decode_audio(path: str | os.PathLike) -> np.ndarray:
    """Mono float32 audio at the file's own rate, sample 0 at the time of the first video frame.

    Decoded with PyAV, which drops the codec's priming samples (AAC, Opus) as the container says;
    decord keeps them for mkv/webm, shifting audio by 1024 samples against the video (measured).
    A stream that starts later/earlier than the video is zero-padded/trimmed accordingly.
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("no audio track")
        stream = container.streams.audio[0]
        video = container.streams.video[0] if container.streams.video else None
        resampler = av.AudioResampler(format="fltp")  # any sample format -> float planar, same layout/rate
        chunks, first = [], None
        for frame in container.decode(stream):
            if first is None and frame.pts is not None:
                first = float(frame.pts * frame.time_base)
            for f in resampler.resample(frame):
                chunks.append(f.to_ndarray().mean(axis=0))  # [channels, n] -> [n]
        for f in resampler.resample(None):
            chunks.append(f.to_ndarray().mean(axis=0))
        rate = stream.sample_rate
        v0 = (
            float(video.start_time * video.time_base)
            if video is not None and video.start_time is not None
            else 0.0
        )
    if not chunks:
        raise ValueError("the audio track holds no samples")
    wave = np.concatenate(chunks).astype(np.float32)
    offset = round(((first or 0.0) - v0) * rate)
    if offset > 0:
        wave = np.concatenate([np.zeros(offset, np.float32), wave])
    elif offset < 0:
        wave = wave[-offset:]
    return wave


def read_av(
    item: AVInfo | str | os.PathLike,
    fps: float,
    sample_rate: int,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    seconds: float | None = None,
    crop: bool = True,
    with_audio: bool = True,
) -> AVClip:
    """Decode a window of a file: frames at `fps` resized to `size` = (H, W), mono audio at `sample_rate`.

    `crop=True` keeps the aspect ratio (resize the short side, center crop); False stretches.
    Raises ValueError naming the file when it cannot be decoded.
    """
    import av

    from mmgen.io.video_backend import read_frames

    info = item if isinstance(item, AVInfo) else probe(item)
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise ValueError(f"size must be (height, width) > 0, got {size}")
    idx = frame_indices(info.num_frames, info.fps, fps, start, seconds)
    if idx.size == 0:
        raise ValueError(f"{info.path}: the window {start:g} s + {seconds} s holds no frame at {fps:g} fps")
    try:
        frames = read_frames(info.path, idx)  # [T, h0, w0, 3]
    except ValueError as err:
        raise ValueError(f"{info.path}: decoding video failed ({str(err).split(': ', 1)[-1]})") from None
    if size is not None:
        frames = resize_frames(frames, size, crop)
    audio = None
    if with_audio:
        if info.audio_rate is None:
            raise ValueError(f"{info.path}: no audio track")
        try:
            wave = decode_audio(info.path)  # [S_native], time 0 = the first video frame
        except (av.FFmpegError, OSError, ValueError) as err:
            raise ValueError(f"{info.path}: decoding audio failed ({_first_line(err)})") from None
        first = round(start * info.audio_rate)
        native_len = round(idx.size / fps * info.audio_rate)
        wave = wave[first : first + native_len]
        wave = resample_audio(wave, info.audio_rate, sample_rate)
        target = round(idx.size / fps * sample_rate)
        audio = np.zeros(target, np.float32)
        audio[: min(target, wave.size)] = wave[:target]
        if not np.isfinite(audio).all():
            raise ValueError(f"{info.path}: decoded audio holds NaN")
    return AVClip(frames, audio, float(fps), int(sample_rate), info.path, float(start))


class AVFolder(Dataset):
    """Map-style data set over a folder of videos, optionally cut into windows.

    Args:
        root: folder searched recursively for `extensions`.
        fps, size, sample_rate: output frame rate, (H, W) and audio rate.
        clip_seconds: window length; None = whole files (batch them with batch_size 1 or your own collate).
        stride_seconds: hop between windows (defaults to clip_seconds).
        require_audio: skip files without an audio track (True for audio-video training).

    `skipped` lists (path, reason) for every file left out at scan time or failing later.
    Items are dicts: frames uint8 [T, H, W, 3], audio float32 [S], path, start (s).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        fps: float = 15.0,
        size: tuple[int, int] | None = (64, 64),
        sample_rate: int = 16000,
        clip_seconds: float | None = None,
        stride_seconds: float | None = None,
        require_audio: bool = True,
        crop: bool = True,
        extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
    ) -> None:
        self.fps, self.size, self.sample_rate, self.crop = float(fps), size, int(sample_rate), crop
        self.clip_seconds = clip_seconds
        self.require_audio = require_audio
        files, self.skipped = scan_folder(root, extensions, require_audio, min_seconds=clip_seconds or 0.0)
        self.windows: list[tuple[AVInfo, float]] = []
        for info in files:
            if clip_seconds is None:
                self.windows.append((info, 0.0))
            else:
                starts = clip_starts(info.seconds, clip_seconds, stride_seconds or clip_seconds)
                self.windows.extend((info, s) for s in starts)
        self._bad: set[str] = set()
        if not self.windows:
            raise MmgenError(
                f"{root}: no usable video (skipped {len(self.skipped)}: {'; '.join(map(str, self.skipped[:3]))})"
            )

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.windows)

    def _read(self, i: int) -> dict:
        info, start = self.windows[i]
        clip = read_av(
            info,
            self.fps,
            self.sample_rate,
            self.size,
            start,
            self.clip_seconds,
            self.crop,
            with_audio=self.require_audio,
        )
        out = {"frames": torch.from_numpy(clip.frames), "path": info.path, "start": start}
        if clip.audio is not None:
            out["audio"] = torch.from_numpy(clip.audio)
        return out

    def __getitem__(self, i: int) -> dict:
        for k in range(len(self.windows)):
            j = (i + k) % len(self.windows)
            path = self.windows[j][0].path
            if path in self._bad:
                continue
            try:
                return self._read(j)
            except ValueError as err:
                self._bad.add(path)
                self.skipped.append(Skipped(path, str(err).removeprefix(f"{path}: ")))
                logger.warning("skipping %s", err)
        raise MmgenError(
            "every file of the folder failed to decode: " + "; ".join(map(str, self.skipped[-3:]))
        )
