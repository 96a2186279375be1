"""Sampling grids: the clock values (1 -> 0) a sampler visits, as host floats.

Ladders are defined in the process-free noise scale sigma = sigma(t) / alpha(t) = exp(-lambda)
(diffusers' / EDM's "sigma") and mapped to each process's t through its log-SNR, so the same
ladder means the same noise levels on VPCosine, RectifiedFlow or DiscreteVP, and exponential
integrators (DPM-Solver++, UniPC) give the same samples on all three.

    uniform_grid    uniform in t (optionally shifted towards noise, SD3's shift); on VPCosine
                    this is uniform in cosine time, sigma = tan(pi tau / 2)
    log_snr_grid    one step from pure noise (t = 1) to sigma_max, then uniform in log sigma
                    down to sigma_min, then the last step to t = 0
    karras_grid     the same, with EDM's rho ladder: sigma^(1/rho) uniform (denser near sigma_min)

    log_snr_grid(steps=6):   t = 1 ──> sigma_max ─h─> . ─h─> . ─h─> sigma_min ──> t = 0
                             (first order,                         (returns x0_hat
                              x0_hat ~ mean)                         at sigma_min)

Why the ends (measured with bench/sampler_accuracy.py's exact denoiser of a mixture with modes
at radius 2 and width 0.15, i.e. data of O(1) scale; docs/samplers.md has the tables): a first-order step from pure noise to sigma_max = 10
costs <= 2e-4 RMSE with UniPC, whose corrector redoes it with the next model output at no extra
call, and 0.046 without a corrector (DPM-Solver++; 0.005 at sigma_max = 20, nothing at >= 80);
sigma_max = 10 beats 20, 40 and 80 for UniPC at 8-20 steps (DPM-Solver++ prefers 20 from ~15
steps on: the wider ladder then costs less than its jump). The last step
returns x0_hat(sigma_min), an error that grows like sigma_min^2 relative to the data's finest
scale and does not shrink with more steps: with sigma_min = 0.05 the ladder wins at 8-20 steps
and loses to `uniform_grid` beyond ~25 (pass a smaller sigma_min there). Uniform steps in log-SNR
equalise the local error h^{k+1} of exponential integrators.

diffusers' `use_lu_lambdas` / `use_karras_sigmas` are these ladders with sigma_max = sigma(t = 1)
and sigma_min = sigma(1 / N) (no separate first step); pass sigma_max >= sigma(1) (e.g.
math.inf on DiscreteVP) to get the ladder from t = 1 itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch

from mmgen.diffusion.process import Process

SIGMA_MIN, SIGMA_MAX = 0.05, 10.0  # defaults of the ladders (data scaled to unit std)


def uniform_grid(steps: int, shift: float = 1.0) -> list[float]:
    """`steps` + 1 clock values from 1 to 0, uniform in t, optionally shifted towards noise
    (SD3's t' = s t / (1 + (s - 1) t); shift > 1 spends more steps at high noise)."""
    _check_steps(steps)
    if shift <= 0:
        raise ValueError(f"grid shift must be positive, got {shift}")
    taus = [1.0 - i / steps for i in range(steps)] + [0.0]
    return [shift * t / (1.0 + (shift - 1.0) * t) for t in taus]


def check_grid(grid: Sequence[float]) -> list[float]:
    """A clock grid: host floats, strictly decreasing, within [0, 1], ending at 0."""
    grid = [float(g) for g in grid]
    if len(grid) < 2:
        raise ValueError(f"a grid needs at least 2 points, got {grid}")
    if not all(0.0 <= g <= 1.0 for g in grid):
        raise ValueError(f"grid values must lie in [0, 1], got {grid}")
    if any(b >= a for a, b in itertools.pairwise(grid)):
        raise ValueError(f"grid must be strictly decreasing, got {grid}")
    if grid[-1] != 0.0:
        raise ValueError(f"grid must end at 0 (clean), got {grid[-1]}")
    return grid


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def sigma_of_t(process: Process, t: float) -> float:
    """The noise scale sigma(t) / alpha(t) of a level (inf where alpha = 0)."""
    lam = process.log_snr(torch.tensor(float(t), dtype=torch.float64)).item()
    return math.exp(-lam)


def t_of_sigmas(process: Process, sigmas: Sequence[float]) -> list[float]:
    """Levels t of noise scales sigma = sigma(t) / alpha(t) (host floats, float64 maths)."""
    lam = -torch.log(torch.tensor([float(s) for s in sigmas], dtype=torch.float64))
    return process.t_of_log_snr(lam).tolist()


def _ladder_grid(
    process: Process,
    steps: int,
    sigma_min: float,
    sigma_max: float,
    spacing: Callable[[float, float, int], list[float]],
) -> list[float]:
    _check_steps(steps)
    if not (0 < sigma_min < sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    top = sigma_of_t(process, 1.0)
    if sigma_min >= top:
        raise ValueError(f"sigma_min={sigma_min} is not below the process's sigma at t = 1 ({top:.4g})")
    if steps == 1:
        return [1.0, 0.0]
    if sigma_max >= top and math.isinf(top):
        raise ValueError(f"sigma_max must be finite: {type(process).__name__} has alpha = 0 at t = 1")
    if sigma_max >= top:  # the ladder starts at t = 1 itself (diffusers' Karras / Lu schedules)
        sigmas = spacing(top, sigma_min, steps)
        ts = [1.0] + t_of_sigmas(process, sigmas[1:])
    else:  # one step from pure noise to sigma_max, then the ladder
        sigmas = spacing(sigma_max, sigma_min, steps - 1) if steps > 2 else [sigma_min]
        ts = [1.0] + t_of_sigmas(process, sigmas)
    return check_grid(ts + [0.0])


def _log_spacing(hi: float, lo: float, n: int) -> list[float]:
    if n == 1:
        return [lo]
    return [math.exp(math.log(hi) + (math.log(lo) - math.log(hi)) * i / (n - 1)) for i in range(n)]


def log_snr_grid(
    process: Process, steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX
) -> list[float]:
    """t = 1, then `steps` - 1 levels uniform in log-SNR from sigma_max to sigma_min, then 0."""
    return _ladder_grid(process, steps, sigma_min, sigma_max, _log_spacing)


def karras_grid(
    process: Process,
    steps: int,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = 7.0,
) -> list[float]:
    """Like `log_snr_grid` with EDM's ladder sigma_i^(1/rho) uniform (rho -> inf is log-uniform)."""
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")

    def spacing(hi: float, lo: float, n: int) -> list[float]:
        if n == 1:
            return [lo]
        a, b = hi ** (1.0 / rho), lo ** (1.0 / rho)
        return [(a + (b - a) * i / (n - 1)) ** rho for i in range(n)]

    return _ladder_grid(process, steps, sigma_min, sigma_max, spacing)


GRIDS = ("uniform", "log_snr", "karras")


def make_grid(kind: str, process: Process, steps: int, *, shift: float = 1.0, **ladder: float) -> list[float]:
    """A grid by name: "uniform" (takes `shift`), "log_snr" / "karras" (take sigma_min, sigma_max[, rho])."""
    if kind == "uniform":
        if ladder:
            raise ValueError(f"the uniform grid takes only `shift`, got {sorted(ladder)}")
        return uniform_grid(steps, shift)
    if shift != 1.0:
        raise ValueError(f"grid shift applies to the uniform grid only, not to {kind!r}")
    if kind == "log_snr":
        return log_snr_grid(process, steps, **ladder)
    if kind == "karras":
        return karras_grid(process, steps, **ladder)
    raise ValueError(f"unknown grid {kind!r}; choose from {GRIDS}")
