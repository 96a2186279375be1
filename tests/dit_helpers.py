"""Helpers shared by the DiT tests."""

import torch


def perturb(model: torch.nn.Module, std: float = 0.1) -> torch.nn.Module:
    """Move every parameter off its (partly zero) init so every path carries signal."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model


def assert_new_part_is_a_no_op(
    plain: torch.nn.Module, extended: torch.nn.Module, prefix: str, x: dict, t: dict, extended_cond=None
) -> None:
    """Load `plain`'s weights into `extended` (the same DiT plus a part named `prefix`, fed
    `extended_cond` if the part needs an input): only the part's parameters are missing, and every
    output is bit-identical to `plain`'s."""
    missing, unexpected = extended.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(prefix) for k in missing), (missing, unexpected)
    a, b = plain(x, t), extended(x, t, extended_cond)
    for name in x:
        assert torch.equal(a[name], b[name]), name
