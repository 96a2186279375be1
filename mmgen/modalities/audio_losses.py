"""Named, weighted losses for the audio VAEs and the vocoder.

Every term is returned unweighted under its name in a dict, plus `total` = Σ weight · term, so
training code logs exactly the names configured here (DAC style):

    l1     L1 between prediction and target (log-mel for the mel VAE, samples for waveforms)
    stft   multi-resolution STFT loss (spectral convergence + log-magnitude L1; Yamamoto et al.)
    mel    multi-scale log-mel L1 (DAC)
    kl     KL(q(z|x) || N(0, I)), mean over latent elements
    adv    generator adversarial loss (hinge or least-squares)
    fm     discriminator feature matching (L1)

The STFT loss is written here rather than taken from auraloss: auraloss keeps its window as a
plain attribute (moved to the device on every call), prints instead of raising, and runs the STFT
in the input dtype, which breaks under bf16 autocast. The maths is the same (tests compare against
`auraloss.freq.MultiResolutionSTFTLoss`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.modalities.audio_codec import mel_filterbank, stft

AdvKind = Literal["hinge", "lsgan"]
# a discriminator maps a batch to a list of (logits, [feature maps]) over its sub-discriminators
DiscOutput = list[tuple[torch.Tensor, list[torch.Tensor]]]


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, e^logvar) || N(0, 1)) = ½(μ² + σ² − 1 − log σ²), averaged over every element."""
    return 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float()).mean()


def _flat_audio(x: torch.Tensor) -> torch.Tensor:
    """[B, S] or [B, C, S] -> [B * C, S] (channels are scored as separate signals)."""
    if x.ndim not in (2, 3):
        raise ValueError(f"expected [B, S] or [B, C, S] audio, got shape {tuple(x.shape)}")
    return x.reshape(-1, x.shape[-1])


