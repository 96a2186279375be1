"""Processes: schedules against diffusers and closed forms, conversions, weights, bad values."""

import math

import pytest
import torch

from mmgen.diffusion.process import DiscreteVP, RectifiedFlow, VPCosine, check_unit_interval

diffusers = pytest.importorskip("diffusers")

PROCESSES = [
    VPCosine(prediction="v"),
    VPCosine(prediction="eps"),
    VPCosine(prediction="x0"),
    RectifiedFlow(prediction="v"),
    RectifiedFlow(prediction="eps"),
    RectifiedFlow(prediction="x0"),
    DiscreteVP(prediction="eps"),
    DiscreteVP(prediction="v", beta_schedule="squaredcos_cap_v2"),
]


def test_cosine_golden_values():
    a, s = VPCosine(prediction="v").alpha_sigma(torch.tensor([0.0, 0.5, 1.0]))
    assert a.tolist() == [1.0, pytest.approx(math.sqrt(0.5), abs=1e-7), 0.0]
    assert s.tolist() == [0.0, pytest.approx(math.sqrt(0.5), abs=1e-7), 1.0]
    lam = VPCosine(prediction="v").log_snr(torch.tensor([0.0, 0.5, 1.0]))
    assert lam[0] == math.inf and abs(lam[1]) < 1e-6 and lam[2] == -math.inf


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_discrete_schedule_matches_diffusers(schedule):
    ours = DiscreteVP(prediction="eps", beta_schedule=schedule)
    ref = diffusers.DDIMScheduler(beta_schedule=schedule)
    assert torch.equal(ours.alphas_cumprod, ref.alphas_cumprod)  # same float32 table, bit for bit
    k = torch.tensor([0, 1, 17, 500, 998, 999])
    t = (k + 1).double() / 1000  # knots: t = (k + 1) / N
    a, s = ours.alpha_sigma(t)
    torch.testing.assert_close(a.square(), ref.alphas_cumprod[k].double(), rtol=1e-6, atol=0)
    torch.testing.assert_close(s.square(), 1 - ref.alphas_cumprod[k].double(), rtol=1e-6, atol=1e-12)
    a0, s0 = ours.alpha_sigma(torch.zeros(1))
    assert a0.item() == 1.0 and s0.item() == 0.0  # t = 0 is exactly clean (set_alpha_to_one)


def test_discrete_golden_sigma_and_grid():
    # linear betas: diffusers' sigma = sqrt((1 - abar) / abar) at 999 is 157.40727
    ours = DiscreteVP(prediction="eps")
    a, s = ours.alpha_sigma(torch.tensor([1.0], dtype=torch.float64))
    assert (s / a).item() == pytest.approx(157.40727, rel=1e-6)
    assert ours.timesteps_to_grid([999, 899, 99]) == [1.0, 0.9, 0.1, 0.0]
    assert ours.t_of_timestep(0) == 0.001


@pytest.mark.parametrize("process", PROCESSES, ids=repr)
def test_target_round_trip_and_forward(process):
    x0, eps = torch.randn(3, 5, 4, dtype=torch.float64), torch.randn(3, 5, 4, dtype=torch.float64)
    t = torch.rand(3, 5, dtype=torch.float64) * 0.98 + 0.01
    x_t = process.add_noise(x0, eps, t)
    a, s = process.alpha_sigma(t)
    torch.testing.assert_close(x_t, a[..., None] * x0 + s[..., None] * eps)
    x0_hat, eps_hat = process.to_x0_eps(process.target(x0, eps, t), x_t, t)
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(eps_hat, eps)
    t[0, 0] = 0.0
    x_t = process.add_noise(x0.float(), eps.float(), t.float())
    assert torch.equal(x_t[0, 0], x0[0, 0].float())  # clean tokens are untouched, bit for bit


