"""Our per-token samplers with one shared level reproduce diffusers' schedulers, step by step.

The model function is fixed and linear (a random channel mix plus a level-dependent bias). For
eps-prediction it is sigma(t) x + alpha(t) (x W + t b), near the optimal eps of unit-Gaussian data,
so that x0 = (x - sigma eps) / alpha stays O(1); a purely random map would blow up by 1 / alpha
(up to ~3e4 for squaredcos at t = 1) and compare only round-off. Every intermediate sample is
compared (rtol = atol = 1e-5).
"""

import math

import pytest
import torch

from mmgen.diffusion import DiscreteVP, RectifiedFlow, karras_grid, log_snr_grid, sample_masked

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' numpy-2 copy= notice

B, T, C = 2, 6, 4
PRED = {"eps": "epsilon", "v": "v_prediction"}


def linear_model(process):
    g = torch.Generator().manual_seed(1)
    mix, bias = 0.05 * torch.randn(C, C, generator=g), torch.randn(C, generator=g)

    def model(x, t, cond=None):
        out = {}
        for m in x:
            lv = t[m][..., None]  # [B, T, 1]
            if process.prediction == "eps":  # x0_hat = alpha x - sigma (x mix + t bias) stays O(1)
                alpha, sigma = (c[..., None] for c in process.alpha_sigma(t[m]))
                out[m] = sigma * x[m] + alpha * (x[m] @ mix + lv * bias)
            else:
                out[m] = x[m] @ (mix + 0.5 * torch.eye(C)) + lv * bias
        return out

    return model


def ours(process, grid, model, noise, sampler, **kw):
    traj = []
    sample_masked(
        model,
        process,
        {"a": torch.ones(B, T)},
        {"a": torch.zeros(B, T, C)},
        grid,
        sampler=sampler,
        noise={"a": noise},
        progress=False,
        callback=lambda i, tau, x: traj.append(x["a"].clone()),
        **kw,
    )
    return traj


def theirs(scheduler, level_of, model, x, **step_kw):
    traj = []
    for i, k in enumerate(scheduler.timesteps):
        out = model({"a": x}, {"a": torch.full((B, T), level_of(i, k))})["a"]
        kw = {name: (f(i) if callable(f) else f) for name, f in step_kw.items()}
        x = scheduler.step(out, k, x, **kw).prev_sample
        traj.append(x)
    return traj


def assert_trajectories_close(a, b):
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5, msg=lambda m, i=i: f"step {i}: {m}")