class MultiResolutionSTFTLoss(nn.Module):
    """Mean over resolutions of  w_sc · ‖|Y|−|X|‖_F / ‖|Y|‖_F  +  w_log_mag · mean|log|Y| − log|X||.

    |X| = sqrt(max(re² + im², eps)); Hann windows of `win_length` centred in `fft_size`.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (1024, 2048, 512),
        hop_sizes: Sequence[int] = (120, 240, 50),
        win_lengths: Sequence[int] = (600, 1200, 240),
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) > 0:
            raise ValueError(
                "MultiResolutionSTFTLoss: fft_sizes, hop_sizes and win_lengths need equal, non-zero lengths"
            )
        if any(w > n for w, n in zip(win_lengths, fft_sizes)):
            raise ValueError(
                f"MultiResolutionSTFTLoss: win_lengths {list(win_lengths)} must not exceed fft_sizes {list(fft_sizes)}"
            )
        self.resolutions = list(zip(fft_sizes, hop_sizes, win_lengths))
        for i, (_, _, win) in enumerate(self.resolutions):
            self.register_buffer(f"window{i}", torch.hann_window(win), persistent=False)
        self.w_sc, self.w_log_mag, self.eps = w_sc, w_log_mag, eps

    def _mag(self, x: torch.Tensor, i: int) -> torch.Tensor:
        n_fft, hop, win = self.resolutions[i]
        spec = stft(x, n_fft, hop, getattr(self, f"window{i}"), win_length=win)
        return (spec.real.pow(2) + spec.imag.pow(2)).clamp_min(self.eps).sqrt()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y = _flat_audio(pred), _flat_audio(target)
        total = x.new_zeros((), dtype=torch.float32)
        for i in range(len(self.resolutions)):
            xm, ym = self._mag(x, i), self._mag(y, i)
            sc = torch.linalg.norm(ym - xm) / torch.linalg.norm(ym).clamp_min(self.eps)
            log_mag = (ym.log() - xm.log()).abs().mean()
            total = total + self.w_sc * sc + self.w_log_mag * log_mag
        return total / len(self.resolutions)


class MultiScaleMelLoss(nn.Module):
    """Mean over scales of mean |log max(mel(x), floor) − log max(mel(y), floor)| (window = n_fft, hop = n_fft / 4)."""

    def __init__(
        self,
        sample_rate: int,
        fft_sizes: Sequence[int] = (512, 1024, 2048),
        n_mels: Sequence[int] = (40, 80, 128),
        log_floor: float = 1e-5,
    ) -> None:
        super().__init__()
        if len(fft_sizes) != len(n_mels) or not fft_sizes:
            raise ValueError("MultiScaleMelLoss: fft_sizes and n_mels need equal, non-zero lengths")
        self.fft_sizes = list(fft_sizes)
        self.log_floor = log_floor
        for i, (n_fft, n) in enumerate(zip(fft_sizes, n_mels)):
            self.register_buffer(f"fb{i}", mel_filterbank(sample_rate, n_fft, n), persistent=False)
            self.register_buffer(f"window{i}", torch.hann_window(n_fft), persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y = _flat_audio(pred), _flat_audio(target)
        total = x.new_zeros((), dtype=torch.float32)
        with torch.autocast(device_type=x.device.type, enabled=False):  # mel in float32
            for i, n_fft in enumerate(self.fft_sizes):
                fb, window = getattr(self, f"fb{i}"), getattr(self, f"window{i}")
                mx = (
                    torch.matmul(fb, stft(x, n_fft, n_fft // 4, window).abs()).clamp_min(self.log_floor).log()
                )
                my = (
                    torch.matmul(fb, stft(y, n_fft, n_fft // 4, window).abs()).clamp_min(self.log_floor).log()
                )
                total = total + (mx - my).abs().mean()
        return total / len(self.fft_sizes)


# ----------------------------------------------------------------------------------------------
# Adversarial terms
# ----------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in ("hinge", "lsgan"):
        raise ValueError(f"adversarial loss kind must be 'hinge' or 'lsgan', got {kind!r}")


def generator_adversarial_loss(fake: DiscOutput, kind: AdvKind = "hinge") -> torch.Tensor:
    """Σ over sub-discriminators: hinge mean(relu(1 − D(G))) or least-squares mean((D(G) − 1)²)."""
    _check_kind(kind)
    terms = [
        F.relu(1 - logits).mean() if kind == "hinge" else (logits - 1).pow(2).mean() for logits, _ in fake
    ]
    return torch.stack(terms).sum()


def discriminator_adversarial_loss(
    real: DiscOutput, fake: DiscOutput, kind: AdvKind = "hinge"
) -> dict[str, torch.Tensor]:
    """Σ over sub-discriminators of the real and fake terms; `fake` must come from detached audio."""
    _check_kind(kind)
    if kind == "hinge":
        r = torch.stack([F.relu(1 - logits).mean() for logits, _ in real]).sum()
        f = torch.stack([F.relu(1 + logits).mean() for logits, _ in fake]).sum()
    else:
        r = torch.stack([(logits - 1).pow(2).mean() for logits, _ in real]).sum()
        f = torch.stack([logits.pow(2).mean() for logits, _ in fake]).sum()
    return {"disc": r + f, "disc_real": r, "disc_fake": f}


def feature_matching_loss(real: DiscOutput, fake: DiscOutput) -> torch.Tensor:
    """Mean over every feature map of every sub-discriminator of L1(fake, real) (real detached)."""
    terms = [F.l1_loss(f, r.detach()) for (_, rf), (_, ff) in zip(real, fake) for r, f in zip(rf, ff)]
    if not terms:
        raise ValueError("feature_matching_loss: the discriminator returned no feature maps")
    return torch.stack(terms).mean()


# ----------------------------------------------------------------------------------------------
# The bundle a training step uses
# ----------------------------------------------------------------------------------------------


class AudioReconstructionLoss(nn.Module):
    """Weighted sum of the named terms above; terms with weight 0 are not computed.

    Use for the waveform VAE (stft + mel + kl [+ adv + fm]), the vocoder (mel + stft [+ adv + fm])
    and the mel VAE (l1 on log-mel + kl [+ adv + fm with a mel discriminator]).
    `forward(pred, target, mean=None, logvar=None, discriminator=None)` returns the dict of terms.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        l1_weight: float = 0.0,
        stft_weight: float = 1.0,
        mel_weight: float = 15.0,
        kl_weight: float = 1e-4,
        adv_weight: float = 1.0,
        fm_weight: float = 2.0,
        adv_kind: AdvKind = "hinge",
        stft_fft_sizes: Sequence[int] = (2048, 1024, 512),
        stft_hop_sizes: Sequence[int] = (512, 256, 128),
        stft_win_lengths: Sequence[int] = (2048, 1024, 512),
        mel_fft_sizes: Sequence[int] = (512, 1024, 2048),
        mel_bins: Sequence[int] = (40, 80, 128),
    ) -> None:
        super().__init__()
        _check_kind(adv_kind)
        self.weights = {
            "l1": l1_weight,
            "stft": stft_weight,
            "mel": mel_weight,
            "kl": kl_weight,
            "adv": adv_weight,
            "fm": fm_weight,
        }
        if any(w < 0 for w in self.weights.values()):
            raise ValueError(f"AudioReconstructionLoss: weights must be non-negative, got {self.weights}")
        self.adv_kind = adv_kind
        self.stft = (
            MultiResolutionSTFTLoss(stft_fft_sizes, stft_hop_sizes, stft_win_lengths) if stft_weight else None
        )
        self.mel = MultiScaleMelLoss(sample_rate, mel_fft_sizes, mel_bins) if mel_weight else None

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mean: torch.Tensor | None = None,
        logvar: torch.Tensor | None = None,
        discriminator: nn.Module | None = None,
    ) -> dict[str, torch.Tensor]:
        if pred.shape != target.shape:
            raise ValueError(
                f"AudioReconstructionLoss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ"
            )
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w["l1"]:
            terms["l1"] = F.l1_loss(pred.float(), target.float())
        if self.stft is not None:
            terms["stft"] = self.stft(pred, target)
        if self.mel is not None:
            terms["mel"] = self.mel(pred, target)
        if w["kl"] and mean is not None and logvar is not None:
            terms["kl"] = kl_loss(mean, logvar)
        if discriminator is not None and (w["adv"] or w["fm"]):
            fake = discriminator(pred)
            if w["adv"]:
                terms["adv"] = generator_adversarial_loss(fake, self.adv_kind)
            if w["fm"]:
                with torch.no_grad():
                    real = discriminator(target)
                terms["fm"] = feature_matching_loss(real, fake)
        if not terms:
            raise ValueError(
                "AudioReconstructionLoss: every configured term has weight 0 or lacks its inputs"
            )
        terms["total"] = torch.stack([w[k] * v for k, v in terms.items()]).sum()
        return terms
