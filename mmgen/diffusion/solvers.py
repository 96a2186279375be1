"""One solver step per token: pure elementwise functions of (x, x0_hat, eps_hat, s, t).

Every token carries its own pair of levels: s (now) and t (after the step), both [B, T]. A token
with s == t (GIVEN tokens at 0, EDIT tokens that have not joined yet) is returned unchanged, bit
for bit; all other tokens take the step. Nothing here branches on tensor values, so a step never
synchronises with the device and per-token levels cost nothing extra.

With e^{-h} = exp(lambda_s - lambda_t) = (alpha_s sigma_t) / (alpha_t sigma_s) (finite even at
t = 0, where lambda_t = +inf):

    DDIM(eta)    x_t = alpha_t x0 + sqrt(sigma_t^2 - c^2) eps + c z,  c = eta sigma_t sqrt(1 - e^{-2h})
                 (eta = 1 is ancestral DDPM: the posterior q(x_t | x_s, x0))
    Euler        x_t = x + (t - s) (alpha'(s) x0 + sigma'(s) eps)    (probability-flow ODE in t)
    Heun         Euler, then the trapezoid of the slopes at s and at the proposal's level t

The multistep solvers (DPM-Solver++(2M/3M), UniPC) live in `multistep.py`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmgen.diffusion.process import Process, expand_like

_TINY = 1e-12


def _coefs(process: Process, s: Tensor, t: Tensor, x: Tensor) -> tuple[Tensor, ...]:
    """alpha_s, sigma_s, alpha_t, sigma_t, e^{-h}, expanded to x's shape."""
    alpha_s, sigma_s = process.alpha_sigma(s)
    alpha_t, sigma_t = process.alpha_sigma(t)
    exp_neg_h = (alpha_s * sigma_t) / (alpha_t * sigma_s).clamp_min(_TINY)
    return tuple(expand_like(c, x) for c in (alpha_s, sigma_s, alpha_t, sigma_t, exp_neg_h))


def ddim_step(
    process: Process,
    x: Tensor,
    x0: Tensor,
    eps: Tensor,
    s: Tensor,
    t: Tensor,
    eta: float = 0.0,
    noise: Tensor | None = None,
) -> Tensor:
    """DDIM from levels s to t [B, T]; eta > 0 needs `noise` shaped like x."""
    _, _, alpha_t, sigma_t, exp_neg_h = _coefs(process, s, t, x)
    if eta == 0.0:
        new = alpha_t * x0 + sigma_t * eps
    else:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs `noise`")
        c = eta * sigma_t * torch.sqrt((1.0 - exp_neg_h.square()).clamp_min(0.0))
        new = alpha_t * x0 + torch.sqrt((sigma_t.square() - c.square()).clamp_min(0.0)) * eps + c * noise
    return torch.where(expand_like(s > t, x), new, x)


def euler_derivative(process: Process, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """dx/dt of the probability-flow ODE at levels t: alpha'(t) x0 + sigma'(t) eps."""
    d_alpha, d_sigma = (expand_like(c, x0) for c in process.alpha_sigma_derivative(t))
    return d_alpha * x0 + d_sigma * eps


def euler_step(
    process: Process, x: Tensor, x0: Tensor, eps: Tensor, s: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """Euler from s to t; returns (x_t, derivative at s) so Heun can reuse the derivative."""
    d = euler_derivative(process, x0, eps, s)
    new = x + expand_like(t - s, x) * d
    return torch.where(expand_like(s > t, x), new, x), d


def heun_correct(
    process: Process, x: Tensor, d_s: Tensor, x0_t: Tensor, eps_t: Tensor, s: Tensor, t: Tensor
) -> Tensor:
    """Heun's corrector: average the derivative at s with the one at the Euler proposal's level t."""
    d_t = euler_derivative(process, x0_t, eps_t, t)
    new = x + expand_like(t - s, x) * 0.5 * (d_s + d_t)
    return torch.where(expand_like(s > t, x), new, x)
