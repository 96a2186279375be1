"""Reading audio files at the model's sample rate (soundfile + soxr resampling via librosa)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def resample_audio(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample the last axis with soxr (librosa's default high-quality resampler)."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return np.asarray(y, dtype=np.float32)
    import librosa

    return librosa.resample(
        np.asarray(y, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq"
    )


def load_audio(path: str | os.PathLike, sample_rate: int, mono: bool = True) -> np.ndarray:
    """Read a wav/flac/ogg file as float32 at `sample_rate`: [S] if mono else [channels, S].

    Raises FileNotFoundError / ValueError naming the file when it is missing, unreadable,
    empty or holds NaN.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [S, channels]
    except (RuntimeError, sf.LibsndfileError) as err:
        raise ValueError(f"{path}: cannot read audio ({err})") from err
    if data.shape[0] == 0:
        raise ValueError(f"{path}: audio file holds no samples")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: audio holds NaN or infinite samples")
    y = data.mean(axis=1) if mono else data.T  # [S] or [channels, S]
    return resample_audio(y, int(sr), int(sample_rate))


def audio_seconds(path: str | os.PathLike) -> float:
    """Duration from the file header (no decoding)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise ValueError(f"{path}: cannot read audio header ({err})") from err
    return info.frames / info.samplerate
