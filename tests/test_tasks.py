"""Tasks as masks: presets resolve to the picture in docs/design.md, bad tasks raise, `sample` honours them."""

import pytest
import torch

from mmgen.core.timeline import ModalitySpec
from mmgen.diffusion import EDIT, GEN, GIVEN, Span, Task, VPCosine, get_task, sample
from mmgen.diffusion.tasks import (
    Role,
    continuation,
    dance2music,
    edit,
    inpaint,
    interpolate,
    joint,
    video2audio,
)

SPECS = {"audio": ModalitySpec(4, 2.0), "motion": ModalitySpec(3, 2.0)}  # 2 Hz, as in docs/design.md
FRAMES = {"audio": 8, "motion": 8}  # 4 s
V = VPCosine(prediction="v")


def rows(task, specs=SPECS, frames=FRAMES, seg=1.0):
    return {m: s.tolist() for m, s in task.resolve(specs, frames, seg).start.items()}


def test_presets_match_the_design_example():
    assert rows(dance2music()) == {"motion": [0.0] * 8, "audio": [1.0] * 8}
    assert rows(interpolate(head=1.0)) == {m: [0, 0, 1, 1, 1, 1, 0, 0] for m in ("audio", "motion")}
    assert rows(continuation(("audio",), prefix=2.0)) == {"audio": [0, 0, 0, 0, 1, 1, 1, 1]}
    assert rows(inpaint(start=1.0, end=3.0)) == {m: [0, 0, 1, 1, 1, 1, 0, 0] for m in ("audio", "motion")}
    assert rows(edit(("audio",), 1.0, 2.0, t0=0.6, conditions=("motion",))) == {
        "audio": [0, 0, pytest.approx(0.6), pytest.approx(0.6), 0, 0, 0, 0],
        "motion": [0.0] * 8,
    }
    assert rows(joint()) == {"audio": [1.0] * 8, "motion": [1.0] * 8}
    assert rows(get_task("music2dance")) == {"audio": [0.0] * 8, "motion": [1.0] * 8}
    # via: the bridge modality is generated alongside (video given, dance and music generated)
    specs = SPECS | {"video": ModalitySpec(2, 1.0, spatial=(2, 2))}
    frames = FRAMES | {"video": 4}
    assert rows(video2audio(via=("motion",)), specs, frames) == {
        "video": [0.0] * 4, "audio": [1.0] * 8, "motion": [1.0] * 8
    }
    assert rows(video2audio(via="motion"), specs, frames) == rows(video2audio(via=["motion"]), specs, frames)
    assert rows(video2audio(), specs, frames) == {"video": [0.0] * 4, "audio": [1.0] * 8}


def test_picture_golden():
    expected = (
        "task 'interpolate'\n"
        "time (s)   0.0  1.0  2.0  3.0\n"
        "audio        G    N    N    G\n"
        "motion       G    N    N    G"
    )
    assert interpolate(head=1.0).picture(4.0, 1.0) == expected
    assert Task.from_roles("x", {"video": EDIT(0.3), "audio": Role.ABSENT}).picture(1.0, 0.5).splitlines()[
        2:
    ] == ["video        E    E", "audio        .    ."]


def test_segments_are_shared_by_time_across_rates():
    specs = {"audio": ModalitySpec(4, 8.0), "video": ModalitySpec(2, 2.0, spatial=(2, 2))}
    task = inpaint(("audio", "video"), start=1.0, end=2.0)
    res = task.resolve(specs, {"audio": 24, "video": 6}, 0.5)
    a_time = torch.arange(24) / 8.0
    v_time = torch.arange(6) / 2.0
    assert torch.equal(res.start["audio"], ((a_time >= 1.0) & (a_time < 2.0)).float())
    assert torch.equal(res.start["video"], ((v_time >= 1.0) & (v_time < 2.0)).float())
    lv = res.levels_at(0.3)
    assert lv["audio"].max() == pytest.approx(0.3) and lv["audio"][:8].max() == 0


def test_span_edges_snap_to_segments_and_count_from_the_end():
    task = Task.from_roles("t", {"audio": [Span(0, None, GEN), Span(-1.2, None, GIVEN)]})
    # 4 s, segments of 0.5 s: -1.2 s from the end is 2.8 s, which snaps to the boundary at 3.0 s
    assert rows(task, {"audio": SPECS["audio"]}, {"audio": 8}, 0.5) == {"audio": [1, 1, 1, 1, 1, 1, 0, 0]}


