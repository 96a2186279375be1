"""`generate(dtype=...)`: the DiT under autocast, the sampler and VAEs in float32; fp32 is the
default and bit-identical to not asking; bf16 / fp16 stay close to fp32; bad values are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pipeline import make_pipeline

from mmgen.pipeline.checks import InputError
from mmgen.pipeline.precision import AutocastModel, parse_dtype


def test_parse_dtype_names():
    assert parse_dtype(None) == parse_dtype("fp32") == parse_dtype("float32") == torch.float32
    assert parse_dtype("bf16") == parse_dtype(torch.bfloat16) == torch.bfloat16
    assert parse_dtype("FP16") == parse_dtype("half") == torch.float16
    with pytest.raises(ValueError, match="dtype must be one of fp32, bf16, fp16"):
        parse_dtype("int8")


def test_autocast_model_returns_float32_from_a_low_precision_dit():
    lin = torch.nn.Linear(8, 8)
    model = AutocastModel(lambda x, t, c: {m: lin(v) for m, v in x.items()}, torch.device("cpu"), torch.bfloat16)
    x = {"a": torch.randn(2, 3, 8)}
    out = model(x, {"a": torch.zeros(2, 3)}, None)
    assert out["a"].dtype == torch.float32
    ref = lin(x["a"])
    assert not torch.equal(out["a"], ref) and torch.allclose(out["a"], ref, atol=0.05)  # bf16 rounding


def test_generate_in_bf16_and_fp16_stays_close_to_fp32():
    pipe = make_pipeline(video=False)
    joints = np.random.default_rng(0).normal(size=(60, 24, 3)).astype(np.float32) * 0.1
    run = {"seconds": 2.0, "seed": 1, "progress": False}
    ref = pipe.generate("dance2music", {"motion": joints}, **run)
    same = pipe.generate("dance2music", {"motion": joints}, dtype="fp32", **run)
    assert torch.equal(ref.latents["audio"], same.latents["audio"])
    for name in ("bf16", "fp16"):
        low = pipe.generate("dance2music", {"motion": joints}, dtype=name, **run)
        a, b = ref.latents["audio"], low.latents["audio"]
        rel = float((a - b).norm() / a.norm())
        assert b.dtype == torch.float32 and 0 < rel < 0.05, (name, rel)
    with pytest.raises(InputError, match="dtype must be one of"):
        pipe.generate("dance2music", {"motion": joints}, dtype="int8", **run)
