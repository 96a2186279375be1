"""Per-token sampler behaviour: GIVEN tokens, token independence, late joiners, closed forms."""

import math

import pytest
import torch

from mmgen.diffusion import DiscreteVP, RectifiedFlow, VPCosine, check_grid, sample_masked, uniform_grid

DETERMINISTIC = ["ddim", "dpmpp2m", "dpmpp3m", "unipc2", "unipc3", "euler", "heun"]
ALL = DETERMINISTIC + ["ddpm"]


def tokenwise_model(channels=3, seed=0):
    """pred_i = f(x_i, t_i): a fixed random per-token MLP (no mixing across tokens)."""
    g = torch.Generator().manual_seed(seed)
    w1, w2 = torch.randn(channels + 1, 16, generator=g) / 2, torch.randn(16, channels, generator=g) / 4

    def model(x, t, cond=None):
        return {m: torch.tanh(torch.cat([x[m], t[m][..., None]], -1) @ w1) @ w2 for m in x}

    return model


def gaussian_model(process, var):
    """The exact prediction for data x0 ~ N(0, var I): x0_hat = alpha var x / (alpha^2 var + sigma^2)."""

    def model(x, t, cond=None):
        out = {}
        for m in x:
            a, s = (c[..., None] for c in process.alpha_sigma(t[m]))
            x0 = a * var * x[m] / (a * a * var + s * s)
            eps = (x[m] - a * x0) / s.clamp_min(1e-12)
            out[m] = {"eps": eps, "x0": x0, "v": (a * eps - s * x0) if process.is_vp else eps - x0}[
                process.prediction
            ]
        return out

    return model


def point_mass_model(process, mu):
    """The exact prediction when every x0 equals mu."""

    def model(x, t, cond=None):
        out = {}
        for m in x:
            a, s = (c[..., None] for c in process.alpha_sigma(t[m]))
            x0 = mu.expand_as(x[m])
            eps = (x[m] - a * x0) / s.clamp_min(1e-12)
            out[m] = {"eps": eps, "x0": x0, "v": (a * eps - s * x0) if process.is_vp else eps - x0}[
                process.prediction
            ]
        return out

    return model