@pytest.mark.parametrize("pred", ["eps", "v"])
@pytest.mark.parametrize("schedule", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_matches_diffusers(pred, schedule, spacing):
    process = DiscreteVP(prediction=pred, beta_schedule=schedule)
    sched = diffusers.DDIMScheduler(
        clip_sample=False, prediction_type=PRED[pred], beta_schedule=schedule, timestep_spacing=spacing
    )
    sched.set_timesteps(10)
    grid = process.timesteps_to_grid(sched.timesteps.tolist())
    noise = torch.randn(B, T, C)
    x_init = process.alpha_sigma(torch.tensor(grid[0]))[1] * noise  # our start: sigma(first level) * noise
    model = linear_model(process)
    a = ours(process, grid, model, noise, "ddim")
    b = theirs(sched, lambda i, k: process.t_of_timestep(k), model, x_init)
    assert_trajectories_close(a, b)


# eps-prediction on squaredcos_cap_v2 starting at timestep 999 (abar ~ 1e-9) is ill-conditioned in
# float32 for any implementation: x0 = (x - sigma eps) / alpha amplifies round-off by 1 / alpha ~ 3e4,
# and diffusers' DPM goes through sigma = sqrt((1 - abar) / abar) with other rounding. That one
# combination is checked with "leading" spacing (which starts at 900).
DPM_CASES = [
    (p, s, sp)
    for p in ("eps", "v")
    for s in ("linear", "squaredcos_cap_v2")
    for sp in ("linspace", "leading")
    if not (p == "eps" and s == "squaredcos_cap_v2" and sp == "linspace")
]


@pytest.mark.parametrize(("pred", "schedule", "spacing"), DPM_CASES)
def test_dpmpp2m_matches_diffusers(pred, schedule, spacing):
    process = DiscreteVP(prediction=pred, beta_schedule=schedule)
    sched = diffusers.DPMSolverMultistepScheduler(
        algorithm_type="dpmsolver++",
        solver_order=2,
        prediction_type=PRED[pred],
        beta_schedule=schedule,
        timestep_spacing=spacing,
    )
    sched.set_timesteps(12)
    grid = process.timesteps_to_grid(sched.timesteps.tolist())
    noise = torch.randn(B, T, C)
    x_init = process.alpha_sigma(torch.tensor(grid[0]))[1] * noise
    model = linear_model(process)
    assert_trajectories_close(
        ours(process, grid, model, noise, "dpmpp2m"),
        theirs(sched, lambda i, k: process.t_of_timestep(k), model, x_init),
    )


def test_stochastic_ddim_and_ddpm_match_diffusers_with_the_same_noise():
    process = DiscreteVP(prediction="eps")
    model = linear_model(process)
    noise = torch.randn(B, T, C)
    # DDIM eta = 0.7: our per-step noise comes from `generator` (one draw per step); replay it into diffusers
    sched = diffusers.DDIMScheduler(clip_sample=False)
    sched.set_timesteps(10)
    grid = process.timesteps_to_grid(sched.timesteps.tolist())
    a = ours(process, grid, model, noise, "ddim", eta=0.7, generator=torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    draws = [torch.randn(B, T, C, generator=replay) for _ in range(10)]
    x_init = process.alpha_sigma(torch.tensor(grid[0]))[1] * noise
    b = theirs(
        sched,
        lambda i, k: process.t_of_timestep(k),
        model,
        x_init,
        eta=0.7,
        variance_noise=lambda i: draws[i],
    )
    assert_trajectories_close(a, b)
    # ancestral DDPM = the posterior q(x_t | x_s, x0): diffusers' DDPMScheduler (fixed_small variance)
    sched = diffusers.DDPMScheduler(clip_sample=False)
    sched.set_timesteps(10)
    a = ours(process, grid, model, noise, "ddpm", generator=torch.Generator().manual_seed(4))
    b = theirs(
        sched,
        lambda i, k: process.t_of_timestep(k),
        model,
        x_init,
        generator=torch.Generator().manual_seed(4),
    )
    assert_trajectories_close(a, b)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_euler_matches_diffusers(shift):
    process = RectifiedFlow(prediction="v")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(8)
    grid = sched.sigmas.tolist()  # our flow t is diffusers' sigma
    noise = torch.randn(B, T, C)
    model = linear_model(process)
    assert_trajectories_close(
        ours(process, grid, model, noise, "euler"),
        theirs(sched, lambda i, k: float(sched.sigmas[i]), model, noise.clone()),
    )


def test_flow_dpmpp2m_matches_diffusers_flow_sigmas():
    process = RectifiedFlow(prediction="v")
    sched = diffusers.DPMSolverMultistepScheduler(
        use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=2.0
    )
    sched.set_timesteps(10)
    grid = sched.sigmas.tolist()
    noise = torch.randn(B, T, C)
    x_init = grid[0] * noise
    model = linear_model(process)
    assert_trajectories_close(
        ours(process, grid, model, noise, "dpmpp2m"),
        theirs(sched, lambda i, k: float(sched.sigmas[i]), model, x_init),
    )


def _multistep_cases():
    """(pred, schedule, spacing, steps): both sides of diffusers' `steps < 15` lower-order rule."""
    return [
        (p, s, sp, n)
        for p in ("eps", "v")
        for s in ("linear", "squaredcos_cap_v2")
        for sp in ("linspace", "leading")
        for n in (8, 16)
        if not (p == "eps" and s == "squaredcos_cap_v2" and sp == "linspace")  # see DPM_CASES
    ]


def _scheduler(name, pred, schedule, spacing, **kw):
    common = {"prediction_type": PRED[pred], "beta_schedule": schedule, "timestep_spacing": spacing}
    if name == "dpmpp3m":
        return diffusers.DPMSolverMultistepScheduler(
            algorithm_type="dpmsolver++", solver_order=3, **common, **kw
        )
    order = {"unipc2": 2, "unipc3": 3}[name]
    return diffusers.UniPCMultistepScheduler(solver_order=order, **common, **kw)  # default bh2


@pytest.mark.parametrize("sampler", ["dpmpp3m", "unipc2", "unipc3"])
@pytest.mark.parametrize(("pred", "schedule", "spacing", "steps"), _multistep_cases())
def test_higher_order_multistep_matches_diffusers(sampler, pred, schedule, spacing, steps):
    process = DiscreteVP(prediction=pred, beta_schedule=schedule)
    sched = _scheduler(sampler, pred, schedule, spacing)
    sched.set_timesteps(steps)
    grid = process.timesteps_to_grid(sched.timesteps.tolist())
    noise = torch.randn(B, T, C)
    x_init = process.alpha_sigma(torch.tensor(grid[0]))[1] * noise
    model = linear_model(process)
    assert_trajectories_close(
        ours(process, grid, model, noise, sampler),
        theirs(sched, lambda i, k: process.t_of_timestep(k), model, x_init),
    )


@pytest.mark.parametrize("sampler", ["dpmpp2m", "dpmpp3m", "unipc2", "unipc3"])
@pytest.mark.parametrize("ladder", ["karras", "lu"])
def test_multistep_on_karras_and_lu_sigmas_matches_diffusers(sampler, ladder):
    """Our ladders with diffusers' ends (sigma(t = 1) to sigma(1 / N)) are diffusers' sigmas; the
    model is evaluated at those continuous levels on both sides (diffusers rounds the timestep it
    passes to its model, the solver itself uses the continuous sigma)."""
    process = DiscreteVP(prediction="v")
    key = {"karras": "use_karras_sigmas", "lu": "use_lu_lambdas"}[ladder]
    if sampler == "dpmpp2m":
        sched = diffusers.DPMSolverMultistepScheduler(prediction_type="v_prediction", **{key: True})
    elif ladder == "lu" and sampler.startswith("unipc"):
        pytest.skip("diffusers' UniPC has no use_lu_lambdas")
    else:
        sched = _scheduler(sampler, "v", "linear", "linspace", **{key: True})
    steps = 12
    sched.set_timesteps(steps)
    sigma_min = ((1 - process.alphas_cumprod[0]) / process.alphas_cumprod[0]).sqrt().item()
    if ladder == "karras":
        grid = karras_grid(process, steps, sigma_min=sigma_min, sigma_max=math.inf)
    else:
        grid = log_snr_grid(process, steps, sigma_min=sigma_min, sigma_max=math.inf)
    their_sigmas = sched.sigmas.double()
    a, s = process.alpha_sigma(torch.tensor(grid, dtype=torch.float64))
    torch.testing.assert_close((s / a)[:-1], their_sigmas[:-1], rtol=1e-5, atol=0)  # same ladder
    assert grid[-1] == 0.0 and their_sigmas[-1] == 0.0
    noise = torch.randn(B, T, C)
    x_init = s[0].float() * noise
    model = linear_model(process)
    assert_trajectories_close(
        ours(process, grid, model, noise, sampler),
        theirs(sched, lambda i, k: grid[i], model, x_init),
    )


@pytest.mark.parametrize("sampler", ["dpmpp3m", "unipc2", "unipc3"])
def test_flow_multistep_matches_diffusers_flow_sigmas(sampler):
    process = RectifiedFlow(prediction="v")
    kw = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 2.0}
    if sampler == "dpmpp3m":
        sched = diffusers.DPMSolverMultistepScheduler(solver_order=3, **kw)
    else:
        sched = diffusers.UniPCMultistepScheduler(solver_order=int(sampler[-1]), **kw)
    sched.set_timesteps(10)
    grid = sched.sigmas.tolist()
    noise = torch.randn(B, T, C)
    model = linear_model(process)
    assert_trajectories_close(
        ours(process, grid, model, noise, sampler),
        theirs(sched, lambda i, k: float(sched.sigmas[i]), model, grid[0] * noise),
    )
