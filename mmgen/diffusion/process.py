"""Forward processes: x_t = alpha(t) * x0 + sigma(t) * eps, t in [0, 1], 0 = clean, 1 = noise.

Three processes share one interface, so every sampler and the loss work with any of them:

    VPCosine      alpha = cos(pi t / 2), sigma = sin(pi t / 2)            (Stable Audio, v-target)
    RectifiedFlow alpha = 1 - t,         sigma = t                         (SD3 / flow matching)
    DiscreteVP    alpha^2 = alphas_cumprod of a 1000-step beta schedule     (diffusers DDPM/DDIM)

Prediction targets ("what the model outputs"):

    "eps"  eps
    "x0"   x0
    "v"    VP processes: v = alpha * eps - sigma * x0   (Salimans & Ho; diffusers "v_prediction")
           RectifiedFlow: v = eps - x0 = dx_t/dt        (diffusers "flow_prediction")

`to_x0_eps(pred, x_t, t)` converts any prediction back to (x0_hat, eps_hat); samplers only ever
see that pair, so they are parameterisation-agnostic.

DiscreteVP and diffusers' integer timesteps. With N train steps and cumulative products
abar[0..N-1], diffusers timestep k has noise level t = (k + 1) / N, and t = 0 is clean
(abar = 1, diffusers' `set_alpha_to_one`). Between knots log(abar) is linear in t:

    t       0      1/N       2/N      ...  (k+1)/N   ...  1
    abar    1    abar[0]   abar[1]    ...  abar[k]   ...  abar[N-1]

so a diffusers schedule [999, 899, ..., 99] is the grid [1.0, 0.9, ..., 0.1, 0.0] here
(`timesteps_to_grid`). RectifiedFlow's t is diffusers' flow sigma (timestep = 1000 * sigma).

Loss weighting (`loss_weight`). "uniform" (default) weights the target-space MSE by 1: the
v-loss on VPCosine (Stable Audio, Imagen Video; its implied x0 weight 1 + SNR never blows up
near t = 0), eps-MSE on DiscreteVP (DDPM's "simple" loss) and the velocity MSE of rectified flow
(SD3). "min_snr" (Hang et al. 2023) reweights any target so its implied x0-space weight is
min(SNR, gamma): target-MSE * min(SNR, gamma) / w_x0(target), with w_x0 = SNR for eps,
1 / sigma^2 for both v targets and 1 for x0.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

PREDICTIONS = ("v", "eps", "x0")
WEIGHTINGS = ("uniform", "min_snr")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
_TINY = 1e-12  # floor for divisions by alpha or sigma at the ends of the schedule


def expand_like(t: Tensor, x: Tensor) -> Tensor:
    """Levels [B, T] -> [B, T, 1, ...] so they broadcast over a latent [B, T, C] / [B, T, h, w, C]."""
    if x.shape[: t.ndim] != t.shape:
        raise ValueError(f"levels of shape {tuple(t.shape)} do not match latents of shape {tuple(x.shape)}")
    return t.reshape(*t.shape, *([1] * (x.ndim - t.ndim)))


def check_unit_interval(t: Tensor, what: str) -> None:
    """Raise if a level lies outside [0, 1]. Syncs only on CPU; on accelerators it asserts asynchronously."""
    bad = (t < 0) | (t > 1) | torch.isnan(t)
    if t.device.type == "cpu":
        if bool(bad.any()):
            raise ValueError(
                f"{what}: noise levels must lie in [0, 1], got min {t.min():.4g}, max {t.max():.4g}"
            )
    else:
        torch._assert_async(~bad.any(), f"{what}: noise levels must lie in [0, 1]")


@dataclass(frozen=True)
class Process(abc.ABC):
    """Base of all processes: subclasses define `alpha_sigma` and `alpha_sigma_derivative`.

    `prediction` has no default: it must say what the model was trained to output ("v", "eps"
    or "x0"); a wrong one samples garbage without any error.
    """

    prediction: str
    weighting: str = "uniform"
    min_snr_gamma: float = 5.0

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(
                f"{type(self).__name__}.prediction must be one of {PREDICTIONS}, got {self.prediction!r}"
            )
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"{type(self).__name__}.weighting must be one of {WEIGHTINGS}, got {self.weighting!r}"
            )
        if not (self.min_snr_gamma > 0 and math.isfinite(self.min_snr_gamma)):
            raise ValueError(
                f"{type(self).__name__}.min_snr_gamma must be positive, got {self.min_snr_gamma}"
            )

    # -- schedule -------------------------------------------------------------------------------
    is_vp: bool = field(default=True, init=False, repr=False)

    @abc.abstractmethod
    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(alpha(t), sigma(t)), elementwise."""

    @abc.abstractmethod
    def alpha_sigma_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(d alpha / dt, d sigma / dt), elementwise (the probability-flow ODE of Euler/Heun)."""

    def log_snr(self, t: Tensor) -> Tensor:
        """lambda = log(alpha / sigma): +inf at t = 0, decreasing in t."""
        alpha, sigma = self.alpha_sigma(t)
        return torch.log(alpha) - torch.log(sigma)

    @abc.abstractmethod
    def t_of_log_snr(self, lam: Tensor) -> Tensor:
        """The level t with log_snr(t) = lam (the inverse of `log_snr`, clamped to [0, 1])."""

    # -- forward process and targets ------------------------------------------------------------
    def add_noise(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """x_t for levels t [B, T]; tokens at t = 0 are returned bit-identical to x0."""
        alpha, sigma = (expand_like(a, x0) for a in self.alpha_sigma(t))
        return torch.where(expand_like(t, x0) == 0, x0, alpha * x0 + sigma * eps)

    def target(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """What the model is trained to output at levels t [B, T]."""
        if self.prediction == "eps":
            return eps
        if self.prediction == "x0":
            return x0
        if not self.is_vp:
            return eps - x0
        alpha, sigma = (expand_like(a, x0) for a in self.alpha_sigma(t))
        return alpha * eps - sigma * x0

    def to_x0_eps(self, pred: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Model output -> (x0_hat, eps_hat) at levels t [B, T] (float32 or wider)."""
        alpha, sigma = (expand_like(a, x_t) for a in self.alpha_sigma(t))
        pred = pred.to(x_t.dtype)
        if self.prediction == "eps":
            return (x_t - sigma * pred) / alpha.clamp_min(_TINY), pred
        if self.prediction == "x0":
            return pred, (x_t - alpha * pred) / sigma.clamp_min(_TINY)
        if self.is_vp:  # valid because alpha^2 + sigma^2 = 1
            return alpha * x_t - sigma * pred, sigma * x_t + alpha * pred
        # flow: x_t = (1 - t) x0 + t eps and v = eps - x0
        return x_t - sigma * pred, x_t + alpha * pred

    def loss_weight(self, t: Tensor) -> Tensor:
        """Weight of each token's target-space MSE at levels t (see the module docstring)."""
        if self.weighting == "uniform":
            return torch.ones_like(t)
        alpha, sigma = self.alpha_sigma(t)
        sigma2 = sigma.square().clamp_min(_TINY)
        snr = alpha.square() / sigma2
        w_x0 = {"eps": snr, "x0": torch.ones_like(t), "v": 1.0 / sigma2}[self.prediction]
        return torch.minimum(snr, torch.full_like(snr, self.min_snr_gamma)) / w_x0


