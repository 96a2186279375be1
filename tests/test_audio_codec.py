"""Audio codec: librosa-equal mel filterbank and log-mel, exact frame counts, resampling, input errors, Griffin-Lim."""

import librosa
import numpy as np
import pytest
import torch

from mmgen.modalities.audio_codec import MelAudioCodec, MelSpec, mel_filterbank, prepare_waveform, resample


def _tone_and_noise(n: int, sr: int = 22050, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.4 * np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize(
    "sr, n_fft, n_mels, fmin, fmax",
    [
        (22050, 1024, 80, 0.0, None),
        (44100, 2048, 128, 30.0, 16000.0),
        (16000, 512, 40, 0.0, 8000.0),
        (22050, 1024, 64, 50.0, 8000.0),
    ],
)
def test_filterbank_equals_librosa(sr, n_fft, n_mels, fmin, fmax):
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax).numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)
    assert np.abs(ours - ref).max() < 1e-7  # in practice equal to float32 rounding


@pytest.mark.parametrize("num_samples", [22050, 22050 + 1, 294 * 40, 294 * 40 - 1, 5000])
def test_log_mel_equals_librosa_and_frame_count(num_samples):
    """Tolerance: 1e-4 absolute on natural-log values (float32 FFT vs librosa's float32 pocketfft)."""
    spec = MelSpec()
    y = _tone_and_noise(num_samples)
    ours = MelAudioCodec(spec).encode(torch.from_numpy(y))  # [1, 80, N]
    ref = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=1024, hop_length=294, n_mels=80, power=1.0)
    ref = np.log(np.maximum(ref, 1e-5))
    n = -(-num_samples // 294)
    assert ours.shape == (1, 80, n) == (1, 80, spec.num_frames(num_samples))
    assert ref.shape[1] == 1 + num_samples // 294 and ref.shape[1] - n == (num_samples % 294 == 0)
    np.testing.assert_allclose(ours[0].numpy(), ref[:, :n], rtol=0, atol=1e-4)


def test_log_mel_power_two_equals_librosa_default():
    spec = MelSpec(power=2.0)
    y = _tone_and_noise(8000, seed=1)
    ours = MelAudioCodec(spec).encode(torch.from_numpy(y))[0].numpy()
    ref = np.log(
        np.maximum(librosa.feature.melspectrogram(y=y, sr=22050, n_fft=1024, hop_length=294, n_mels=80), 1e-5)
    )
    np.testing.assert_allclose(ours, ref[:, : ours.shape[1]], rtol=0, atol=2e-4)


def test_stereo_is_averaged_and_layouts():
    codec = MelAudioCodec()
    left, right = _tone_and_noise(6000, seed=2), _tone_and_noise(6000, seed=3)
    stereo = torch.from_numpy(np.stack([left, right]))[None]  # [1, 2, S]
    mono = torch.from_numpy((left + right) / 2)
    torch.testing.assert_close(codec.encode(stereo), codec.encode(mono), rtol=0, atol=1e-5)
    batch = torch.from_numpy(np.stack([left, right]))  # [B=2, S]: a batch of mono clips
    out = codec.encode(batch)
    assert out.shape[0] == 2
    torch.testing.assert_close(out[1:], codec.encode(torch.from_numpy(right)), rtol=0, atol=1e-5)


def test_resampling_matches_scipy_polyphase_and_keeps_pitch():
    sr = 44100
    t = np.arange(sr) / sr
    y = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    ours = resample(torch.from_numpy(y), sr, 22050).numpy()
    ref = librosa.resample(y.astype(np.float64), orig_sr=sr, target_sr=22050, res_type="polyphase")
    assert ours.shape == (22050,)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    peak_hz = np.argmax(np.abs(np.fft.rfft(ours))) * 22050 / len(ours)
    assert abs(peak_hz - 1000) < 2
    # the codec resamples another rate: features of the 44.1 kHz clip ~ features of the 22.05 kHz clip
    codec = MelAudioCodec()
    direct = codec.encode(
        torch.from_numpy(np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32))
    )
    via = codec.encode(torch.from_numpy(y), sample_rate=sr)
    assert via.shape == direct.shape
    loud = direct > -3  # compare where there is energy (the stop band differs by filter ripple)
    assert (via - direct)[loud].abs().max() < 0.05


