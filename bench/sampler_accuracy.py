"""Sampler accuracy vs NFE on a Gaussian mixture whose exact denoiser is known in closed form.

Data: x0 ~ sum_k pi_k N(mu_k, s^2 I) in d dims. For x_t = alpha x0 + sigma eps the posterior mean is

    E[x0 | x_t] = sum_k w_k(x_t) (mu_k + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha mu_k)),
    w_k ∝ pi_k N(x_t; alpha mu_k, (alpha^2 s^2 + sigma^2) I),

so every sampler runs with a perfect model and all error is the solver's. Two numbers per run:
RMSE to the exact probability-flow ODE solution from the same noise (a 2000-step Heun reference
in float64; its steps align with the 1000 knots of the discrete schedule) and the sliced
Wasserstein-2 distance to fresh true samples (with the data-vs-data floor, which is noisy: it is
dominated by how many points each mode gets). Rows compare our per-token solvers with diffusers'
schedulers on the same discrete schedule (they agree to float precision) and our continuous
processes on uniform grids.

    python bench/sampler_accuracy.py [--samples 2000 --dim 8]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from mmgen.diffusion import DiscreteVP, RectifiedFlow, VPCosine, sample_masked, uniform_grid

NFES = (5, 10, 20, 50)


class Mixture:
    def __init__(self, dim: int, k: int, s: float, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.mu = torch.randn(k, dim, generator=g, dtype=torch.float64)  # [K, d]
        self.mu = self.mu / self.mu.norm(dim=1, keepdim=True) * 2.0
        self.pi = torch.softmax(torch.randn(k, generator=g, dtype=torch.float64), 0)  # [K]
        self.s = s

    def sample(self, n: int, g: torch.Generator) -> torch.Tensor:
        comp = torch.multinomial(self.pi, n, replacement=True, generator=g)
        return self.mu[comp] + self.s * torch.randn(n, self.mu.shape[1], generator=g, dtype=torch.float64)

    def x0_hat(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x [..., d], alpha/sigma [..., 1] -> E[x0 | x_t] [..., d], computed in float64."""
        x, alpha, sigma = x.double(), alpha.double(), sigma.double()
        var = alpha**2 * self.s**2 + sigma**2  # [..., 1]
        diff = x[..., None, :] - alpha[..., None] * self.mu  # [..., K, d]
        logw = self.pi.log() - 0.5 * (diff**2).sum(-1) / var  # [..., K]
        w = torch.softmax(logw, -1)[..., None]  # [..., K, 1]
        comp = self.mu + (alpha * self.s**2 / var)[..., None] * diff  # [..., K, d]
        return (w * comp).sum(-2)


def exact_model(mix: Mixture, process):  # type: ignore[no-untyped-def]
    """model_fn(x, t) with the exact prediction in `process`'s target space."""

    def model(x, t, cond=None):  # type: ignore[no-untyped-def]
        out = {}
        for m, v in x.items():
            a, s = (c[..., None].double() for c in process.alpha_sigma(t[m].double()))
            x0 = mix.x0_hat(v, a, s)
            eps = (v.double() - a * x0) / s.clamp_min(1e-12)
            if process.prediction == "eps":
                p = eps
            elif process.prediction == "x0":
                p = x0
            else:
                p = (a * eps - s * x0) if process.is_vp else eps - x0
            out[m] = p.to(v.dtype)
        return out

    return model


