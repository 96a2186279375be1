"""Mixture of Noise Levels (MoNL, AVDiT): which tokens are how noisy in each training example.

Per example one variant is drawn (default probabilities 0.25 each). With M modalities and
segments shared by TIME (a video frame and an audio frame at 1.0 s share a segment id):

    vanilla               per_modality          per_segment           per_modality_segment
    seg     0  1  2  3    seg     0  1  2  3    seg     0  1  2  3    seg     0  1  2  3
    audio  .7 .7 .7 .7    audio  .7 .7 .7 .7    audio  .7 .2 .9 .4    audio  .7 .2 .9 .4
    motion .7 .7 .7 .7    motion .3 .3 .3 .3    motion .7 .2 .9 .4    motion .1 .8 .5 .6

Then, with probability p_clean, part of the example is set CLEAN (t = 0) so that conditional
tasks are seen in training; the kind is drawn from `clean_kinds` among those the example's size
allows, uniformly or with `clean_kind_weights` (e.g. to train more of the tasks a model serves):

    modality  one whole modality clean              (dance2music, audio2video; needs M >= 2)
    all_but_one  every modality clean but one       (video from the given dance and music; M >= 2)
    prefix    segments [0, k) clean, k in [1, S-1]  (continuation; S >= 2)
    ends      [0, g0) and [g1, S) clean, gap >= 1   (interpolation; S >= 3)
    random    each segment clean w.p. 1/2, at least one clean and one noisy  (inpainting; S >= 2)

and, with probability p_drop, one modality is DROPPED (the unconditional state CFG uses):
drop_mode "noise" puts it at t = 1 in that example (exactly CFG-by-masking's uncond branch,
batch stays rectangular); drop_mode "absent" removes it from the whole batch (one host draw per
batch), for models that must also run without it. With p_drop_text the example's text is the
null Cond. Levels of noisy tokens come from `time_sampling`: "uniform" (default, t in (0, 1];
MoNL / Stable Audio) or "logit_normal" (SD3; t = sigmoid(N(logit_mean, logit_std)), a good choice
for RectifiedFlow). Noisy levels are never exactly 0, so the loss mask t > 0 is exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec, num_segments, segment_ids
from mmgen.diffusion.process import check_unit_interval

VARIANTS = ("vanilla", "per_modality", "per_segment", "per_modality_segment")
CLEAN_KINDS = ("modality", "prefix", "ends", "random", "all_but_one")
DEFAULT_CLEAN_KINDS = CLEAN_KINDS[:4]  # all_but_one joined later; the default keeps earlier runs' draws
_MIN_LEVEL = 1e-6


@dataclass(frozen=True)
class NoiseLevels:
    """Noise levels of one training batch.

    levels: [B, T_m] per present modality, in [0, 1] (0 = clean / given).
    absent: modalities left out of the whole batch (missing from `levels` and the model input).
    text_null: [B] bool, True where the example's text condition is the null Cond.
    variant: [B] index into VARIANTS (for logging and tests), or None.
    """

    levels: dict[str, Tensor]
    absent: frozenset[str] = frozenset()
    text_null: Tensor | None = None
    variant: Tensor | None = None

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("NoiseLevels needs at least one present modality")
        object.__setattr__(self, "absent", frozenset(self.absent))
        both = sorted(self.absent & set(self.levels))
        if both:
            raise ValueError(f"modalities {both} are both present and absent")
        batches = set()
        for m, t in self.levels.items():
            if t.ndim != 2 or not t.is_floating_point():
                raise ValueError(
                    f"levels of {m!r} must be a float [B, T] tensor, got {t.dtype} {tuple(t.shape)}"
                )
            check_unit_interval(t, f"levels of {m!r}")
            batches.add(t.shape[0])
        if len(batches) > 1:
            raise ValueError(f"levels disagree on the batch size: {sorted(batches)}")
        b = batches.pop()
        for name in ("text_null", "variant"):
            v = getattr(self, name)
            if v is not None and tuple(v.shape) != (b,):
                raise ValueError(f"NoiseLevels.{name} must have shape [{b}], got {tuple(v.shape)}")

    @property
    def batch_size(self) -> int:
        return next(iter(self.levels.values())).shape[0]

    def noisy(self) -> dict[str, Tensor]:
        """[B, T_m] bool per modality: tokens with t > 0 (the ones the loss is taken on)."""
        return {m: t > 0 for m, t in self.levels.items()}


@dataclass(frozen=True)
class MoNLConfig:
    """Settings of the MoNL training sampler (starting defaults: 0.25 each, 0.3, 0.1; see docs/design.md)."""

    p_vanilla: float = 0.25
    p_per_modality: float = 0.25
    p_per_segment: float = 0.25
    p_per_modality_segment: float = 0.25
    p_clean: float = 0.3
    clean_kinds: tuple[str, ...] = DEFAULT_CLEAN_KINDS
    clean_kind_weights: tuple[float, ...] | None = None
    p_drop: float = 0.1
    p_drop_text: float = 0.1
    drop_mode: str = "noise"
    time_sampling: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    segment_seconds: float = 0.5
    _probs: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        probs = (self.p_vanilla, self.p_per_modality, self.p_per_segment, self.p_per_modality_segment)
        if any(p < 0 for p in probs) or not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
            raise ValueError(f"MoNL variant probabilities must be >= 0 and sum to 1, got {probs}")
        for name in ("p_clean", "p_drop", "p_drop_text"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"MoNLConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        object.__setattr__(self, "clean_kinds", tuple(self.clean_kinds))
        bad = sorted(set(self.clean_kinds) - set(CLEAN_KINDS))
        if bad or not self.clean_kinds:
            raise ValueError(f"MoNLConfig.clean_kinds must be a non-empty subset of {CLEAN_KINDS}, got {bad}")
        if len(set(self.clean_kinds)) != len(self.clean_kinds):
            raise ValueError(f"MoNLConfig.clean_kinds names a kind twice: {self.clean_kinds}; weight it instead")
        if self.clean_kind_weights is not None:
            weights = tuple(float(w) for w in self.clean_kind_weights)
            if len(weights) != len(self.clean_kinds) or any(w < 0 for w in weights) or not sum(weights) > 0:
                raise ValueError(
                    f"MoNLConfig.clean_kind_weights must be {len(self.clean_kinds)} numbers >= 0, one per "
                    f"clean kind {self.clean_kinds}, not all zero; got {self.clean_kind_weights}"
                )
            object.__setattr__(self, "clean_kind_weights", weights)
        if self.drop_mode not in ("noise", "absent"):
            raise ValueError(f"MoNLConfig.drop_mode must be 'noise' or 'absent', got {self.drop_mode!r}")
        if self.time_sampling not in ("uniform", "logit_normal"):
            raise ValueError(
                f"MoNLConfig.time_sampling must be uniform/logit_normal, got {self.time_sampling!r}"
            )
        if not self.logit_std > 0 or not self.segment_seconds > 0:
            raise ValueError("MoNLConfig.logit_std and segment_seconds must be positive")
        object.__setattr__(self, "_probs", probs)


def sample_times(shape: tuple[int, ...], config: MoNLConfig, generator=None, device=None) -> Tensor:  # type: ignore[no-untyped-def]
    """Levels of noisy tokens, in (0, 1]."""
    if config.time_sampling == "uniform":
        return 1.0 - torch.rand(shape, generator=generator, device=device)
    z = torch.randn(shape, generator=generator, device=device)
    return torch.sigmoid(config.logit_mean + config.logit_std * z).clamp(_MIN_LEVEL, 1.0)


def _clean_masks(  # type: ignore[no-untyped-def]
    batch: int, m_count: int, s_count: int, kinds: list[str], weights: list[float] | None, generator, device
) -> Tensor:
    """[B, M, S] bool: the clean tokens of each example for a kind drawn per example from `kinds`,
    uniformly or with probabilities proportional to `weights`."""
    seg = torch.arange(s_count, device=device).view(1, 1, s_count)  # [1, 1, S]
    mod = torch.arange(m_count, device=device).view(1, m_count, 1)  # [1, M, 1]
    u = torch.rand(batch, 6, generator=generator, device=device)  # one column per random choice
    masks = []
    for kind in kinds:
        if kind in ("modality", "all_but_one"):  # the one clean / the one generated modality
            pick = (u[:, 0] * m_count).long().clamp(max=m_count - 1)
            one = mod == pick.view(-1, 1, 1)
            masks.append((one if kind == "modality" else ~one).expand(batch, m_count, s_count))
        elif kind == "prefix":
            k = 1 + (u[:, 1] * (s_count - 1)).long().clamp(max=s_count - 2)  # [1, S-1]
            masks.append((seg < k.view(-1, 1, 1)).expand(batch, m_count, s_count))
        elif kind == "ends":
            g0 = 1 + (u[:, 2] * (s_count - 2)).long().clamp(max=s_count - 3)  # [1, S-2]
            span = s_count - 1 - g0  # number of choices for g1 in [g0 + 1, S - 1], >= 1
            g1 = g0 + 1 + torch.minimum((u[:, 3] * span).long(), span - 1)
            masks.append(
                ((seg < g0.view(-1, 1, 1)) | (seg >= g1.view(-1, 1, 1))).expand(batch, m_count, s_count)
            )
        else:  # random segments; one kept noisy, another forced clean
            coin = torch.rand(batch, 1, s_count, generator=generator, device=device) < 0.5
            keep = (u[:, 4] * s_count).long().clamp(max=s_count - 1)
            force = (keep + 1 + (u[:, 5] * (s_count - 1)).long().clamp(max=s_count - 2)) % s_count
            chosen = (coin | (seg == force.view(-1, 1, 1))) & (seg != keep.view(-1, 1, 1))
            masks.append(chosen.expand(batch, m_count, s_count))
    if weights is None:  # the uniform draw keeps earlier runs' random streams
        which = torch.randint(len(kinds), (batch,), generator=generator, device=device)
    else:
        probs = torch.tensor(weights, dtype=torch.float32, device=device)
        which = torch.multinomial(probs, batch, replacement=True, generator=generator)
    stacked = torch.stack(masks)  # [K, B, M, S]
    return stacked[which, torch.arange(batch, device=device)]  # [B, M, S]


def sample_levels(
    x0: Mapping[str, Tensor],
    specs: Mapping[str, ModalitySpec],
    config: MoNLConfig = MoNLConfig(),
    generator: torch.Generator | None = None,
) -> NoiseLevels:
    """Draw MoNL noise levels for a batch of clean latents `x0` ([B, T_m, ...] per modality)."""
    names = sorted(x0)
    if not names:
        raise ValueError("sample_levels needs at least one modality")
    missing = [m for m in names if m not in specs]
    if missing:
        raise ValueError(f"latents name modalities {missing} without a ModalitySpec (specs: {sorted(specs)})")
    batch, device = x0[names[0]].shape[0], x0[names[0]].device
    for m in names:
        if x0[m].ndim != specs[m].latent_rank or x0[m].shape[0] != batch:
            raise ValueError(
                f"latents of {m!r} have shape {tuple(x0[m].shape)}; expected rank "
                f"{specs[m].latent_rank} and batch {batch}"
            )
    seg_s = config.segment_seconds
    absent: frozenset[str] = frozenset()
    if config.drop_mode == "absent" and len(names) > 1 and config.p_drop > 0:
        u = torch.rand(2, generator=generator, device=device).tolist()  # the one host draw per batch
        if u[0] < config.p_drop:
            absent = frozenset([names[min(int(u[1] * len(names)), len(names) - 1)]])
            names = [m for m in names if m not in absent]
    m_count = len(names)
    s_count = max(num_segments(x0[m].shape[1], specs[m].rate_hz, seg_s) for m in names)

    u = sample_times((batch, m_count, s_count), config, generator, device)  # [B, M, S]
    probs = torch.tensor(config._probs, device=device)
    variant = torch.multinomial(probs, batch, replacement=True, generator=generator)  # [B]
    options = torch.stack(
        [
            u[:, :1, :1].expand_as(u),  # vanilla
            u[:, :, :1].expand_as(u),  # per_modality
            u[:, :1, :].expand_as(u),  # per_segment
            u,  # per_modality_segment
        ]
    )  # [4, B, M, S]
    t = options[variant, torch.arange(batch, device=device)]  # [B, M, S]

    allowed = {
        "modality": m_count >= 2, "all_but_one": m_count >= 2, "prefix": s_count >= 2, "ends": s_count >= 3,
        "random": s_count >= 2,
    }
    weight_of = dict(zip(config.clean_kinds, config.clean_kind_weights or [1.0] * len(config.clean_kinds)))
    kinds = [k for k in config.clean_kinds if allowed[k] and weight_of[k] > 0]
    if kinds and config.p_clean > 0:
        apply = torch.rand(batch, generator=generator, device=device) < config.p_clean
        weights = [weight_of[k] for k in kinds] if config.clean_kind_weights is not None else None
        clean = _clean_masks(batch, m_count, s_count, kinds, weights, generator, device) & apply.view(-1, 1, 1)
        t = torch.where(clean, torch.zeros_like(t), t)
    if config.drop_mode == "noise" and m_count >= 2 and config.p_drop > 0:
        apply = torch.rand(batch, generator=generator, device=device) < config.p_drop
        pick = torch.randint(m_count, (batch,), generator=generator, device=device)
        drop = (torch.arange(m_count, device=device).view(1, -1) == pick.view(-1, 1)) & apply.view(
            -1, 1
        )  # [B, M]
        t = torch.where(drop.unsqueeze(-1), torch.ones_like(t), t)
    text_null = None
    if config.p_drop_text > 0:
        text_null = torch.rand(batch, generator=generator, device=device) < config.p_drop_text

    levels = {}
    for i, m in enumerate(names):
        seg = segment_ids(x0[m].shape[1], specs[m].rate_hz, seg_s, device=device)  # [T_m]
        levels[m] = t[:, i, seg]  # [B, T_m]
    return NoiseLevels(levels=levels, absent=absent, text_null=text_null, variant=variant)


def apply_null_text(cond: Cond | None, null_cond: Cond | None, text_null: Tensor | None) -> Cond | None:
    """Per example, swap `cond` for `null_cond` (batch 1 or B) where text_null is True."""
    if cond is None or text_null is None or null_cond is None:
        return cond
    batch = text_null.shape[0]

    def pick(name: str) -> Tensor | None:
        c, n = getattr(cond, name), getattr(null_cond, name)
        if c is None:
            return None
        if n is None:
            raise ValueError(f"null Cond lacks {name!r} that the Cond has")
        n = n.expand(batch, *n.shape[1:]) if n.shape[0] == 1 else n
        if n.shape != c.shape:
            raise ValueError(f"null Cond {name} has shape {tuple(n.shape)}, the Cond {tuple(c.shape)}")
        return torch.where(text_null.view(-1, *([1] * (c.ndim - 1))), n.to(c.dtype), c)

    return replace(cond, **{f.name: pick(f.name) for f in fields(cond)})
