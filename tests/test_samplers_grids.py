"""Sampling grids: ladders land on the noise scales they name, on every process; bad settings raise."""

import itertools
import math

import pytest
import torch

from mmgen.diffusion import (
    DiscreteVP,
    RectifiedFlow,
    VPCosine,
    karras_grid,
    log_snr_grid,
    make_grid,
    uniform_grid,
)

PROCESSES = [VPCosine(prediction="v"), RectifiedFlow(prediction="v"), DiscreteVP(prediction="eps")]


def sigmas(process, grid):
    """sigma / alpha of every level but the last (t = 0)."""
    a, s = process.alpha_sigma(torch.tensor(grid[:-1], dtype=torch.float64))
    return (s / a).tolist()


@pytest.mark.parametrize("process", PROCESSES, ids=repr)
def test_log_snr_grid_is_one_jump_then_log_uniform(process):
    grid = log_snr_grid(process, 8, sigma_min=0.05, sigma_max=10.0)
    assert len(grid) == 9 and grid[0] == 1.0 and grid[-1] == 0.0
    ladder = sigmas(process, grid)[1:]  # 7 levels from 10 down to 0.05
    assert ladder[0] == pytest.approx(10.0, rel=1e-9) and ladder[-1] == pytest.approx(0.05, rel=1e-9)
    steps = [math.log(a / b) for a, b in itertools.pairwise(ladder)]
    assert steps == pytest.approx([math.log(200) / 6] * 6, rel=1e-9)


@pytest.mark.parametrize("process", PROCESSES, ids=repr)
def test_karras_grid_is_edm_rho_ladder(process):
    grid = karras_grid(process, 6, sigma_min=0.02, sigma_max=20.0, rho=7.0)
    ladder = sigmas(process, grid)[1:]
    a, b = 20.0 ** (1 / 7), 0.02 ** (1 / 7)
    assert ladder == pytest.approx([(a + (b - a) * i / 4) ** 7 for i in range(5)], rel=1e-9)


def test_ladders_name_the_same_noise_levels_on_every_process():
    ref = sigmas(PROCESSES[0], log_snr_grid(PROCESSES[0], 10))[1:]
    for p in PROCESSES[1:]:
        assert sigmas(p, log_snr_grid(p, 10))[1:] == pytest.approx(ref, rel=1e-9)


def test_short_and_full_range_ladders():
    p = DiscreteVP(prediction="eps")
    assert log_snr_grid(p, 1) == [1.0, 0.0]
    two = log_snr_grid(p, 2, sigma_min=0.05)
    assert two[0] == 1.0 and sigmas(p, two)[1] == pytest.approx(0.05, rel=1e-9)
    # sigma_max above sigma(t = 1) = 157.4: the ladder starts at t = 1 itself (diffusers' Lu schedule)
    full = log_snr_grid(p, 5, sigma_min=0.05, sigma_max=math.inf)
    ladder = sigmas(p, full)
    assert full[0] == 1.0 and ladder[0] == pytest.approx(157.40727, rel=1e-6)
    assert [math.log(a / b) for a, b in itertools.pairwise(ladder)] == pytest.approx(
        [math.log(157.40727 / 0.05) / 4] * 4, rel=1e-6
    )


def test_make_grid_and_bad_settings():
    p = VPCosine(prediction="v")
    assert make_grid("uniform", p, 4, shift=3.0) == uniform_grid(4, 3.0)
    assert make_grid("log_snr", p, 7, sigma_min=0.03) == log_snr_grid(p, 7, sigma_min=0.03)
    assert make_grid("karras", p, 7, rho=5.0) == karras_grid(p, 7, rho=5.0)
    with pytest.raises(ValueError, match="unknown grid"):
        make_grid("ays", p, 10)
    with pytest.raises(ValueError, match="shift applies to the uniform grid only"):
        make_grid("log_snr", p, 10, shift=2.0)
    with pytest.raises(ValueError, match="takes only `shift`"):
        make_grid("uniform", p, 10, sigma_min=0.1)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        log_snr_grid(p, 10, sigma_min=5.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="must be finite"):
        log_snr_grid(p, 10, sigma_max=math.inf)  # alpha(1) = 0: no finite top of the ladder
    with pytest.raises(ValueError, match="not below"):
        log_snr_grid(DiscreteVP(prediction="eps"), 10, sigma_min=200.0, sigma_max=300.0)
    with pytest.raises(ValueError, match="positive integer"):
        log_snr_grid(p, 0)
    with pytest.raises(ValueError, match="rho"):
        karras_grid(p, 5, rho=0.0)
