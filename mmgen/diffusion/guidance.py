"""Classifier-free guidance by masking and MoMu cross-guidance, all branches in one batched call.

CFG by masking. A condition group drops, in a branch, the GIVEN tokens of the modality of its
name (re-noised to t = 1 with a fixed noise draw per run, so the unconditional branch is
consistent across steps) and/or the conditioners of that guidance group (to their null
embeddings). With a plain `cond` the one conditioner group is "text" (cond -> the caller's
null `uncond`); with a `GroupedCond` (e.g. `ConditionEncoder.grouped`) every conditioner group
can be dropped on its own, and a group named like a modality drops both:

    video2audio with a sync stream derived from the video (conditioner group "video"):
    guidance = {"video": 3.0}
    branch 0: video GIVEN tokens re-noised AND the sync stream at its null    p0
    branch 1: both kept                                                        p1

so the unconditional branch no longer sees the video through the stream. The model never needs
an "unconditional mode".

Several groups combine sequentially (InstructPix2Pix-style nesting), in the order given:

    guidance = {"motion": 2.0, "text": 1.5}          K = 2 groups -> K + 1 branches
    branch 0: motion dropped, text null       p0
    branch 1: motion kept,    text null       p1
    branch 2: motion kept,    text kept       p2
    pred = p0 + 2.0 (p1 - p0) + 1.5 (p2 - p1)

so one group is ordinary CFG p0 + s (p1 - p0), all scales 1 give the fully conditional p_K,
and each later group is guided *given* the earlier ones. Groups not listed stay conditional.

Cross-guided joint sampling (MoMu-Diffusion). While tau > switch the generated modalities
A, B, ... step jointly. From then on each step first makes a joint pass whose x0 estimates are
the partners' "current clean latents" (MoMu step 3; `estimate="previous"` reuses the previous
step's instead and saves that call), then one call with a branch set per generated modality: in
A's branches A's tokens are at their level and every other generated modality is GIVEN (level 0)
with its x0 estimate, and A's update is read from there. With scale s != 1 a "cross" group is
appended last (its dropped state re-noises the partners to t = 1), i.e. MoMu's CFG on the
partner. Measured on a tiny MoNL DiT (tests/test_learning_dit.py): with the default s = 2 and
current estimates, joint samples are clearly more consistent than plain joint sampling; with
s = 1 or stale estimates they are not.

    cross step, A = audio, B = motion, no other guidance, s = 2 (2 calls: B, then 4B):
    joint pass  : audio x_t @ tau | motion x_t @ tau            -> x0_est(audio), x0_est(motion)
    A, dropped  : audio x_t @ tau | motion noise @ 1            } audio = p0 + s (p1 - p0)
    A, kept     : audio x_t @ tau | motion x0_est(motion) @ 0   }
    B, dropped  : audio noise @ 1 | motion x_t @ tau            } motion likewise
    B, kept     : audio x0_est(audio) @ 0 | motion x_t @ tau    }
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from mmgen.core.cond import Cond, GroupedCond
from mmgen.diffusion.process import Process

Latents = dict[str, Tensor]
Levels = dict[str, Tensor]
logger = logging.getLogger(__name__)

ModelFn = Callable[[Latents, Levels, "Cond | None"], Latents]


@dataclass(frozen=True)
class CrossGuidance:
    """MoMu cross-guidance settings.

    Args:
        switch: cross steps run once the clock is at or below it (MoMu's best T_c = 0.5 T).
        scale: CFG scale of the partners' x0 estimates against the partners re-noised to t = 1.
        estimate: "current" (MoMu: a joint pass at this step gives the partners' x0 estimates;
            one extra call per step) or "previous" (reuse the previous step's; one call per step).
    """

    switch: float = 0.5
    scale: float = 2.0
    estimate: str = "current"

    def __post_init__(self) -> None:
        if not 0.0 <= self.switch <= 1.0:
            raise ValueError(f"CrossGuidance.switch must lie in [0, 1], got {self.switch}")
        if not math.isfinite(self.scale):
            raise ValueError(f"CrossGuidance.scale must be finite, got {self.scale}")
        if self.estimate not in ("current", "previous"):
            raise ValueError(f"CrossGuidance.estimate must be 'current' or 'previous', got {self.estimate!r}")


def _expand(mask: Tensor, x: Tensor) -> Tensor:
    return mask.reshape(*mask.shape, *([1] * (x.ndim - mask.ndim)))


class GuidedDenoiser:
    """Maps (x, levels) to guided (x0_hat, eps_hat); built once per sampling run, immutable.

    Args:
        start: start level per token [B, T_m] (0 GIVEN, 1 GEN, t0 EDIT).
        values: clean values of GIVEN / EDIT tokens, like the latents.
        cond: a Cond (with `uncond`, the one condition group "text") or a GroupedCond (the Cond
            of every set of dropped condition groups; `uncond` must then be None).
        guidance: ordered {group: scale}; groups are present modalities and/or condition groups.
        cross: cross-guidance settings or None.
    """

    def __init__(
        self,
        model_fn: ModelFn,
        process: Process,
        start: Levels,
        values: Latents,
        cond: Cond | GroupedCond | None = None,
        uncond: Cond | None = None,
        guidance: Mapping[str, float] | None = None,
        cross: CrossGuidance | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.model_fn, self.process, self.cross = model_fn, process, cross
        if isinstance(cond, GroupedCond):
            if uncond is not None:
                raise ValueError(
                    "with a GroupedCond, give no `uncond`: its null Conds come from the GroupedCond"
                )
            self.cond_of: GroupedCond | None = cond
        else:
            self.cond_of = GroupedCond.pair(cond, uncond) if cond is not None and uncond is not None else None
        self.fixed_cond = cond if self.cond_of is None else None
        cond_groups = self.cond_of.groups if self.cond_of is not None else frozenset()
        self.given = {m: s == 0 for m, s in start.items()}  # [B, T] bool
        self.moving = {m: s > 0 for m, s in start.items()}  # GEN and EDIT tokens
        self.groups: list[tuple[str, float]] = []
        self.renoised: set[str] = set()  # modality groups whose GIVEN tokens a drop re-noises
        for name, scale in (guidance or {}).items():
            if not math.isfinite(scale):
                raise ValueError(f"guidance scale of {name!r} must be finite, got {scale}")
            if name == "cross":
                raise ValueError("'cross' is reserved for cross-guidance; it cannot name a guidance group")
            if name == "text" and "text" not in cond_groups and not isinstance(cond, GroupedCond):
                raise ValueError("text guidance needs both `cond` and the null `uncond`")
            if name not in cond_groups and name not in start:
                known = (
                    f"a condition group {sorted(cond_groups)}" if isinstance(cond, GroupedCond) else "'text'"
                )
                raise ValueError(
                    f"guidance group {name!r} is neither {known} nor a present modality {sorted(start)}"
                )
            if name in start and bool(self.given[name].any()):  # once per run, not per step
                self.renoised.add(str(name))
            elif name not in cond_groups:
                logger.info("guidance group %r has no GIVEN tokens here; it is skipped", name)
                continue
            self.groups.append((str(name), float(scale)))
        self.cross_set: list[str] = []
        if cross is not None:
            self.cross_set = [m for m in start if bool(self.moving[m].any())]
            if len(self.cross_set) < 2:
                raise ValueError(f"cross-guidance needs >= 2 generated modalities, got {self.cross_set}")
        one = torch.ones((), dtype=torch.float32)
        self.alpha1, self.sigma1 = (float(v) for v in process.alpha_sigma(one))
        noisy = self.renoised | set(self.cross_set)
        self.null_noise = {
            m: torch.randn(
                values[m].shape, generator=generator, device=values[m].device, dtype=values[m].dtype
            )
            for m in sorted(noisy)
        }
        self.dropped_given = {  # GIVEN tokens of a dropped modality group: the input re-noised to t = 1
            g: self.alpha1 * values[g] + self.sigma1 * self.null_noise[g]
            for g, _ in self.groups
            if g in self.renoised
        }

    def _branch(
        self,
        x: Latents,
        levels: Levels,
        head: str | None,
        present: set[str],
        groups: list[str],
        x0_prev: Latents | None,
    ) -> tuple[Latents, Levels, Cond | None]:
        xb, lb = dict(x), dict(levels)
        if head is not None and x0_prev is not None:
            partners_kept = "cross" not in groups or "cross" in present
            for m in self.cross_set:
                if m == head:
                    continue
                mov = _expand(self.moving[m], x[m])
                if partners_kept:
                    xb[m] = torch.where(mov, x0_prev[m], x[m])
                    lb[m] = torch.zeros_like(levels[m])
                else:
                    xb[m] = torch.where(
                        mov, self.alpha1 * x0_prev[m] + self.sigma1 * self.null_noise[m], x[m]
                    )
                    lb[m] = torch.where(self.moving[m], torch.ones_like(levels[m]), levels[m])
        for g in groups:
            if g in present or g not in self.renoised:
                continue
            xb[g] = torch.where(_expand(self.given[g], x[g]), self.dropped_given[g], xb[g])
            lb[g] = torch.where(self.given[g], torch.ones_like(levels[g]), lb[g])
        if self.cond_of is None:
            return xb, lb, self.fixed_cond
        dropped = frozenset(g for g in groups if g not in present and g in self.cond_of.groups)
        return xb, lb, self.cond_of(dropped)

    def __call__(
        self, x: Latents, levels: Levels, tau: float, x0_prev: Latents | None = None
    ) -> tuple[Latents, Latents, int]:
        """Guided (x0_hat, eps_hat) per modality, and the number of branches evaluated.

        `tau` is the clock (a host float) and decides the cross phase; `x0_prev` the previous
        call's x0_hat (used by cross steps with estimate="previous").
        """
        cross = self.cross
        if cross is None or tau > cross.switch or (cross.estimate == "previous" and x0_prev is None):
            pred, n = self._guided(x, levels, None, list(self.groups), None)
            return (*self._to_x0_eps(pred, x, levels), n)
        n = 0
        if cross.estimate == "current":  # MoMu: the partners' x0 estimates at this very step
            joint, n = self._guided(x, levels, None, list(self.groups), None)
            x0_prev = self._to_x0_eps(joint, x, levels)[0]
        groups = list(self.groups) + ([("cross", cross.scale)] if cross.scale != 1.0 else [])
        pred, k = self._guided(x, levels, self.cross_set, groups, x0_prev)
        return (*self._to_x0_eps(pred, x, levels), n + k)

    def _to_x0_eps(self, pred: Latents, x: Latents, levels: Levels) -> tuple[Latents, Latents]:
        out = {m: self.process.to_x0_eps(pred[m], x[m], levels[m]) for m in x}
        return {m: v[0] for m, v in out.items()}, {m: v[1] for m, v in out.items()}

    def _guided(
        self,
        x: Latents,
        levels: Levels,
        heads: list[str] | None,
        groups: list[tuple[str, float]],
        x0_est: Latents | None,
    ) -> tuple[Latents, int]:
        """Nested-CFG prediction per modality from one batched call; with `heads` (cross step) a
        head modality's prediction comes from its own branch set, partners GIVEN as x0_est."""
        names = [g for g, _ in groups]
        head_list: list[str | None] = list(heads) if heads else [None]
        branches = [
            self._branch(x, levels, head, set(names[:j]), names, x0_est)
            for head in head_list
            for j in range(len(groups) + 1)
        ]
        preds = self._call(branches)
        out = {}
        for m in x:
            c = head_list.index(m) if heads and m in heads else 0
            p = [preds[c * (len(groups) + 1) + j][m] for j in range(len(groups) + 1)]
            guided = p[0]
            for k, (_, scale) in enumerate(groups):
                guided = guided + scale * (p[k + 1] - p[k])
            out[m] = guided
        return out, len(branches)

    def _call(self, branches: list[tuple[Latents, Levels, Cond | None]]) -> list[Latents]:
        """One model call on all branches stacked along the batch; returns per-branch float32 outputs."""
        if len(branches) == 1:
            xs, ls, cond = branches[0]
        else:
            xs = {m: torch.cat([b[0][m] for b in branches]) for m in branches[0][0]}  # [n * B, T, ...]
            ls = {m: torch.cat([b[1][m] for b in branches]) for m in branches[0][1]}  # [n * B, T]
            conds = [b[2] for b in branches]
            cond = None if conds[0] is None else Cond.cat(conds)  # type: ignore[arg-type]
        out = self.model_fn(xs, ls, cond)
        if not isinstance(out, Mapping) or set(out) != set(xs):
            got = sorted(out) if isinstance(out, Mapping) else type(out).__name__
            raise ValueError(f"model_fn returned modalities {got}, expected {sorted(xs)}")
        for m, v in out.items():
            if v.shape != xs[m].shape:
                raise ValueError(
                    f"model_fn output {m!r} has shape {tuple(v.shape)}, expected {tuple(xs[m].shape)}"
                )
        n = len(branches)
        chunks = {m: v.to(torch.promote_types(v.dtype, torch.float32)).chunk(n) for m, v in out.items()}
        return [{m: c[i] for m, c in chunks.items()} for i in range(n)]