@pytest.mark.parametrize("sampler", ALL)
def test_given_tokens_are_bit_identical(sampler):
    b, n, c = 2, 8, 3
    values = {"a": torch.randn(b, n, c), "b": torch.randn(b, 4, 2, 2, c)}  # a sequence and a video-like
    start = {"a": torch.tensor([0.0, 0, 1, 1, 1, 1, 0.6, 0]).expand(b, n), "b": torch.zeros(b, 4)}
    start["b"] = start["b"].clone()
    start["b"][:, 2:] = 1.0

    def model(x, t, cond=None):
        return {m: torch.tanh(v) * 3 + t[m].reshape(*t[m].shape, *[1] * (v.ndim - 2)) for m, v in x.items()}

    out = sample_masked(
        model,
        VPCosine(prediction="v"),
        start,
        values,
        uniform_grid(7),
        sampler=sampler,
        progress=False,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(out["a"][:, start["a"][0] == 0], values["a"][:, start["a"][0] == 0])
    assert torch.equal(out["b"][:, :2], values["b"][:, :2])
    assert not torch.allclose(out["a"][:, 2:6], values["a"][:, 2:6])


@pytest.mark.parametrize("sampler", DETERMINISTIC)
@pytest.mark.parametrize(
    "process", [VPCosine(prediction="v"), RectifiedFlow(prediction="v"), DiscreteVP(prediction="v")], ids=repr
)
def test_half_gen_equals_that_half_alone(sampler, process):
    """With a token-wise model and the same noise, GIVEN neighbours change nothing."""
    b, n, c = 2, 10, 3
    model = tokenwise_model(c)
    values, noise = torch.randn(b, n, c), torch.randn(b, n, c)
    start = torch.ones(b, n)
    start[:, n // 2 :] = 0.0
    grid = uniform_grid(9)
    values = values * (start == 0)[..., None]  # GEN tokens hold 0 (DiscreteVP has alpha(1) > 0)
    both = sample_masked(
        model, process, {"a": start}, {"a": values}, grid, sampler=sampler, noise={"a": noise}, progress=False
    )["a"]
    half = sample_masked(
        model,
        process,
        {"a": start[:, : n // 2]},
        {"a": torch.zeros(b, n // 2, c)},
        grid,
        sampler=sampler,
        noise={"a": noise[:, : n // 2]},
        progress=False,
    )["a"]
    torch.testing.assert_close(both[:, : n // 2], half, rtol=1e-5, atol=1e-6)
    assert torch.equal(both[:, n // 2 :], values[:, n // 2 :])


@pytest.mark.parametrize("sampler", DETERMINISTIC)
@pytest.mark.parametrize("t0", [0.5, 0.55])  # on the grid, and between grid points
def test_late_joiner_equals_a_run_started_at_its_level(sampler, t0):
    """EDIT(t0) tokens wait, then join first-order: identical to a fresh run on the grid cut at t0."""
    b, n, c = 2, 6, 3
    model = tokenwise_model(c, seed=1)
    values, noise = torch.randn(b, n, c), torch.randn(b, n, c)
    start = torch.full((b, n), t0)
    start[:, :3] = 1.0  # GEN tokens alongside
    grid = uniform_grid(10)
    mixed = sample_masked(
        model,
        VPCosine(prediction="v"),
        {"a": start},
        {"a": values * (start < 1)[..., None]},
        grid,
        sampler=sampler,
        noise={"a": noise},
        progress=False,
    )["a"]
    cut = [t0] + [g for g in grid if g < t0]
    alone = sample_masked(
        model,
        VPCosine(prediction="v"),
        {"a": torch.full((b, 3), t0)},
        {"a": values[:, 3:]},
        cut,
        sampler=sampler,
        noise={"a": noise[:, 3:]},
        progress=False,
    )["a"]
    gen = sample_masked(
        model,
        VPCosine(prediction="v"),
        {"a": torch.ones(b, 3)},
        {"a": torch.zeros(b, 3, c)},
        grid,
        sampler=sampler,
        noise={"a": noise[:, :3]},
        progress=False,
    )["a"]
    torch.testing.assert_close(mixed[:, 3:], alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mixed[:, :3], gen, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "process",
    [
        VPCosine(prediction="v"),
        VPCosine(prediction="x0"),
        RectifiedFlow(prediction="v"),
        DiscreteVP(prediction="eps"),
    ],
    ids=repr,
)
def test_point_mass_is_reached_exactly(process):
    """With the exact denoiser of a point mass, DDIM and DPM-Solver++ land on it (x0_hat is constant)."""
    mu = torch.tensor([0.7, -1.2, 2.0])
    start, values = {"a": torch.ones(3, 5)}, {"a": torch.zeros(3, 5, 3)}
    for sampler in ["ddim", "dpmpp2m", "dpmpp3m", "unipc2", "unipc3"] + (
        ["euler"] if not process.is_vp else []
    ):
        out = sample_masked(
            point_mass_model(process, mu),
            process,
            start,
            values,
            uniform_grid(4),
            sampler=sampler,
            progress=False,
        )["a"]
        torch.testing.assert_close(out, mu.expand_as(out), rtol=1e-5, atol=2e-5)


def _gaussian_errors(process, sampler, steps_list, var=0.25):
    noise = torch.randn(1, 500, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = noise * math.sqrt(var)  # the probability-flow ODE of Gaussian data scales x by std_0 / std_1
    errs = []
    for steps in steps_list:
        out = sample_masked(
            gaussian_model(process, var),
            process,
            {"a": torch.ones(1, 500, dtype=torch.float64)},
            {"a": torch.zeros(1, 500, 1, dtype=torch.float64)},
            uniform_grid(steps),
            sampler=sampler,
            noise={"a": noise},
            progress=False,
        )["a"]
        errs.append((out - exact).abs().max().item())
    return errs


def test_gaussian_ode_convergence_orders():
    """Against the closed-form ODE solution: DDIM / Euler are first order, Heun second order, and
    DPM-Solver++(2M) is far more accurate than DDIM at few steps."""
    ddim = _gaussian_errors(VPCosine(prediction="v"), "ddim", [10, 20, 40])
    assert 1.7 < ddim[0] / ddim[1] < 2.3 and 1.7 < ddim[1] / ddim[2] < 2.3
    heun = _gaussian_errors(RectifiedFlow(prediction="v"), "heun", [10, 20, 40])
    assert heun[0] / heun[1] > 3.5 and heun[1] / heun[2] > 3.5
    euler = _gaussian_errors(RectifiedFlow(prediction="v"), "euler", [10, 20])
    assert 1.7 < euler[0] / euler[1] < 2.3
    dpm = _gaussian_errors(VPCosine(prediction="v"), "dpmpp2m", [10, 20])
    assert dpm[0] < ddim[0] / 3 and dpm[1] < ddim[1] / 10


def test_ancestral_ddpm_has_the_posterior_variance():
    """On Gaussian data with the exact denoiser each DDPM step is linear, x_t = A x_s + c z, with A
    and c from the textbook posterior q(x_t | x_s, x0) (alpha_{s|t} = alpha_s / alpha_t, ...): the
    empirical std of 10k samples must match the std propagated through the same grid, and that
    std tends to the data std as steps grow (a first-order bias: plug-in E[x0 | x_s])."""
    var, n = 0.25, 10000

    def propagated_std(process, grid):
        a, s = process.alpha_sigma(torch.tensor(grid, dtype=torch.float64))
        v_x = s[0].item() ** 2
        for i in range(len(grid) - 1):
            a_st = a[i] / a[i + 1]
            s2_st = s[i] ** 2 - a_st**2 * s[i + 1] ** 2
            k = a[i] * var / (a[i] ** 2 * var + s[i] ** 2)  # x0_hat = k x_s
            gain = a_st * s[i + 1] ** 2 / s[i] ** 2 + a[i + 1] * s2_st / s[i] ** 2 * k
            v_x = gain**2 * v_x + s2_st * s[i + 1] ** 2 / s[i] ** 2
        return math.sqrt(v_x)

    for process in (VPCosine(prediction="v"), DiscreteVP(prediction="eps")):
        grid = uniform_grid(50)
        out = sample_masked(
            gaussian_model(process, var),
            process,
            {"a": torch.ones(1, n)},
            {"a": torch.zeros(1, n, 1)},
            grid,
            sampler="ddpm",
            generator=torch.Generator().manual_seed(0),
            progress=False,
        )["a"]
        assert abs(out.std().item() - propagated_std(process, grid)) < 0.01
        assert abs(out.mean().item()) < 0.015
        assert abs(propagated_std(process, uniform_grid(2000)) - math.sqrt(var)) < 0.003


def test_bad_inputs_raise():
    model = tokenwise_model()
    ok_start, ok_values = {"a": torch.ones(1, 4)}, {"a": torch.zeros(1, 4, 3)}
    with pytest.raises(ValueError, match="unknown sampler"):
        sample_masked(model, VPCosine(prediction="v"), ok_start, ok_values, [1.0, 0.0], sampler="plms")
    with pytest.raises(ValueError, match="start levels name"):
        sample_masked(model, VPCosine(prediction="v"), {"b": torch.ones(1, 4)}, ok_values, [1.0, 0.0])
    with pytest.raises(ValueError, match=r"must be \[B, T, C\]"):
        sample_masked(
            model,
            VPCosine(prediction="v"),
            {"a": torch.ones(1, 4)},
            {"a": torch.zeros(1, 4, 3, 3)},
            [1.0, 0.0],
        )
    with pytest.raises(ValueError, match="do not match latents"):
        sample_masked(model, VPCosine(prediction="v"), {"a": torch.ones(1, 5)}, ok_values, [1.0, 0.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sample_masked(model, VPCosine(prediction="v"), {"a": torch.full((1, 4), 1.5)}, ok_values, [1.0, 0.0])
    with pytest.raises(ValueError, match="decreasing"):
        check_grid([1.0, 0.5, 0.6, 0.0])
    with pytest.raises(ValueError, match="end at 0"):
        check_grid([1.0, 0.5])
    with pytest.raises(ValueError, match="eta"):
        sample_masked(
            model, VPCosine(prediction="v"), ok_start, ok_values, [1.0, 0.0], sampler="dpmpp2m", eta=0.5
        )
    with pytest.raises(ValueError, match="returned modalities"):
        sample_masked(
            lambda x, t, c: {"zzz": x["a"]},
            VPCosine(prediction="v"),
            ok_start,
            ok_values,
            [1.0, 0.0],
            progress=False,
        )
    with pytest.raises(ValueError, match="has shape"):
        sample_masked(
            lambda x, t, c: {"a": x["a"][:, :2]},
            VPCosine(prediction="v"),
            ok_start,
            ok_values,
            [1.0, 0.0],
            progress=False,
        )


@pytest.mark.parametrize("sampler", ALL)
def test_values_of_generated_tokens_are_ignored(sampler):
    """GEN tokens (start 1) start from noise whatever `values` holds there. DiscreteVP keeps
    alpha(1) = sqrt(abar_999) = 0.0064 of the input at t = 1, so a sampler that noised the given
    values would move with them (issue 29.2); GIVEN / EDIT values must still be used."""
    process = DiscreteVP(prediction="v")
    assert process.alpha_sigma(torch.tensor(1.0))[0].item() == pytest.approx(0.0064, abs=1e-4)
    b, n, c = 2, 6, 3
    start = torch.tensor([1.0, 1.0, 1.0, 0.5, 0.0, 0.0]).expand(b, n)
    values = torch.randn(b, n, c, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(b, n, c, generator=torch.Generator().manual_seed(2))

    def run(v):
        return sample_masked(
            tokenwise_model(c),
            process,
            {"a": start},
            {"a": v},
            uniform_grid(6),
            sampler=sampler,
            noise={"a": noise},
            generator=torch.Generator().manual_seed(3),
            progress=False,
        )["a"]

    gen = (start == 1)[..., None]
    zeros, fives = run(torch.where(gen, 0.0, values)), run(torch.where(gen, 5.0, values))
    assert torch.equal(zeros, fives)
    # the EDIT token's input is used: changing it changes its result
    edited = run(torch.where(gen, 0.0, values + (start == 0.5)[..., None]))
    assert not torch.allclose(edited[:, 3], zeros[:, 3], atol=1e-3)


def test_the_process_is_required():
    """`sample` / `sample_long` used to fall back to VPCosine(v) whatever the model was trained
    with (issue 29.3); now leaving the process out, or passing None, raises and names it."""
    from mmgen.core.timeline import ModalitySpec
    from mmgen.diffusion import sample, sample_long

    specs = {"audio": ModalitySpec(3, 2.0), "motion": ModalitySpec(3, 2.0)}
    model = tokenwise_model()
    kw = {"seconds": 2.0, "steps": 2, "progress": False}
    with pytest.raises(TypeError, match="process"):
        sample(model, "joint", specs, **kw)
    with pytest.raises(TypeError, match="process"):
        sample_long(model, "joint", specs, window_seconds=2.0, hop_seconds=1.0, **kw)
    for call in (
        lambda: sample(model, "joint", specs, process=None, **kw),
        lambda: sample_long(model, "joint", specs, window_seconds=2.0, hop_seconds=1.0, process=None, **kw),
        lambda: sample_masked(
            model, None, {"a": torch.ones(1, 4)}, {"a": torch.zeros(1, 4, 3)}, [1.0, 0.0], progress=False
        ),
    ):
        with pytest.raises(TypeError, match="process must be the Process"):
            call()


def _ladder_error(process, sampler, steps, var=0.25, sigma_a=2.0, sigma_b=0.1):
    """Max error at sigma_b against the closed-form ODE solution of N(0, var) data, starting
    exactly on it at sigma_a: x(sigma) = sqrt(alpha^2 var + sigma^2) z (tokens enter as EDIT
    tokens whose input makes the entry exact); `steps` log-SNR-uniform steps between the two,
    so the final x0_hat step to t = 0 (first order for every solver) is left out."""
    from mmgen.diffusion.grids import t_of_sigmas

    ratio = math.log(sigma_b / sigma_a)
    grid = t_of_sigmas(process, [sigma_a * math.exp(ratio * i / steps) for i in range(steps + 1)]) + [0.0]
    z = torch.randn(1, 500, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def exact(t):
        a, s = process.alpha_sigma(torch.tensor(t, dtype=torch.float64))
        return (a * a * var + s * s).sqrt(), a, s

    scale, a, s = exact(grid[0])
    traj = []
    sample_masked(
        gaussian_model(process, var),
        process,
        {"a": torch.full((1, 500), grid[0], dtype=torch.float64)},
        {"a": (scale - s) / a * z},  # alpha v + sigma z = scale z
        grid,
        sampler=sampler,
        noise={"a": z},
        progress=False,
        callback=lambda i, tau, x: traj.append(x["a"]),
    )
    return (traj[-2] - exact(grid[-2])[0] * z).abs().max().item()


def test_multistep_convergence_orders_and_process_invariance():
    """Global order on a log-SNR ladder, from doubling the steps 32 -> 64: DDIM 1, DPM++(2M) 2,
    UniPC-2 3 (its corrector adds one order at no extra call), UniPC-3 >= 3; DPM++(3M) stays at 2
    because its first-order warm-up step leaves an O(h^2) error that UniPC's corrector removes.
    Exponential integrators depend on the log-SNR ladder only, so VPCosine and DiscreteVP agree."""
    expected = {"ddim": (0.9, 1.1), "dpmpp2m": (1.8, 2.2), "dpmpp3m": (1.8, 2.3), "unipc2": (2.8, 3.2)}
    expected["unipc3"] = (2.9, 4.0)
    for sampler, (lo, hi) in expected.items():
        e32, e64 = (_ladder_error(VPCosine(prediction="v"), sampler, n) for n in (32, 64))
        assert lo < math.log2(e32 / e64) < hi, (sampler, e32, e64)
        same = _ladder_error(DiscreteVP(prediction="eps"), sampler, 32)
        assert same == pytest.approx(e32, rel=1e-3), sampler
    cosine = VPCosine(prediction="v")  # at 32 steps UniPC-3 is 12.6x closer than DPM++(2M)
    assert _ladder_error(cosine, "unipc3", 32) < _ladder_error(cosine, "dpmpp2m", 32) / 10
