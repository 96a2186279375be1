"""SamplingSettings: one object for sample, sample_long, the pipeline defaults and generate.

Bad values raise naming the field; the object gives the same numbers as the keyword calls it
replaces; pipeline.yaml round-trips it (grid names, explicit grids, ladder arguments)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion import (
    CrossGuidance,
    SamplingSettings,
    VPCosine,
    log_snr_grid,
    sample,
    sample_long,
    uniform_grid,
)
from mmgen.pipeline.config import GenerationDefaults

V = VPCosine(prediction="v")
SPECS = {"audio": ModalitySpec(3, 4.0), "motion": ModalitySpec(2, 4.0)}


def _model(x, t, cond=None):
    # a smooth function of every token and level (joint, so cross-guidance and guidance matter)
    mean = {m: v.mean(dim=1, keepdim=True) for m, v in x.items()}
    other = sum(v.mean() for v in mean.values())
    return {m: 0.5 * v + 0.1 * other + 0.2 * t[m][..., None] for m, v in x.items()}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sampler": "dpm"}, r"settings.sampler must be one of"),
        ({"steps": 0}, r"settings.steps must be a positive integer"),
        ({"steps": 2.5}, r"settings.steps must be a positive integer"),
        ({"steps": True}, r"settings.steps must be a positive integer"),
        ({"grid": "cosine"}, r"settings.grid must be one of"),
        ({"grid": [1.0, 0.5]}, r"settings.grid: grid must end at 0"),
        ({"grid": [0.5, 1.0, 0.0]}, r"strictly decreasing"),
        ({"grid": "log_snr", "grid_shift": 3.0}, r"grid_shift applies to the uniform grid only"),
        ({"grid_shift": 0.0}, r"grid_shift must be a positive number"),
        ({"grid_args": {"sigma_min": 0.1}}, r"grid_args \['sigma_min'\] do not apply to grid='uniform'"),
        ({"grid": "log_snr", "grid_args": {"rho": 7.0}}, r"do not apply"),
        ({"grid": "karras", "grid_args": {"rho": -1.0}}, r"grid_args\['rho'\] must be a positive number"),
        ({"eta": 0.5}, r"eta is only used by ddim / ddpm"),
        ({"sampler": "ddim", "eta": -1.0}, r"eta must be a number >= 0"),
        ({"guidance": {"motion": float("nan")}}, r"guidance\['motion'\] must be a finite number"),
        ({"guidance": [2.0]}, r"guidance must map groups to scales"),
        ({"cross_guidance": 1.5}, r"cross_guidance must be in \[0, 1\]"),
        ({"cross_guidance": {"switc": 0.5}}, r"cross_guidance: .*unexpected keyword argument 'switc'"),
    ],
)
def test_bad_values_raise_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingSettings(**kwargs)


def test_defaults_errors_say_defaults_and_settings_are_frozen():
    with pytest.raises(ValueError, match=r"^defaults.sampler must be one of"):
        GenerationDefaults(sampler="nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        SamplingSettings().steps = 3  # type: ignore[misc]


def test_grids_are_the_grid_functions():
    assert SamplingSettings(steps=7, grid_shift=3.0).make_grid(V) == uniform_grid(7, 3.0)
    s = SamplingSettings(steps=12, sampler="unipc2", grid="log_snr")
    assert s.make_grid(V) == log_snr_grid(V, 12)
    s = SamplingSettings(steps=8, grid="log_snr", grid_args={"sigma_min": 0.02, "sigma_max": 20})
    assert s.make_grid(V) == log_snr_grid(V, 8, sigma_min=0.02, sigma_max=20.0)
    explicit = SamplingSettings(grid=[1.0, 0.6, 0.25, 0.0])
    assert explicit.steps == 3 and explicit.grid == (1.0, 0.6, 0.25, 0.0)
    assert explicit.make_grid(V) == [1.0, 0.6, 0.25, 0.0]
    assert SamplingSettings(cross_guidance=0.3).cross == CrossGuidance(switch=0.3)


def test_merged_overrides_field_by_field():
    base = SamplingSettings(steps=12, sampler="unipc2", grid="log_snr", grid_args={"sigma_min": 0.02})
    assert base.merged({"steps": 20, "eta": None}) == dataclasses.replace(base, steps=20)
    # a new grid drops the old grid's arguments; the uniform grid keeps its shift
    assert base.merged(grid="uniform").grid_args == {}
    with pytest.raises(TypeError, match=r"unknown sampling settings \['step'\]"):
        base.merged(step=3)
    explicit = SamplingSettings(grid=[1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="conflicts with the explicit 2-step grid"):
        explicit.merged(steps=5)
    assert explicit.merged(steps=5, grid="uniform").make_grid(V) == uniform_grid(5)
    defaults = GenerationDefaults(steps=25, seconds=3.0, window_seconds=4.0)
    assert defaults.sampling() == SamplingSettings(steps=25)
    assert isinstance(defaults.merged(steps=3), GenerationDefaults) and defaults.merged(steps=3).seconds == 3.0


def test_settings_object_gives_the_keyword_calls_numbers():
    given = {"motion": torch.randn(1, 8, 2, generator=torch.Generator().manual_seed(0))}
    s = SamplingSettings(steps=5, sampler="ddim", eta=0.5, guidance={"motion": 2.0})
    common = {"process": V, "progress": False}
    a = sample(_model, "dance2music", SPECS, given, settings=s, generator=torch.Generator().manual_seed(1), **common)
    b = sample(_model, "dance2music", SPECS, given, steps=5, sampler="ddim", eta=0.5, guidance={"motion": 2.0},
               generator=torch.Generator().manual_seed(1), **common)
    c = sample(_model, "dance2music", SPECS, given, settings=s, steps=6,
               generator=torch.Generator().manual_seed(1), **common)
    assert torch.equal(a["audio"], b["audio"]) and not torch.equal(a["audio"], c["audio"])
    # sample_long over one window is sample; settings and keywords agree there too
    s = SamplingSettings(steps=4, sampler="unipc2", grid="log_snr", cross_guidance=0.5)
    long_kw = {"seconds": 4.0, "window_seconds": 2.0, "hop_seconds": 1.0, **common}
    a = sample_long(_model, "joint", SPECS, settings=s, generator=torch.Generator().manual_seed(2), **long_kw)
    b = sample_long(_model, "joint", SPECS, steps=4, sampler="unipc2", grid=log_snr_grid(V, 4), cross_guidance=0.5,
                    generator=torch.Generator().manual_seed(2), **long_kw)
    for m in SPECS:
        assert torch.equal(a[m], b[m]), m
    with pytest.raises(TypeError, match="unknown sampling settings"):
        sample(_model, "joint", SPECS, seconds=1.0, process=V, stpes=3)


def test_generation_defaults_round_trip_through_yaml():
    d = GenerationDefaults(
        steps=12, sampler="unipc2", grid="log_snr", grid_args={"sigma_max": 20.0}, guidance={"motion": 2.0},
        cross_guidance={"switch": 1.0, "estimate": "previous"}, window_seconds=4.0, task_args={"video2audio": {"via": ["motion"]}},
    )
    text = yaml.safe_dump(d.to_dict())
    assert GenerationDefaults.from_dict(yaml.safe_load(text)) == d
    e = GenerationDefaults(grid=[1.0, 0.5, 0.0])
    assert GenerationDefaults.from_dict(yaml.safe_load(yaml.safe_dump(e.to_dict()))) == e
    # pipeline.yaml written before the grid field still loads, as the uniform grid
    old = {"steps": 25, "sampler": "dpmpp2m", "grid_shift": 1.0, "seconds": 4.0}
    assert GenerationDefaults.from_dict(old).make_grid(V) == uniform_grid(25)


def test_pipeline_generate_takes_settings_or_keywords():
    from test_pipeline import make_pipeline

    pipe = make_pipeline(video=False, defaults={"steps": 3, "guidance": {"motion": 2.0}})
    joints = np.random.default_rng(0).normal(size=(60, 24, 3)).astype(np.float32) * 0.1
    run = {"seconds": 2.0, "seed": 5, "progress": False}
    a = pipe.generate("dance2music", {"motion": joints}, settings=SamplingSettings(steps=3, guidance={"motion": 2.0}), **run)
    b = pipe.generate("dance2music", {"motion": joints}, **run)
    c = pipe.generate("dance2music", {"motion": joints}, steps=3, guidance={"motion": 2.0}, **run)
    d = pipe.generate("dance2music", {"motion": joints}, steps=3, guidance={}, **run)
    e = pipe.generate("dance2music", {"motion": joints}, sampler="unipc2", grid="log_snr", **run)
    assert np.array_equal(a.audio, b.audio) and np.array_equal(a.audio, c.audio)
    assert not np.array_equal(a.audio, d.audio) and not np.array_equal(a.audio, e.audio)
    with pytest.raises(TypeError, match=r"unknown arguments \['stpes'\]"):
        pipe.generate("dance2music", {"motion": joints}, stpes=3, **run)
    with pytest.raises(TypeError, match="settings must be a SamplingSettings"):
        pipe.generate("dance2music", {"motion": joints}, settings={"steps": 3}, **run)