@dataclass(frozen=True)
class VPCosine(Process):
    """alpha = cos(pi t / 2), sigma = sin(pi t / 2): exactly (1, 0) at t = 0 and (0, 1) at t = 1."""

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        half_pi = 0.5 * math.pi
        return torch.sin(half_pi * (1.0 - t)), torch.sin(half_pi * t)

    def alpha_sigma_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        alpha, sigma = self.alpha_sigma(t)
        return -0.5 * math.pi * sigma, 0.5 * math.pi * alpha

    def t_of_log_snr(self, lam: Tensor) -> Tensor:
        return torch.atan(torch.exp(-lam)) * (2.0 / math.pi)  # tan(pi t / 2) = sigma / alpha


@dataclass(frozen=True)
class RectifiedFlow(Process):
    """x_t = (1 - t) x0 + t eps; the "v" target is the velocity eps - x0."""

    is_vp: bool = field(default=False, init=False, repr=False)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return 1.0 - t, t

    def alpha_sigma_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return torch.full_like(t, -1.0), torch.ones_like(t)

    def t_of_log_snr(self, lam: Tensor) -> Tensor:
        return torch.sigmoid(-lam)  # (1 - t) / t = e^lambda


def discrete_betas(schedule: str, num_train_timesteps: int, beta_start: float, beta_end: float) -> Tensor:
    """The float32 beta tables diffusers builds (so cumulative products agree bit for bit)."""
    n = num_train_timesteps
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, n, dtype=torch.float32)
    if schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float32) ** 2

    # squaredcos_cap_v2 (Nichol & Dhariwal): abar(s) = cos((s + 0.008) / 1.008 * pi / 2)^2, beta <= 0.999
    def abar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1.0 - abar((i + 1) / n) / abar(i / n), 0.999) for i in range(n)]
    return torch.tensor(betas, dtype=torch.float32)


