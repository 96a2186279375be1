"""Sampler accuracy vs NFE on a Gaussian mixture whose exact denoiser is known in closed form.

Data: x0 ~ sum_k pi_k N(mu_k, s^2 I) in d dims. For x_t = alpha x0 + sigma eps the posterior mean is

    E[x0 | x_t] = sum_k w_k(x_t) (mu_k + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha mu_k)),
    w_k ∝ pi_k N(x_t; alpha mu_k, (alpha^2 s^2 + sigma^2) I),

so every sampler runs with a perfect model and all error is the solver's. Per cell: RMSE to the
exact probability-flow ODE solution from the same noise (a 2000-step Heun reference in float64;
its steps align with the 1000 knots of the discrete schedule), the sliced Wasserstein-2 distance
to fresh true samples, and the mode flips (samples that end nearest a different mode than the
reference; with modes 2.8 apart one flip alone adds ~0.02 to the RMSE of 2000 samples, so at
>= 20 NFE the RMSE mostly counts flips). Cells are means over `--mixtures` x `--noises` draws.

Anchors: diffusers' DPMSolverMultistepScheduler (DPM++(2M), its default) and
UniPCMultistepScheduler (UniPC-2, bh2, its default) on the discrete linear-beta eps schedule with
their default timestep spacing. The last tables give error ratios against DPM++(2M): the best of
our rows at each NFE, and fixed recommended settings (docs/samplers.md).

    python bench/sampler_accuracy.py [--samples 2000 --dim 8 --mixtures 2 --noises 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch

from mmgen.diffusion import (
    DiscreteVP,
    RectifiedFlow,
    VPCosine,
    karras_grid,
    log_snr_grid,
    sample_masked,
    uniform_grid,
)

NFES = (5, 10, 20, 50)
ANCHOR, ANCHOR2 = "DPM++(2M), diffusers (discrete, linspace)", "UniPC-2, diffusers (discrete, linspace)"
RECOMMENDED = (  # (label, row) reported as fixed settings in the ratio table
    ("unipc2 + log_snr grid, VP-cosine", "UniPC-2, ours (VP-cosine, log_snr grid)"),
    ("unipc3 + log_snr grid, VP-cosine", "UniPC-3, ours (VP-cosine, log_snr grid)"),
    ("unipc3 + log_snr grid, discrete", "UniPC-3, ours (discrete, log_snr grid)"),
    ("unipc2 + uniform t, VP-cosine", "UniPC-2, ours (VP-cosine, uniform t)"),
)


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

    def mode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, self.mu).argmin(1)


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


Run = Callable[[object, torch.Tensor, int], torch.Tensor]  # (model, noise, nfe) -> samples


def rows(diffusers) -> list[tuple[str, object, Run]]:  # type: ignore[no-untyped-def]
    """(name, process, run) of every row; `run(model, noise, nfe)` draws the samples."""
    dvp, cos, flow = DiscreteVP(prediction="eps"), VPCosine(prediction="v"), RectifiedFlow(prediction="v")

    def sched(cls, **kw):  # type: ignore[no-untyped-def]
        return lambda n: _set(cls(**kw), n)

    ddim = sched(diffusers.DDIMScheduler, clip_sample=False, timestep_spacing="trailing")
    dpm = sched(diffusers.DPMSolverMultistepScheduler, algorithm_type="dpmsolver++", solver_order=2)
    unipc = sched(diffusers.UniPCMultistepScheduler)  # solver_order 2, bh2

    def diff_grid(make):  # type: ignore[no-untyped-def]
        return lambda n: dvp.timesteps_to_grid(make(n).timesteps.tolist())

    def on(process, grid, sampler) -> Run:  # type: ignore[no-untyped-def]
        return lambda model, noise, n: ours(process, model, noise, grid(n), sampler)

    def their(make) -> Run:  # type: ignore[no-untyped-def]
        return lambda model, noise, n: theirs(make(n), dvp, model, noise, n)

    def ladder(process, kind):  # type: ignore[no-untyped-def]
        return lambda n: (log_snr_grid if kind == "log_snr" else karras_grid)(process, n)

    return [
        ("DDIM, diffusers (discrete, trailing)", dvp, their(ddim)),
        ("DDIM, ours (same grid)", dvp, on(dvp, diff_grid(ddim), "ddim")),
        (ANCHOR, dvp, their(dpm)),
        ("DPM++(2M), ours (same grid)", dvp, on(dvp, diff_grid(dpm), "dpmpp2m")),
        (ANCHOR2, dvp, their(unipc)),
        ("UniPC-2, ours (same grid)", dvp, on(dvp, diff_grid(unipc), "unipc2")),
        ("DPM++(3M), ours (discrete, linspace)", dvp, on(dvp, diff_grid(dpm), "dpmpp3m")),
        ("UniPC-3, ours (discrete, linspace)", dvp, on(dvp, diff_grid(dpm), "unipc3")),
        ("DPM++(2M), ours (discrete, log_snr grid)", dvp, on(dvp, ladder(dvp, "log_snr"), "dpmpp2m")),
        ("DPM++(3M), ours (discrete, log_snr grid)", dvp, on(dvp, ladder(dvp, "log_snr"), "dpmpp3m")),
        ("UniPC-2, ours (discrete, log_snr grid)", dvp, on(dvp, ladder(dvp, "log_snr"), "unipc2")),
        ("UniPC-3, ours (discrete, log_snr grid)", dvp, on(dvp, ladder(dvp, "log_snr"), "unipc3")),
        ("UniPC-3, ours (discrete, karras grid)", dvp, on(dvp, ladder(dvp, "karras"), "unipc3")),
        ("DDIM, ours (VP-cosine, uniform t)", cos, on(cos, uniform_grid, "ddim")),
        ("DPM++(2M), ours (VP-cosine, uniform t)", cos, on(cos, uniform_grid, "dpmpp2m")),
        ("UniPC-2, ours (VP-cosine, uniform t)", cos, on(cos, uniform_grid, "unipc2")),
        ("UniPC-3, ours (VP-cosine, uniform t)", cos, on(cos, uniform_grid, "unipc3")),
        ("DPM++(2M), ours (VP-cosine, log_snr grid)", cos, on(cos, ladder(cos, "log_snr"), "dpmpp2m")),
        ("UniPC-2, ours (VP-cosine, log_snr grid)", cos, on(cos, ladder(cos, "log_snr"), "unipc2")),
        ("UniPC-3, ours (VP-cosine, log_snr grid)", cos, on(cos, ladder(cos, "log_snr"), "unipc3")),
        ("Euler, ours (rectified flow, uniform t)", flow, on(flow, uniform_grid, "euler")),
        (
            "Heun, ours (rectified flow, uniform t; NFE = 2 steps - 1)",
            flow,
            lambda model, noise, n: ours(flow, model, noise, uniform_grid((n + 1) // 2), "heun"),
        ),
        ("DPM++(2M), ours (rectified flow, uniform t)", flow, on(flow, uniform_grid, "dpmpp2m")),
        ("UniPC-3, ours (rectified flow, log_snr grid)", flow, on(flow, ladder(flow, "log_snr"), "unipc3")),
    ]


def _set(scheduler, steps: int):  # type: ignore[no-untyped-def]
    scheduler.set_timesteps(steps)
    return scheduler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--components", type=int, default=4)
    parser.add_argument("--spread", type=float, default=0.15, help="std of each mixture component")
    parser.add_argument("--mixtures", type=int, default=2, help="mixtures drawn (seeds 0, 1, ...)")
    parser.add_argument("--noises", type=int, default=2, help="noise draws per mixture (seeds 2, 3, ...)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference-steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import diffusers  # test/bench-only dependency

    table = rows(diffusers)
    cells: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
    floors: list[float] = []
    begin = time.time()
    for mseed in range(args.mixtures):
        mix = Mixture(args.dim, args.components, args.spread, seed=mseed)
        truth = mix.sample(args.samples, torch.Generator().manual_seed(3 + 100 * mseed))
        floors += [  # finite-sample SW2 between two true sets: noisy (mode proportions)
            sliced_w2(mix.sample(args.samples, torch.Generator().manual_seed(s + 100 * mseed)), truth)
            for s in range(4, 9)
        ]
        for nseed in range(args.noises):
            noise = torch.randn(
                args.samples,
                args.dim,
                generator=torch.Generator().manual_seed(2 + nseed),
                dtype=torch.float64,
            )
            refs: dict = {}
            for name, process, run in table:
                model = exact_model(mix, process)
                if process not in refs:
                    refs[process] = reference(process, model, noise, args.reference_steps)
                ref = refs[process]
                for nfe in NFES:
                    x = run(model, noise, nfe)
                    rmse = ((x - ref) ** 2).mean().sqrt().item()
                    flips = int((mix.mode(x) != mix.mode(ref)).sum())
                    cells.setdefault((name, nfe), []).append((rmse, sliced_w2(x, truth), flips))

    def mean(name: str, nfe: int, k: int) -> float:
        return statistics.mean(c[k] for c in cells[(name, nfe)])

    draws = args.mixtures * args.noises
    print(
        f"Gaussian mixture: d = {args.dim}, K = {args.components}, component std {args.spread}, "
        f"{args.samples} samples, exact denoiser, float64; mean over {args.mixtures} mixture(s) x "
        f"{args.noises} noise draw(s)\n"
    )
    print(
        "RMSE to the exact ODE solution / sliced W2 to the data / mode flips per "
        f"{args.samples} (SW2 data-vs-data floor {statistics.mean(floors):.4f}, "
        f"range {min(floors):.4f}..{max(floors):.4f})\n"
    )
    print("| sampler | " + " | ".join(f"NFE {n}" for n in NFES) + " |")
    print("|---|" + "---|" * len(NFES))
    for name, _, _ in table:
        print(
            f"| {name} | "
            + " | ".join(
                f"{mean(name, n, 0):.4f} / {mean(name, n, 1):.4f} / {mean(name, n, 2):.1f}" for n in NFES
            )
            + " |"
        )
    ours_rows = [name for name, _, _ in table if "ours" in name]
    print(f"\nRMSE ratio to {ANCHOR} ({draws} draw(s))\n")
    print("| setting | " + " | ".join(f"NFE {n}" for n in NFES) + " |")
    print("|---|" + "---|" * len(NFES))
    print(f"| {ANCHOR} (RMSE) | " + " | ".join(f"{mean(ANCHOR, n, 0):.4f}" for n in NFES) + " |")
    print(
        f"| {ANCHOR2} | " + " | ".join(f"{mean(ANCHOR2, n, 0) / mean(ANCHOR, n, 0):.2f}" for n in NFES) + " |"
    )
    for label, row in RECOMMENDED:
        print(
            f"| {label} | " + " | ".join(f"{mean(row, n, 0) / mean(ANCHOR, n, 0):.2f}" for n in NFES) + " |"
        )
    best = {n: min(ours_rows, key=lambda r, n=n: mean(r, n, 0)) for n in NFES}
    print(
        "| best of ours | "
        + " | ".join(f"{mean(best[n], n, 0) / mean(ANCHOR, n, 0):.2f}" for n in NFES)
        + " |"
    )
    for n in NFES:
        print(f"  best at NFE {n}: {best[n]}")
    print(f"\n({time.time() - begin:.0f} s)")


if __name__ == "__main__":
    main()