def test_bad_tasks_raise():
    with pytest.raises(ValueError, match="t0 in"):
        EDIT(0.0)
    with pytest.raises(ValueError, match="t0 in"):
        EDIT(1.5)
    with pytest.raises(ValueError, match="lacks"):
        dance2music().resolve({"audio": SPECS["audio"]}, FRAMES, 0.5)
    with pytest.raises(ValueError, match="whole modality"):
        Task.from_roles("t", {"audio": [Span(0, 1, GEN), Span(1, None, Role.ABSENT)]})
    with pytest.raises(ValueError, match="unknown task"):
        get_task("dance2video")
    with pytest.raises(ValueError, match="both generated and a condition"):
        continuation(("audio",), conditions=("audio",))
    with pytest.raises(ValueError, match="start < end"):
        inpaint(start=2.0, end=1.0)
    with pytest.raises(ValueError, match=r"via \['audio'\] is already the given or the generated"):
        video2audio(via=("audio",))
    with pytest.raises(ValueError, match="via names a modality twice"):
        video2audio(via=("motion", "motion"))


def _model(x, t, cond=None):
    return {m: 0.5 * v for m, v in x.items()}


def test_sample_runs_a_task_and_keeps_given_frames():
    motion = torch.randn(2, 8, 3)
    out = sample(_model, "dance2music", SPECS, {"motion": motion}, steps=4, progress=False, process=V)
    assert set(out) == {"audio", "motion"} and out["audio"].shape == (2, 8, 4)
    assert torch.equal(out["motion"], motion)
    audio = torch.randn(2, 8, 4)
    out = sample(
        _model,
        continuation(("audio",), prefix=2.0),
        SPECS,
        {"audio": audio},
        process=V,
        steps=4,
        progress=False,
        segment_seconds=1.0,
    )
    assert set(out) == {"audio"}  # motion is ABSENT: not in the sequence at all
    assert torch.equal(out["audio"][:, :4], audio[:, :4]) and not torch.equal(
        out["audio"][:, 4:], audio[:, 4:]
    )


def test_sample_rejects_bad_input():
    motion = torch.randn(2, 8, 3)
    with pytest.raises(ValueError, match="no input latents"):
        sample(_model, "dance2music", SPECS, {}, seconds=4.0, progress=False, process=V)
    with pytest.raises(ValueError, match="lacks"):
        sample(_model, "dance2music", SPECS, {"motion": motion, "video": motion}, progress=False, process=V)
    with pytest.raises(ValueError, match=r"must be \[B, T, 3\]"):
        sample(_model, "dance2music", SPECS, {"motion": motion[0]}, progress=False, process=V)
    with pytest.raises(ValueError, match=r"must be \[B, T, 3\]"):
        sample(_model, "dance2music", SPECS, {"motion": torch.randn(2, 8, 5)}, progress=False, process=V)
    with pytest.raises(ValueError, match="frames, the clip needs"):
        sample(_model, "dance2music", SPECS, {"motion": motion}, seconds=3.0, progress=False, process=V)
    with pytest.raises(ValueError, match="batch sizes"):
        sample(_model, "dance2music", SPECS, {"motion": motion}, batch_size=3, progress=False, process=V)
    with pytest.raises(ValueError, match="lacks"):
        sample(_model, Task.from_roles("t", {"piano": GEN}), SPECS, seconds=1.0, progress=False, process=V)


def test_edit_task_regenerates_only_its_span_from_the_noised_input():
    """SDEdit through `sample`: with the exact denoiser of a point mass mu, EDIT frames end at mu,
    GIVEN frames keep the input; a small t0 is a small change only where a model asks for one."""
    mu = torch.tensor([0.5, -1.0, 2.0, 0.0])
    proc = VPCosine(prediction="x0")

    def point_mass(x, t, cond=None):
        return {m: mu.expand_as(v) if m == "audio" else v for m, v in x.items()}

    audio = torch.randn(2, 8, 4)
    out = sample(
        point_mass,
        edit(("audio",), 1.0, 3.0, t0=0.3),
        {"audio": SPECS["audio"]},
        {"audio": audio},
        steps=10,
        process=proc,
        sampler="ddim",
        progress=False,
    )
    assert torch.equal(out["audio"][:, :2], audio[:, :2]) and torch.equal(out["audio"][:, 6:], audio[:, 6:])
    torch.testing.assert_close(out["audio"][:, 2:6], mu.expand(2, 4, 4))