def test_prepare_waveform_channels():
    mono = torch.randn(2, 1000)
    stereo = prepare_waveform(mono, 22050, 22050, channels=2)
    assert stereo.shape == (2, 2, 1000) and torch.equal(stereo[:, 0], stereo[:, 1])
    back = prepare_waveform(stereo, 22050, 22050, channels=1)
    torch.testing.assert_close(back[:, 0], mono)


@pytest.mark.parametrize(
    "wave, kwargs, match",
    [
        (torch.full((1, 4000), float("nan")), {}, "NaN"),
        (torch.randn(1, 500), {}, "too short"),
        (torch.randn(1, 3, 4000), {}, "1 \\(mono\\) or 2 \\(stereo\\) channels"),
        (torch.randn(1, 1, 1, 4000), {}, "expected \\[S\\], \\[B, S\\] or \\[B, C, S\\]"),
        (torch.zeros(4000, dtype=torch.int16), {}, "float waveform"),
        (torch.randn(1, 4000), {"sample_rate": 0}, "sample rates must be positive"),
        (
            torch.randn(1, 2000),
            {"sample_rate": 44100},
            "too short",
        ),  # 2000 samples at 44.1 kHz -> 1000 at 22.05 kHz
    ],
)
def test_bad_input_raises_clear_errors(wave, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MelAudioCodec().encode(wave, **kwargs)


def test_melspec_rejects_bad_settings():
    with pytest.raises(ValueError, match="hop_length"):
        MelSpec(hop_length=2048, n_fft=1024)
    with pytest.raises(ValueError, match="fmax"):
        MelSpec(fmax=20000.0)
    with pytest.raises(ValueError, match="empty mel filters"):
        mel_filterbank(22050, 128, 128)


def test_griffin_lim_reconstructs_the_mel():
    """The fallback needs no training: iterations reduce the mel error from the random-phase start."""
    codec = MelAudioCodec()
    y = torch.from_numpy(_tone_and_noise(22050 // 2, seed=4))
    target = codec.encode(y)
    gen = torch.Generator().manual_seed(0)
    codec.griffin_lim_iters = 0
    random_phase = codec.decode(target, num_samples=y.shape[-1], generator=gen)
    codec.griffin_lim_iters = 32
    gl = codec.decode(target, num_samples=y.shape[-1], generator=gen.manual_seed(0))
    assert gl.shape == (1, y.shape[-1])
    err_random = (codec.encode(random_phase) - target).abs().mean()
    err_gl = (codec.encode(gl) - target).abs().mean()
    silence = (codec.encode(torch.zeros_like(y) + 1e-9 * torch.randn_like(y)) - target).abs().mean()
    assert err_gl < 0.6 * err_random and err_gl < 0.1 * silence
    # the pseudo-inverse magnitude maps back onto (nearly) the same mel
    mel_again = torch.matmul(codec.filterbank, codec.mel_to_magnitude(target)).clamp_min(1e-5).log()
    assert (mel_again - target).abs().median() < 1e-3


def test_decode_uses_the_vocoder_when_given():
    class Half(torch.nn.Module):
        def forward(self, mel):
            return torch.full((mel.shape[0], mel.shape[-1] * 294), 0.5)

    codec = MelAudioCodec(vocoder=Half())
    out = codec.decode(torch.zeros(2, 80, 10), num_samples=2000)
    assert out.shape == (2, 2000) and bool((out == 0.5).all())
    with pytest.raises(ValueError, match=r"\[B, 80, N\]"):
        codec.decode(torch.zeros(2, 64, 10))