def test_targets_match_diffusers():
    proc, ref = DiscreteVP(prediction="v"), diffusers.DDIMScheduler()
    x0, eps = torch.randn(4, 1, 3), torch.randn(4, 1, 3)
    k = torch.tensor([0, 10, 500, 999])
    t = ((k + 1) / 1000).view(4, 1)
    torch.testing.assert_close(proc.target(x0, eps, t), ref.get_velocity(x0, eps, k), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(proc.add_noise(x0, eps, t), ref.add_noise(x0, eps, k), rtol=1e-5, atol=1e-6)
    flow = diffusers.FlowMatchEulerDiscreteScheduler()
    flow.set_timesteps(4)  # sigmas [1, 0.667, 0.334, 0.001]
    sig = flow.sigmas[:4].view(4, 1)
    ref_xt = flow.scale_noise(x0, flow.timesteps, eps)
    torch.testing.assert_close(
        RectifiedFlow(prediction="v").add_noise(x0, eps, sig), ref_xt, rtol=1e-6, atol=1e-6
    )
    assert torch.equal(RectifiedFlow(prediction="v").target(x0, eps, sig), eps - x0)  # diffusers' flow target


@pytest.mark.parametrize(
    "process",
    [
        VPCosine(prediction="v"),
        RectifiedFlow(prediction="v"),
        DiscreteVP(prediction="eps"),
        DiscreteVP(prediction="eps", beta_schedule="squaredcos_cap_v2"),
    ],
    ids=repr,
)
def test_derivative_matches_finite_differences(process):
    t = torch.tensor([0.05, 0.3, 0.5555, 0.9], dtype=torch.float64) + 0.0003  # off the knots
    h = 1e-7
    a1, s1 = process.alpha_sigma(t + h)
    a0, s0 = process.alpha_sigma(t - h)
    da, ds = process.alpha_sigma_derivative(t)
    torch.testing.assert_close(da, (a1 - a0) / (2 * h), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ds, (s1 - s0) / (2 * h), rtol=1e-5, atol=1e-6)


def test_loss_weights_by_hand():
    t = torch.tensor([0.1, 0.5, 0.9])
    assert torch.equal(VPCosine(prediction="v").loss_weight(t), torch.ones(3))
    snr = (torch.cos(math.pi * t / 2) / torch.sin(math.pi * t / 2)) ** 2
    gamma = torch.full_like(snr, 5.0)
    eps_w = VPCosine(prediction="eps", weighting="min_snr").loss_weight(t)
    torch.testing.assert_close(eps_w, torch.minimum(snr, gamma) / snr)
    v_w = VPCosine(prediction="v", weighting="min_snr").loss_weight(t)
    torch.testing.assert_close(v_w, torch.minimum(snr, gamma) / (snr + 1))  # 1 / sigma^2 = SNR + 1 for VP
    x0_w = VPCosine(prediction="x0", weighting="min_snr").loss_weight(t)
    torch.testing.assert_close(x0_w, torch.minimum(snr, gamma))
    flow_w = RectifiedFlow(prediction="v", weighting="min_snr").loss_weight(t)
    torch.testing.assert_close(flow_w, torch.minimum(((1 - t) / t) ** 2, gamma) * t**2)


def test_bad_values_raise():
    with pytest.raises(ValueError, match="prediction"):
        VPCosine(prediction="velocity")
    with pytest.raises(ValueError, match="weighting"):
        RectifiedFlow(prediction="v", weighting="snr")
    with pytest.raises(ValueError, match="beta_schedule"):
        DiscreteVP(prediction="eps", beta_schedule="cosine")
    with pytest.raises(ValueError, match="num_train_timesteps"):
        DiscreteVP(prediction="eps", num_train_timesteps=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_unit_interval(torch.tensor([0.2, 1.5]), "levels of 'audio'")
    with pytest.raises(ValueError, match="do not match"):
        VPCosine(prediction="v").add_noise(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 4))


@pytest.mark.parametrize("cls", [VPCosine, RectifiedFlow, DiscreteVP])
def test_prediction_type_must_be_named(cls):
    """No default prediction type: it used to be "v" for VPCosine / RectifiedFlow and "eps" for
    DiscreteVP, so leaving it out gave a process that silently disagreed with the model (issue 29.3)."""
    with pytest.raises(TypeError, match="prediction"):
        cls()
    assert cls(prediction="x0").prediction == "x0"


@pytest.mark.parametrize("process", PROCESSES, ids=repr)
def test_t_of_log_snr_inverts_log_snr(process):
    t = torch.tensor([0.0, 1e-4, 5e-4, 1e-3, 0.0137, 0.3, 0.5, 0.77, 0.999, 0.9995, 1.0], dtype=torch.float64)
    torch.testing.assert_close(process.t_of_log_snr(process.log_snr(t)), t, rtol=0, atol=1e-12)
    ends = process.t_of_log_snr(torch.tensor([-1e3, 1e3], dtype=torch.float64))
    assert ends.tolist() == [1.0, pytest.approx(0.0, abs=1e-30)]  # clamped beyond the schedule's ends
