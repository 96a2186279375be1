"""Multistep exponential integrators per token: DPM-Solver++(kM) and UniPC, orders 1 to 3.

Both integrate the probability-flow ODE in log-SNR lambda with data prediction (x0_hat), reusing
the x0_hat of earlier steps instead of extra model calls. Every token keeps its own history, so
each token has its own order: a token that joined late (an EDIT token) or that starts at the
grid's first level has no history yet and steps first order, then climbs one order per step.

    step i:    levels s_{i-2}   s_{i-1}    s_i ------> t = s_{i+1}
    history:   m_{i-2}          m_{i-1}    m_i = x0_hat(x_i, s_i)      newest first in History
    depth:     how many consecutive earlier steps the token moved: entry j is usable iff depth > j

Every update is a linear combination with per-token coefficients ([B, T], computed from the
levels only, so no host sync and no branching on tensor values):

    x_t = c_x x + c_0 m_i + c_1 m_{i-1} + c_2 m_{i-2}        (+ c_new m_{i+1} in UniPC's corrector)

DPM-Solver++(kM) (Lu et al. 2022, the multistep form of diffusers' DPMSolverMultistepScheduler,
`algorithm_type="dpmsolver++"`, midpoint 2M), with h = lambda_t - lambda_s and r_j = h_j / h:

    1M  x_t = (sigma_t / sigma_s) x + alpha_t (1 - e^{-h}) m_i                           (DDIM)
    2M  ... + 0.5 alpha_t (1 - e^{-h}) D1,            D1 = (m_i - m_{i-1}) / r_0
    3M  ... + alpha_t (1 - (1 - e^{-h}) / h) D1 - alpha_t ((e^{-h} - 1 + h) / h^2 - 1/2) D2
        with D1, D2 the first and second divided differences of the last three x0_hat

UniPC (Zhao et al. 2023, diffusers' UniPCMultistepScheduler with predict_x0): the predictor UniP-k
is a k-th order multistep update; the corrector UniC, applied when the next model output
m_{i+1} = x0_hat(x_{i+1}) arrives, recomputes x_{i+1} from x_i with m_{i+1} included, which raises
the order by one at no extra model call (the next step then starts from the corrected sample).
B(h) = e^{-h} - 1 for data prediction (diffusers' default "bh2"; "bh1", B(h) = h, is not offered:
it was never more accurate on bench/sampler_accuracy.py and is infinite for a step that starts at
alpha = 0, i.e. every VPCosine / flow run from t = 1); the weights rho solve a small Vandermonde
system in the ratios r_j (closed form here, per token).

Orders are lowered at the end as diffusers does: the step to t = 0 is always first order (h is
infinite there; its result is x0_hat); DPM-Solver++(3M) takes at most second order on the step
before it when the run has fewer than 15 steps; UniPC never exceeds the number of steps left.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmgen.diffusion.process import Process, expand_like

KINDS = ("dpmpp", "unipc")
MAX_ORDER = 3
_TINY = 1e-12


@dataclass(frozen=True)
class History:
    """What a multistep solver remembers per token from earlier steps (newest first)."""

    x0: tuple[Tensor, ...]  # x0_hat at the start level of each earlier step, like x
    level: tuple[Tensor, ...]  # those start levels, [B, T]
    depth: Tensor  # [B, T] int64: consecutive earlier steps the token moved (capped at len(x0))
    x_start: Tensor | None = None  # UniPC: the (corrected) sample the previous step started from
    order: Tensor | None = None  # UniPC: [B, T] int64, the predictor order of the previous step


def _combine(terms: list[tuple[Tensor, Tensor]], like: Tensor) -> Tensor:
    """sum_j c_j [B, T] * v_j [B, T, ...]."""
    out = expand_like(terms[0][0], like) * terms[0][1]
    for c, v in terms[1:]:
        out = out + expand_like(c, v) * v
    return out


def _select(order: Tensor, options: list[list[Tensor]]) -> list[Tensor]:
    """Per token, the coefficient list of its order (options[k - 1] for order k; lists padded with 0)."""
    n = max(len(o) for o in options)
    padded = [o + [torch.zeros_like(o[0])] * (n - len(o)) for o in options]
    out = padded[0]
    for k, coefs in enumerate(padded[1:], start=2):
        out = [torch.where(order == k, c, d) for c, d in zip(coefs, out, strict=True)]
    return out


def _vandermonde_solve(nodes: list[Tensor], rhs: list[Tensor]) -> list[Tensor]:
    """rho with sum_j rho_j nodes_j^i = rhs_i (i < n), elementwise: rho_j = <Lagrange basis j, rhs>."""
    out = []
    for j, xj in enumerate(nodes):
        poly = [torch.ones_like(xj)]  # coefficients of prod_{k != j} (x - x_k), lowest power first
        denom = torch.ones_like(xj)
        for k, xk in enumerate(nodes):
            if k == j:
                continue
            poly = [
                (poly[i - 1] if i > 0 else 0.0) - (xk * poly[i] if i < len(poly) else 0.0)
                for i in range(len(poly) + 1)
            ]
            denom = denom * (xj - xk)
        out.append(sum(p * b for p, b in zip(poly, rhs, strict=True)) / denom)
    return out


def _unipc_rho(inv_r: list[Tensor], b: list[Tensor], with_one: bool) -> list[Tensor]:
    """UniPC's weights rho for the nodes r_j = 1 / inv_r_j (and the node 1 for the corrector).

    A history level at alpha = 0 (lambda = -inf, the first step of a VPCosine / flow run from
    t = 1) is an infinite node, inv_r = 0; only the oldest node can be one. Its weight times 1 / r
    vanishes and the other weights solve the system without it (the limit r -> -inf)."""
    ones = [torch.ones_like(b[0])] if with_one else []
    n = len(inv_r) + len(ones)
    safe = [torch.where(ir == 0, torch.full_like(ir, -1.0 - j), ir) for j, ir in enumerate(inv_r)]
    full = _vandermonde_solve([1.0 / ir for ir in safe] + ones, b[:n])
    if not inv_r or n == 1:
        return full
    reduced = _vandermonde_solve([1.0 / ir for ir in safe[:-1]] + ones, b[: n - 1])
    reduced.insert(len(inv_r) - 1, torch.zeros_like(b[0]))  # the dropped node's weight
    infinite = inv_r[-1] == 0
    return [torch.where(infinite, r, f) for r, f in zip(reduced, full, strict=True)]


def _unipc_b(h: Tensor, order: int) -> tuple[Tensor, Tensor, list[Tensor]]:
    """(h phi_1(-h) = e^{-h} - 1, B(h) = e^{-h} - 1 ("bh2"), [b_1 .. b_order]) for data prediction."""
    hh = -h
    h_phi_1 = torch.expm1(hh)
    big_b = h_phi_1
    h_phi_k = h_phi_1 / hh - 1.0
    b, factorial = [], 1
    for i in range(1, order + 1):
        b.append(h_phi_k * factorial / big_b)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1.0 / factorial
    return h_phi_1, big_b, b


@dataclass(frozen=True)
class Multistep:
    """A multistep solver: `kind` "dpmpp" (DPM-Solver++) or "unipc" (bh2), `order` 1-3."""

    kind: str
    order: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Multistep.kind must be one of {KINDS}, got {self.kind!r}")
        if not 1 <= self.order <= MAX_ORDER:
            raise ValueError(f"Multistep.order must be 1..{MAX_ORDER}, got {self.order}")

    def order_cap(self, step: int, steps: int) -> int:
        """The highest order allowed at `step` (0-based) of `steps`, as diffusers lowers it at the end."""
        if self.kind == "unipc":
            return min(self.order, steps - step)
        if step == steps - 2 and steps < 15:
            return min(self.order, 2)
        return self.order

    def step(
        self,
        process: Process,
        x: Tensor,
        x0: Tensor,
        s: Tensor,
        t: Tensor,
        history: History | None,
        cap: int,
    ) -> tuple[Tensor, History]:
        """One step from levels s to t [B, T] given x0_hat at (x, s); returns (x_t, new history)."""
        moves = s > t
        depth = history.depth if history is not None else torch.zeros_like(s, dtype=torch.long)
        if self.kind == "unipc" and history is not None:
            x = self._correct(process, x, x0, s, history)
        order = torch.clamp(depth + 1, max=min(cap, self.order))
        order = torch.where(t > 0, order, torch.ones_like(order))  # the step to t = 0 is first order
        past = history.x0 if history is not None else ()
        levels = history.level if history is not None else ()
        if self.kind == "dpmpp":
            coefs = self._dpmpp_coefs(process, s, t, levels, order)
        else:
            coefs = self._unip_coefs(process, s, t, levels, order)
        new = _combine([(coefs[0], x), (coefs[1], x0), *zip(coefs[2:], past, strict=False)], x)
        out = torch.where(expand_like(moves, x), new, x)
        keep = self.order if self.kind == "unipc" else self.order - 1  # entries the next step may read
        new_history = History(
            x0=((x0,) + past)[:keep],
            level=((s,) + levels)[:keep],
            depth=torch.where(moves, torch.clamp(depth + 1, max=keep), torch.zeros_like(depth)),
            x_start=x if self.kind == "unipc" else None,
            order=order if self.kind == "unipc" else None,
        )
        return out, new_history

    # -- DPM-Solver++ ---------------------------------------------------------------------------
    def _dpmpp_coefs(
        self, process: Process, s: Tensor, t: Tensor, levels: tuple[Tensor, ...], order: Tensor
    ) -> list[Tensor]:
        """[c_x, c_0, c_1, ...] of x, m_i, m_{i-1}, ... per token."""
        alpha_s, sigma_s = process.alpha_sigma(s)
        alpha_t, sigma_t = process.alpha_sigma(t)
        exp_neg_h = (alpha_s * sigma_t) / (alpha_t * sigma_s).clamp_min(_TINY)  # 0 at t = 0
        c_x = sigma_t / sigma_s.clamp_min(_TINY)
        a = alpha_t * (1.0 - exp_neg_h)
        options = [[c_x, a]]
        if self.order >= 2 and levels:
            lam_s = process.log_snr(s)
            ok2 = order >= 2
            h = torch.where(ok2, process.log_snr(t) - lam_s, torch.ones_like(s))
            lam_1 = process.log_snr(levels[0])
            inv_r0 = h / torch.where(ok2, lam_s - lam_1, torch.ones_like(s))  # 0 after a start at alpha = 0
            options.append([c_x, a + 0.5 * a * inv_r0, -0.5 * a * inv_r0])
            if self.order >= 3 and len(levels) >= 2:
                ok3 = order >= 3
                r0 = 1.0 / torch.where(ok3, inv_r0, torch.ones_like(s))
                inv_r1 = h / torch.where(ok3, lam_1 - process.log_snr(levels[1]), torch.ones_like(s))
                k = inv_r1 / (1.0 + r0 * inv_r1)  # 1 / (r0 + r1), 0 when r1 is infinite
                w = r0 * k  # r0 / (r0 + r1)
                em1 = torch.expm1(-h)  # e^{-h} - 1
                p = alpha_t * (em1 / h + 1.0)
                q = alpha_t * ((em1 + h) / h.square() - 0.5)
                a0 = p * (1.0 + w) - q * k  # weight of D1_0 = (m_i - m_{i-1}) / r0
                a1 = q * k - p * w  # weight of D1_1 = (m_{i-1} - m_{i-2}) / r1
                options.append([c_x, a + a0 / r0, a1 * inv_r1 - a0 / r0, -a1 * inv_r1])
        return _select(order, options)

    # -- UniPC ------------------------------------------------------------------------------------
    def _unip_coefs(
        self, process: Process, s: Tensor, t: Tensor, levels: tuple[Tensor, ...], order: Tensor
    ) -> list[Tensor]:
        """Predictor UniP: [c_x, c_0, c_1, ...] of (corrected) x, m_i, m_{i-1}, ... per token."""
        alpha_s, sigma_s = process.alpha_sigma(s)
        alpha_t, sigma_t = process.alpha_sigma(t)
        exp_neg_h = (alpha_s * sigma_t) / (alpha_t * sigma_s).clamp_min(_TINY)
        c_x = sigma_t / sigma_s.clamp_min(_TINY)
        options = [[c_x, alpha_t * (1.0 - exp_neg_h)]]  # -alpha_t h phi_1, finite at t = 0
        top = min(self.order, len(levels) + 1)
        if top >= 2:
            lam_s = process.log_snr(s)
            high = order >= 2
            h = torch.where(high, process.log_snr(t) - lam_s, torch.ones_like(s))
            h_phi_1, big_b, b = _unipc_b(h, top)
            inv_r = [  # 1 / r_j, r_j = (lambda_{s_{i-j}} - lambda_s) / h < 0; placeholders where unused
                torch.where(
                    order > j, h / (process.log_snr(levels[j - 1]) - lam_s), torch.full_like(s, -1.0 / j)
                )
                for j in range(1, top)
            ]
            base = -alpha_t * h_phi_1
            for k in range(2, top + 1):
                if k == 2:
                    rho = [torch.full_like(s, 0.5)]  # diffusers' simplification for UniP-2
                else:
                    rho = _unipc_rho(inv_r[: k - 1], b, with_one=False)
                # x_t = base_terms - alpha_t B sum_j rho_j (m_{i-j} - m_i) / r_j
                w = [-alpha_t * big_b * rj * ir for rj, ir in zip(rho, inv_r, strict=False)]
                options.append([c_x, base - sum(w), *w])
        return _select(order, options)

    def _correct(self, process: Process, x: Tensor, x0: Tensor, s: Tensor, history: History) -> Tensor:
        """UniC: recompute x_i from the previous step's start with m_i = x0 included."""
        if history.x_start is None or history.order is None:
            raise ValueError("UniPC history lacks the previous start sample")
        prev = history.level[0]
        alpha_s, sigma_s = process.alpha_sigma(s)
        _, sigma_p = process.alpha_sigma(prev)
        lam_p = process.log_snr(prev)
        use = history.depth >= 1
        order = torch.where(use, history.order, torch.ones_like(history.order))
        h = torch.where(use, process.log_snr(s) - lam_p, torch.ones_like(s))
        top = int(min(self.order, len(history.x0)))
        h_phi_1, big_b, b = _unipc_b(h, top)
        c_x = sigma_s / sigma_p.clamp_min(_TINY)
        base = -alpha_s * h_phi_1
        # order 1: rho_c = 1/2 on (m_new - m_prev) (diffusers' simplification)
        half = -alpha_s * big_b * 0.5
        options = [[c_x, base - half, half]]  # coefficients of x_start, m_prev, m_new, m_{prev-1}, ...
        if top >= 2:
            inv_r = [
                torch.where(
                    history.depth > j,
                    h / (process.log_snr(history.level[j]) - lam_p),
                    torch.full_like(s, -1.0 / j),
                )
                for j in range(1, top)
            ]
            for k in range(2, top + 1):
                rho = _unipc_rho(inv_r[: k - 1], b, with_one=True)
                w = [-alpha_s * big_b * rj * ir for rj, ir in zip(rho[:-1], inv_r, strict=False)]
                w_new = -alpha_s * big_b * rho[-1]
                options.append([c_x, base - sum(w) - w_new, w_new, *w])
        coefs = _select(order, options)
        terms = [(coefs[0], history.x_start), (coefs[1], history.x0[0]), (coefs[2], x0)]
        terms += list(zip(coefs[3:], history.x0[1:], strict=False))
        corrected = _combine(terms, x)
        return torch.where(expand_like(use, x), corrected, x)


MULTISTEP = {  # sampler name -> solver
    "dpmpp2m": Multistep("dpmpp", 2),
    "dpmpp3m": Multistep("dpmpp", 3),
    "unipc2": Multistep("unipc", 2),
    "unipc3": Multistep("unipc", 3),
}
