"""Residual vector quantizer (SoundStream / EnCodec RVQ) over a VAE's normalized latent frames.

    x [B, T, D] ─► codebook 0: nearest code of x            ─► q0,  r1 = x  - q0
                ─► codebook 1: nearest code of r1           ─► q1,  r2 = r1 - q1
                ─► ...  K codebooks; codes [B, K, T], x̂ = q0 + ... + q_{n-1} for any n <= K

Codebooks learn without gradients: k-means on the first batch, then exponential moving averages
of the vectors assigned to each code (van den Oord et al. 2017, appendix; EnCodec). A code whose
usage average falls below `dead_threshold` is restarted on a random vector of the current batch,
so no code stays unused. Quantizer dropout (SoundStream) updates a batch with only its first
n ~ U{1..K} codebooks, so every prefix of codebooks is a trained quantizer on its own: decoding
with the first n codes gives the best n-codebook approximation the model has (tests check the
round-trip error falls with n). The quantizer works on the latent cache (`mmgen cache`), so the
LM trains from the same files as the DiT and decodes through the same VAE decoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.core.pretrained import PretrainedMixin


def _kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator | None) -> torch.Tensor:
    """Plain k-means on x [N, D] (k-means++-free: random distinct starts, empty clusters re-seeded)."""
    n = x.shape[0]
    idx = torch.randperm(n, generator=generator)[:k] if n >= k else torch.randint(n, (k,), generator=generator)
    centres = x[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(1)  # [N]
        counts = torch.bincount(assign, minlength=k).to(x.dtype)  # [k]
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
        empty = int((~filled).sum())
        if empty:
            centres[~filled] = x[torch.randint(n, (empty,), generator=generator)]
    return centres


class VectorQuantizer(nn.Module):
    """One codebook of `size` codes of `dim`, EMA-updated."""

    codebook: torch.Tensor
    cluster_size: torch.Tensor
    embed_sum: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, dim: int, size: int, decay: float, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.size, self.decay, self.eps = dim, size, decay, eps
        self.register_buffer("codebook", torch.zeros(size, dim))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed_sum", torch.zeros(size, dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, D] -> nearest code index [N]."""
        dist = (x.pow(2).sum(1, keepdim=True) - 2 * x @ self.codebook.T + self.codebook.pow(2).sum(1)[None])  # [N, size]
        return dist.argmin(1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.codebook)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor, dead_threshold: float, generator: torch.Generator | None) -> int:
        """One EMA step on x [N, D] assigned to codes [N]; restarts dead codes. Returns how many."""
        onehot = F.one_hot(codes, self.size).to(x.dtype)  # [N, size]
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.T @ x, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n  # Laplace smoothing
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < dead_threshold
        num_dead = int(dead.sum())
        if num_dead:
            pick = torch.randint(x.shape[0], (num_dead,), generator=generator)
            self.codebook[dead] = x[pick]
            self.embed_sum[dead] = x[pick] * dead_threshold
            self.cluster_size[dead] = dead_threshold
        return num_dead


