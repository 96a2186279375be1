"""Tasks are noise-level masks: a role per (modality, segment), never new model code.

    role        symbol  start level   during sampling (global clock tau: 1 -> 0)
    GEN         N       1             level = tau                 (generated from noise)
    EDIT(t0)    E       t0            level = min(tau, t0)         (SDEdit: input noised to t0)
    GIVEN       G       0             level = 0, value = the input (never updated)
    ABSENT      .       -             the modality is not in the sequence at all

A 4 s clip with 1 s segments and both modalities at 2 Hz (the example in docs/design.md):

    time (s)        0.0 0.5 | 1.0 1.5 | 2.0 2.5 | 3.0 3.5
    segment           0   0 |   1   1 |   2   2 |   3   3
    dance2music   motion: G   G   G   G   G   G   G   G
                  audio : N   N   N   N   N   N   N   N
    interpolate   motion: G   G   N   N   N   N   G   G
                  audio : G   G   N   N   N   N   G   G

A Task stores, per modality, a list of time spans (seconds) with a role; later spans override
earlier ones and a span starting below 0 counts from the end (`Span(-1.0, None, GIVEN)` is the
last second). Span edges snap to the nearest segment boundary, because levels must be constant
within a segment (the DiT computes one modulation per (modality, segment)). Modalities a task
does not name are ABSENT. `Task.picture(...)` draws the resolved mask like the table above.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mmgen.core.timeline import ModalitySpec, segment_ids

_SNAP_EPS = 1e-6


@dataclass(frozen=True)
class Role:
    """GEN, GIVEN, ABSENT (constants) or EDIT(t0) with t0 in (0, 1]."""

    kind: str
    t0: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("gen", "given", "edit", "absent"):
            raise ValueError(f"Role.kind must be gen/given/edit/absent, got {self.kind!r}")
        if self.kind == "edit" and not (0.0 < self.t0 <= 1.0):
            raise ValueError(f"EDIT(t0) needs t0 in (0, 1], got {self.t0}")

    @classmethod
    def EDIT(cls, t0: float) -> Role:  # reads like the GEN / GIVEN / ABSENT constants
        return cls("edit", float(t0))

    @property
    def start(self) -> float:
        """The level a token of this role starts at (GIVEN: 0, GEN: 1, EDIT: t0)."""
        return {"gen": 1.0, "given": 0.0, "edit": self.t0, "absent": math.nan}[self.kind]

    @property
    def symbol(self) -> str:
        return {"gen": "N", "given": "G", "edit": "E", "absent": "."}[self.kind]

    @property
    def needs_input(self) -> bool:
        return self.kind in ("given", "edit")

    def __repr__(self) -> str:
        return f"EDIT({self.t0})" if self.kind == "edit" else self.kind.upper()


Role.GEN = Role("gen")  # type: ignore[attr-defined]
Role.GIVEN = Role("given")  # type: ignore[attr-defined]
Role.ABSENT = Role("absent")  # type: ignore[attr-defined]
GEN: Role = Role.GEN  # type: ignore[attr-defined]
GIVEN: Role = Role.GIVEN  # type: ignore[attr-defined]
ABSENT: Role = Role.ABSENT  # type: ignore[attr-defined]
EDIT = Role.EDIT


@dataclass(frozen=True)
class Span:
    """Role over [start, end) seconds; negative values count from the end, end None = to the end."""

    start: float
    end: float | None
    role: Role

    def bounds(self, total: float) -> tuple[float, float]:
        a = self.start + total if self.start < 0 else self.start
        b = total if self.end is None else (self.end + total if self.end <= 0 else self.end)
        return max(0.0, a), min(total, b)


@dataclass(frozen=True)
class ResolvedTask:
    """A task laid over concrete lengths: per present modality the start level of every frame."""

    start: dict[str, Tensor]  # [T_m] float: 0 GIVEN, 1 GEN, t0 EDIT
    needs_input: dict[str, bool]  # the modality has GIVEN or EDIT frames

    def levels_at(self, tau: float) -> dict[str, Tensor]:
        """Level of every frame when the global clock reads tau: min(tau, start)."""
        return {m: s.clamp(max=tau) for m, s in self.start.items()}


@dataclass(frozen=True)
class Task:
    """Role per (modality, segment). Build with presets or `Task.from_roles`."""

    name: str
    spans: Mapping[str, tuple[Span, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m, spans in self.spans.items():
            if not spans:
                raise ValueError(f"task {self.name!r}: modality {m!r} has no spans")
            for sp in spans:
                if not isinstance(sp, Span):
                    raise TypeError(f"task {self.name!r}: {m!r} spans must be Span, got {type(sp).__name__}")
                if sp.role.kind == "absent" and len(spans) > 1:
                    raise ValueError(f"task {self.name!r}: ABSENT applies to a whole modality ({m!r})")

    @classmethod
    def from_roles(cls, name: str, roles: Mapping[str, Role | Sequence[Span]]) -> Task:
        """`{"motion": GIVEN, "audio": [Span(0, 1, GIVEN), Span(1, None, GEN)]}` -> Task."""
        spans = {m: (Span(0.0, None, r),) if isinstance(r, Role) else tuple(r) for m, r in roles.items()}
        return cls(name, spans)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, sp in self.spans.items() if sp[0].role.kind != "absent")

    def check_modalities(self, available: Sequence[str]) -> None:
        unknown = sorted(set(self.spans) - set(available))
        if unknown:
            raise ValueError(
                f"task {self.name!r} names modalities {unknown} the model lacks (has {sorted(available)})"
            )

    def segment_roles(self, total_seconds: float, segment_seconds: float, modality: str) -> list[Role]:
        """Role of each segment of `modality` over a clip of `total_seconds`."""
        if total_seconds <= 0:
            raise ValueError(f"task {self.name!r}: clip length must be positive, got {total_seconds}")
        count = max(1, math.ceil(total_seconds / segment_seconds - _SNAP_EPS))
        roles = [ABSENT] * count
        for sp in self.spans.get(modality, (Span(0.0, None, ABSENT),)):
            a, b = sp.bounds(total_seconds)
            lo = math.floor(a / segment_seconds + 0.5)  # snap to the nearest segment boundary
            hi = count if sp.end is None else math.floor(b / segment_seconds + 0.5)
            for k in range(max(0, lo), min(count, hi)):
                roles[k] = sp.role
        return roles

    def resolve(
        self,
        specs: Mapping[str, ModalitySpec],
        num_frames: Mapping[str, int],
        segment_seconds: float,
        device: torch.device | str | None = None,
    ) -> ResolvedTask:
        """Per present modality, the start level of every latent frame ([T_m] float32)."""
        self.check_modalities(list(specs))
        if not self.modalities:
            raise ValueError(f"task {self.name!r} has no present modality")
        missing = [m for m in self.modalities if m not in num_frames]
        if missing:
            raise ValueError(f"task {self.name!r}: no length given for modalities {missing}")
        total = max(num_frames[m] / specs[m].rate_hz for m in self.modalities)
        start, needs = {}, {}
        for m in self.modalities:
            roles = self.segment_roles(total, segment_seconds, m)
            if any(r.kind == "absent" for r in roles):
                raise ValueError(f"task {self.name!r}: modality {m!r} has segments without a role")
            seg = segment_ids(num_frames[m], specs[m].rate_hz, segment_seconds)
            seg = seg.clamp(max=len(roles) - 1)
            table = torch.tensor([r.start for r in roles], dtype=torch.float32)
            start[m] = table[seg].to(device)
            needs[m] = any(roles[k].needs_input for k in set(seg.tolist()))
        return ResolvedTask(start=start, needs_input=needs)

    def levels_at(
        self,
        tau: float,
        specs: Mapping[str, ModalitySpec],
        num_frames: Mapping[str, int],
        segment_seconds: float,
    ) -> dict[str, Tensor]:
        """Level of every latent frame [T_m] when the global clock reads tau."""
        return self.resolve(specs, num_frames, segment_seconds).levels_at(tau)

    def picture(self, total_seconds: float, segment_seconds: float) -> str:
        """ASCII mask, one column per segment: N GEN, G GIVEN, E EDIT, . ABSENT."""
        names = list(self.spans)
        width = max([len("time (s)")] + [len(m) for m in names])
        count = max(1, math.ceil(total_seconds / segment_seconds - _SNAP_EPS))
        head = " ".join(f"{k * segment_seconds:4.1f}" for k in range(count))
        rows = [f"{'time (s)':<{width}}  {head}"]
        for m in names:
            roles = self.segment_roles(total_seconds, segment_seconds, m)
            rows.append(f"{m:<{width}}  " + " ".join(f"{r.symbol:>4}" for r in roles))
        return f"task {self.name!r}\n" + "\n".join(rows)


# ---- presets -------------------------------------------------------------------------------------


def joint(modalities: Sequence[str] = ("audio", "motion")) -> Task:
    """Every listed modality GEN."""
    return Task.from_roles("joint", {m: GEN for m in modalities})


def _conditional(name: str, given: str, gen: str, via: Sequence[str] = ()) -> Task:
    """`given` GIVEN, `gen` GEN, and every `via` modality GEN alongside it.

    A `via` modality is a bridge the model generates on the way: video2audio via motion asks the
    DiT for the dance it sees and the music of that dance at once, so the music can lock onto a
    dance that is generated with it instead of onto video latents directly. It is ordinary
    joint sampling; the bridge comes back in the output like any generated modality.
    """
    via = (via,) if isinstance(via, str) else tuple(via)
    clash = sorted({given, gen} & set(via))
    if clash:
        raise ValueError(f"task {name!r}: via {clash} is already the given or the generated modality")
    if len(set(via)) != len(via):
        raise ValueError(f"task {name!r}: via names a modality twice: {list(via)}")
    return Task.from_roles(name, {given: GIVEN, gen: GEN, **{m: GEN for m in via}})


def dance2music(motion: str = "motion", audio: str = "audio", via: Sequence[str] = ()) -> Task:
    return _conditional("dance2music", motion, audio, via)


def music2dance(audio: str = "audio", motion: str = "motion", via: Sequence[str] = ()) -> Task:
    return _conditional("music2dance", audio, motion, via)


def video2audio(video: str = "video", audio: str = "audio", via: Sequence[str] = ()) -> Task:
    return _conditional("video2audio", video, audio, via)


def audio2video(audio: str = "audio", video: str = "video", via: Sequence[str] = ()) -> Task:
    return _conditional("audio2video", audio, video, via)


def _with_conditions(roles: dict[str, Role | Sequence[Span]], conditions: Sequence[str]) -> dict:
    for c in conditions:
        if c in roles:
            raise ValueError(f"modality {c!r} is both generated and a condition")
        roles[c] = GIVEN
    return roles


def interpolate(
    modalities: Sequence[str] = ("audio", "motion"), head: float = 1.0, tail: float | None = None
) -> Task:
    """All modalities GIVEN over the first `head` and last `tail` seconds, GEN in between."""
    tail = head if tail is None else tail
    if head < 0 or tail < 0:
        raise ValueError(f"interpolate: head/tail seconds must be >= 0, got {head}, {tail}")
    spans = [Span(0.0, None, GEN), Span(0.0, head, GIVEN)]
    if tail > 0:
        spans.append(Span(-tail, None, GIVEN))
    return Task.from_roles("interpolate", {m: spans for m in modalities})


def continuation(
    modalities: Sequence[str] = ("audio", "motion"), prefix: float = 1.0, conditions: Sequence[str] = ()
) -> Task:
    """The first `prefix` seconds GIVEN, the rest GEN; `conditions` GIVEN throughout."""
    if prefix <= 0:
        raise ValueError(f"continue: prefix seconds must be positive, got {prefix}")
    spans = [Span(0.0, None, GEN), Span(0.0, prefix, GIVEN)]
    return Task.from_roles("continue", _with_conditions({m: spans for m in modalities}, conditions))


def inpaint(
    modalities: Sequence[str] = ("audio", "motion"),
    start: float = 1.0,
    end: float = 2.0,
    conditions: Sequence[str] = (),
) -> Task:
    """[start, end) seconds GEN, everything else GIVEN."""
    if not end > start >= 0:
        raise ValueError(f"inpaint: need 0 <= start < end, got {start}, {end}")
    spans = [Span(0.0, None, GIVEN), Span(start, end, GEN)]
    return Task.from_roles("inpaint", _with_conditions({m: spans for m in modalities}, conditions))


def edit(
    modalities: Sequence[str] = ("audio",),
    start: float = 0.0,
    end: float | None = None,
    t0: float = 0.5,
    conditions: Sequence[str] = (),
) -> Task:
    """SDEdit: [start, end) seconds start from the input noised to t0; the rest GIVEN."""
    spans = [Span(0.0, None, GIVEN), Span(start, end, EDIT(t0))]
    return Task.from_roles("edit", _with_conditions({m: spans for m in modalities}, conditions))


PRESETS: dict[str, Callable[..., Task]] = {
    "joint": joint,
    "dance2music": dance2music,
    "music2dance": music2dance,
    "video2audio": video2audio,
    "audio2video": audio2video,
    "interpolate": interpolate,
    "continue": continuation,
    "inpaint": inpaint,
    "edit": edit,
}


def preset_parameters(name: str, arguments: Iterable[str] = (), where: str = "") -> Mapping[str, inspect.Parameter]:
    """The parameters of preset `name`, after checking that it exists and takes every argument named.

    `where` prefixes the error (e.g. "defaults.task_args: " for arguments read from pipeline.yaml).
    """
    if name not in PRESETS:
        raise ValueError(f"{where}unknown task {name!r}; presets: {', '.join(sorted(PRESETS))}")
    params = inspect.signature(PRESETS[name]).parameters
    unknown = sorted(set(arguments) - set(params))
    if unknown:
        raise ValueError(f"{where}task {name!r} takes no argument {unknown}; it takes {sorted(params)}")
    return params


def get_task(name: str, **kwargs) -> Task:  # type: ignore[no-untyped-def]
    """A preset by name with its keyword arguments (e.g. `get_task("continue", prefix=2.0)`)."""
    preset_parameters(name, kwargs)
    return PRESETS[name](**kwargs)