def sliced_w2(x: torch.Tensor, y: torch.Tensor, projections: int = 256) -> float:
    g = torch.Generator().manual_seed(1)
    dirs = torch.randn(x.shape[1], projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    px, py = (x.double() @ dirs).sort(0).values, (y.double() @ dirs).sort(0).values
    return ((px - py) ** 2).mean().sqrt().item()


def ours(process, model, noise: torch.Tensor, grid: list[float], sampler: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    n = noise.shape[0]
    out = sample_masked(
        model,
        process,
        {"x": torch.ones(1, n, dtype=noise.dtype)},
        {"x": torch.zeros(1, *noise.shape, dtype=noise.dtype)},
        grid,
        sampler=sampler,
        noise={"x": noise[None]},
        progress=False,
    )
    return out["x"][0]


def theirs(scheduler, process, model, noise: torch.Tensor, steps: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    scheduler.set_timesteps(steps)
    t0 = process.t_of_timestep(int(scheduler.timesteps[0]))
    x = (process.alpha_sigma(torch.tensor(t0, dtype=torch.float64))[1] * noise)[None]  # as ours starts
    for k in scheduler.timesteps:
        lv = torch.full(x.shape[:2], process.t_of_timestep(int(k)), dtype=x.dtype)
        x = scheduler.step(model({"x": x}, {"x": lv})["x"], k, x).prev_sample
    return x[0]


def reference(process, model, noise: torch.Tensor, steps: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    grid = [1 - i / steps for i in range(steps)] + [0.0]
    return ours(process, model, noise, grid, "heun")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--components", type=int, default=4)
    parser.add_argument("--spread", type=float, default=0.15, help="std of each mixture component")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference-steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import diffusers  # test/bench-only dependency

    mix = Mixture(args.dim, args.components, args.spread)
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(args.samples, args.dim, generator=g, dtype=torch.float64)
    truth = mix.sample(args.samples, torch.Generator().manual_seed(3))
    floors = [
        sliced_w2(mix.sample(args.samples, torch.Generator().manual_seed(s)), truth) for s in range(4, 9)
    ]
    floor = sum(floors) / len(floors)  # finite-sample SW2 between two true sets: noisy (mode proportions)
    rows: list[tuple[str, dict[int, tuple[float, float]]]] = []
    begin = time.time()

    refs: dict = {}

    def add(name: str, process, run) -> None:  # type: ignore[no-untyped-def]
        model = exact_model(mix, process)
        if process not in refs:
            refs[process] = reference(process, model, noise, args.reference_steps)
        ref = refs[process]
        cells = {}
        for nfe in NFES:
            x = run(model, nfe)
            cells[nfe] = (((x - ref) ** 2).mean().sqrt().item(), sliced_w2(x, truth))
        rows.append((name, cells))

    dvp = DiscreteVP(prediction="eps")  # linear betas, 1000 steps
    add(
        "DDIM, ours (discrete linear, trailing)",
        dvp,
        lambda m, n: ours(
            dvp, m, noise, dvp.timesteps_to_grid(_ddim(diffusers, n).timesteps.tolist()), "ddim"
        ),
    )
    add("DDIM, diffusers (same)", dvp, lambda m, n: theirs(_ddim(diffusers, n), dvp, m, noise, n))
    add(
        "DPM++(2M), ours (discrete linear, linspace)",
        dvp,
        lambda m, n: ours(
            dvp, m, noise, dvp.timesteps_to_grid(_dpm(diffusers, n).timesteps.tolist()), "dpmpp2m"
        ),
    )
    add("DPM++(2M), diffusers (same)", dvp, lambda m, n: theirs(_dpm(diffusers, n), dvp, m, noise, n))
    cos = VPCosine(prediction="v")
    add("DDIM, ours (VP-cosine, uniform t)", cos, lambda m, n: ours(cos, m, noise, uniform_grid(n), "ddim"))
    add(
        "DPM++(2M), ours (VP-cosine, uniform t)",
        cos,
        lambda m, n: ours(cos, m, noise, uniform_grid(n), "dpmpp2m"),
    )
    flow = RectifiedFlow(prediction="v")
    add("Euler, ours (rectified flow)", flow, lambda m, n: ours(flow, m, noise, uniform_grid(n), "euler"))
    add(
        "Heun, ours (rectified flow; NFE = 2 steps - 1)",
        flow,
        lambda m, n: ours(flow, m, noise, uniform_grid((n + 1) // 2), "heun"),
    )
    add(
        "DPM++(2M), ours (rectified flow)",
        flow,
        lambda m, n: ours(flow, m, noise, uniform_grid(n), "dpmpp2m"),
    )

    print(
        f"Gaussian mixture: d = {args.dim}, K = {args.components}, component std {args.spread}, "
        f"{args.samples} samples; exact denoiser; float64\n"
    )
    print(
        "RMSE to the exact ODE solution from the same noise / sliced W2 to the data "
        f"(data-vs-data floor, mean of 5 draws: {floor:.4f}, range {min(floors):.4f}..{max(floors):.4f})\n"
    )
    print("| sampler | " + " | ".join(f"NFE {n}" for n in NFES) + " |")
    print("|---|" + "---|" * len(NFES))
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(f"{r:.4f} / {w:.4f}" for r, w in (cells[n] for n in NFES)) + " |")
    print(f"\n({time.time() - begin:.0f} s)")


def _ddim(diffusers, steps: int):  # type: ignore[no-untyped-def]
    s = diffusers.DDIMScheduler(clip_sample=False, timestep_spacing="trailing")
    s.set_timesteps(steps)
    return s


def _dpm(diffusers, steps: int):  # type: ignore[no-untyped-def]
    s = diffusers.DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)
    s.set_timesteps(steps)
    return s


if __name__ == "__main__":
    main()