@dataclass(frozen=True)
class DiscreteVP(Process):
    """A VP process on a discrete beta schedule (as diffusers), made continuous in t.

    Knot k + 1 (t = (k + 1) / N) carries diffusers' alphas_cumprod[k]; log(abar) is linear
    between knots and 0 at t = 0. diffusers' schedulers default to prediction "eps".
    """

    beta_schedule: str = "linear"
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    _log_abar: Tensor = field(init=False, repr=False, compare=False)
    _cache: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(
                f"DiscreteVP.beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}"
            )
        if self.num_train_timesteps < 2:
            raise ValueError(f"DiscreteVP.num_train_timesteps must be >= 2, got {self.num_train_timesteps}")
        if not (0 < self.beta_start < 1 and 0 < self.beta_end < 1):
            raise ValueError(f"DiscreteVP betas must lie in (0, 1), got {self.beta_start}, {self.beta_end}")
        betas = discrete_betas(self.beta_schedule, self.num_train_timesteps, self.beta_start, self.beta_end)
        abar = torch.cumprod(1.0 - betas, dim=0)  # float32, as diffusers
        log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), abar.double().log()])  # [N + 1] knots
        object.__setattr__(self, "_log_abar", log_abar)
        object.__setattr__(self, "_cache", {})

    @property
    def alphas_cumprod(self) -> Tensor:
        """diffusers' alphas_cumprod (float32): abar at timesteps 0..N-1."""
        return self._log_abar[1:].exp().float()

    def _table(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        key = (device, dtype)
        if key not in self._cache:
            self._cache[key] = self._log_abar.to(device=device, dtype=dtype)
        return self._cache[key]

    def _interp(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """log(abar) at t and its slope d log(abar) / dt (piecewise linear over the knots)."""
        n = self.num_train_timesteps
        table = self._table(t.device, t.dtype)
        pos = t * n
        i0 = pos.floor().long().clamp(0, n - 1)
        frac = pos - i0.to(t.dtype)
        lo, hi = table[i0], table[i0 + 1]
        return lo + frac * (hi - lo), (hi - lo) * n

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        log_abar, _ = self._interp(t)
        return torch.exp(0.5 * log_abar), torch.sqrt(-torch.expm1(log_abar)).abs()  # abs: no -0.0

    def alpha_sigma_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        _, slope = self._interp(t)
        alpha, sigma = self.alpha_sigma(t)
        return 0.5 * alpha * slope, -0.5 * alpha.square() * slope / sigma.clamp_min(_TINY)

    def t_of_log_snr(self, lam: Tensor) -> Tensor:
        """Invert the piecewise-linear log(abar): abar = sigmoid(2 lambda); beyond t = 1, t = 1."""
        n = self.num_train_timesteps
        falling = -self._table(lam.device, lam.dtype)  # -log(abar) at the knots, increasing from 0
        target = F.softplus(-2.0 * lam)  # -log(sigmoid(2 lambda))
        i0 = (torch.searchsorted(falling, target.contiguous()) - 1).clamp(0, n - 1)
        lo, hi = falling[i0], falling[i0 + 1]
        frac = ((target - lo) / (hi - lo)).clamp(0.0, 1.0)
        return (i0.to(lam.dtype) + frac) / n

    def t_of_timestep(self, timestep: float) -> float:
        """diffusers' integer timestep k -> level t = (k + 1) / N."""
        return (float(timestep) + 1.0) / self.num_train_timesteps

    def timesteps_to_grid(self, timesteps) -> list[float]:  # type: ignore[no-untyped-def]
        """A diffusers timestep schedule (descending ints) -> our clock grid, ending at t = 0."""
        return [self.t_of_timestep(k) for k in list(timesteps)] + [0.0]