class ResidualVQ(PretrainedMixin, nn.Module):
    """K residual codebooks over latent frames of `dim` channels.

    Args:
        dim: channels of a latent frame (the VAE's latent channels; spatial latents are flattened).
        num_codebooks: K.
        codebook_size: codes per codebook (the LM's vocabulary per codebook is this + 1: the empty token).
        decay: EMA decay of the codebook statistics.
        kmeans_iters: k-means iterations that initialise each codebook on its first batch (0: random vectors).
        dead_threshold: a code whose usage EMA (vectors per batch) falls below this is restarted.
        dropout: quantizer dropout probability: a training batch uses only its first n ~ U{1..K}
            codebooks with this probability (SoundStream), else all K.
        rate_hz: latent frame rate (recorded for the LM: tokens per second of audio).
    """

    def __init__(
        self,
        dim: int,
        num_codebooks: int = 4,
        codebook_size: int = 256,
        decay: float = 0.95,
        kmeans_iters: int = 10,
        dead_threshold: float = 0.5,
        dropout: float = 0.5,
        rate_hz: float = 7.5,
    ) -> None:
        super().__init__()
        if dim < 1 or num_codebooks < 1 or codebook_size < 2:
            raise ValueError(f"ResidualVQ: dim, num_codebooks >= 1 and codebook_size >= 2, got {dim}, {num_codebooks}, {codebook_size}")
        if not 0.0 < decay < 1.0 or not 0.0 <= dropout <= 1.0 or dead_threshold < 0 or rate_hz <= 0:
            raise ValueError(
                f"ResidualVQ: decay in (0, 1), dropout in [0, 1], dead_threshold >= 0, rate_hz > 0; "
                f"got {decay}, {dropout}, {dead_threshold}, {rate_hz}"
            )
        self.dim, self.num_codebooks, self.codebook_size = dim, num_codebooks, codebook_size
        self.kmeans_iters, self.dead_threshold, self.dropout, self.rate_hz = kmeans_iters, dead_threshold, dropout, rate_hz
        self.layers = nn.ModuleList(VectorQuantizer(dim, codebook_size, decay) for _ in range(num_codebooks))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"ResidualVQ: latent frames of {self.dim} channels expected, got {list(x.shape)}")
        return x.reshape(-1, self.dim)

    def encode(self, x: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """latents [B, T, D] -> codes [B, n, T] (n = num_codebooks, default K)."""
        n = self._n(num_codebooks)
        B, T = x.shape[:2]
        residual = self._flat(x).float()
        codes = []
        for layer in self.layers[:n]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, 0).view(n, B, T).transpose(0, 1)  # [B, n, T]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n, T] (the first n <= K codebooks) -> latents [B, T, D]."""
        n = self._n(codes.shape[1])
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError(f"ResidualVQ.decode: codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]")
        out = sum(self.layers[k].decode(codes[:, k]) for k in range(n))  # [B, T, D]
        return out

    def _n(self, n: int | None) -> int:
        if n is None:
            return self.num_codebooks
        if not 1 <= n <= self.num_codebooks:
            raise ValueError(f"ResidualVQ: 1..{self.num_codebooks} codebooks, got {n}")
        return n

    @torch.no_grad()
    def fit_step(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, float]:
        """One training step on latents [..., D]: k-means init where needed, EMA updates, dead-code
        restarts, quantizer dropout. Returns the batch's relative squared error and restarts."""
        flat = self._flat(x).float()
        n = self.num_codebooks
        if self.dropout and torch.rand((), generator=generator) < self.dropout:
            n = int(torch.randint(1, self.num_codebooks + 1, (), generator=generator))
        residual, restarts = flat, 0
        for layer in self.layers[:n]:
            if not bool(layer.initialized):
                if self.kmeans_iters:
                    layer.codebook.copy_(_kmeans(residual, self.codebook_size, self.kmeans_iters, generator))
                else:
                    layer.codebook.copy_(residual[torch.randint(residual.shape[0], (self.codebook_size,), generator=generator)])
                layer.embed_sum.copy_(layer.codebook)
                layer.cluster_size.fill_(1.0)
                layer.initialized.fill_(True)
            c = layer.encode(residual)
            restarts += layer.update(residual, c, self.dead_threshold, generator)
            residual = residual - layer.decode(layer.encode(residual))
        rel = float(residual.pow(2).sum() / flat.pow(2).sum().clamp_min(1e-12))
        return {"relative_error": rel, "codebooks": float(n), "restarts": float(restarts)}

    @torch.no_grad()
    def usage(self, x: torch.Tensor) -> dict[str, list[float]]:
        """Per codebook on latents [..., D]: perplexity of the code histogram and share of codes used."""
        codes = self.encode(self._flat(x)[None])[0]  # [K, N]
        perplexity, used = [], []
        for k in range(self.num_codebooks):
            p = torch.bincount(codes[k], minlength=self.codebook_size).double()
            p = p / p.sum()
            entropy = -(p[p > 0] * p[p > 0].log()).sum()
            perplexity.append(float(entropy.exp()))
            used.append(float((p > 0).double().mean()))
        return {"perplexity": perplexity, "used": used}

    @torch.no_grad()
    def round_trip(self, x: torch.Tensor) -> list[float]:
        """Relative squared error ||x - x̂_n||² / ||x||² for n = 1..K codebooks on latents [B, T, D]."""
        x = x.float()
        codes = self.encode(x)
        denom = x.pow(2).sum().clamp_min(1e-12)
        return [float((x - self.decode(codes[:, :n])).pow(2).sum() / denom) for n in range(1, self.num_codebooks + 1)]

    @property
    def tokens_per_second(self) -> float:
        return self.rate_hz * self.num_codebooks

    def extra_repr(self) -> str:
        return f"dim={self.dim}, K={self.num_codebooks}, size={self.codebook_size}, bits/s={self.rate_hz * self.num_codebooks * math.log2(self.codebook_size):.0f}"
