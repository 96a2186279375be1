"""Pose maps at generation: drawn from the GIVEN dance only, and "dance first, then film it" for
tasks that generate the whole video without one."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from test_pipeline import make_dit, make_media

from mmgen.conditioning import ConditionEncoder
from mmgen.conditioning.pose_map import PoseMapConditioner
from mmgen.data.toydance import generate_clip
from mmgen.diffusion.tasks import GEN, GIVEN, Task
from mmgen.modalities.media import VideoModality
from mmgen.modalities.video import VideoVAE
from mmgen.pipeline import Pipeline


def make_pose_pipeline() -> Pipeline:
    media = make_media()
    torch.manual_seed(0)
    media["video"] = VideoModality(VideoVAE.tiny(temporal_downsample=2))  # 7.5 Hz, 8 x 8 latents
    pose = PoseMapConditioner(size=16, rate_hz=15.0)
    condition = ConditionEncoder({"pose": pose}, map_dim=pose.dim, aligned_rate_hz=15.0)
    dit = make_dit({m: v.spec for m, v in media.items()}, aligned_rate_hz=15.0, map_channels=3, map_size=16)
    defaults = {"steps": 2, "window_seconds": 4.0, "hop_seconds": 2.0, "guidance": {}}
    return Pipeline(dit, media, condition=condition.eval(), defaults=defaults)


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return make_pose_pipeline()


@pytest.fixture(scope="module")
def clip():
    return generate_clip(20003, seconds=2.0)


def record_calls(pipe: Pipeline) -> list[tuple[tuple[str, ...], torch.Tensor, torch.Tensor]]:
    """(modalities in x, Cond.maps, Cond.maps_mask) of every DiT call of the next generation."""
    calls: list = []
    forward = pipe.dit.forward

    def spy(x, t, cond=None, **kw):
        calls.append((tuple(x), cond.maps.detach().clone(), cond.maps_mask.clone()))
        return forward(x, t, cond, **kw)

    pipe.dit.forward = spy
    return calls


def generate(pipe: Pipeline, *args, **kw):
    calls = record_calls(pipe)
    try:
        return pipe.generate(*args, seed=0, progress=False, **kw), calls
    finally:
        del pipe.dit.forward


def test_audio_to_video_makes_the_dance_first_and_draws_the_video_from_its_maps(pipe, clip):
    gen, calls = generate(pipe, "audio2video", {"audio": clip.audio})
    first = [c for c in calls if "video" not in c[0]]
    second = [c for c in calls if "video" in c[0]]
    assert first and second and calls.index(second[0]) == len(first)  # pass 1, then pass 2
    assert all(set(c[0]) == {"audio", "motion"} and not c[2].any() for c in first)
    assert gen.task == "audio2video" and gen.given == ("audio",)
    assert gen.joints is not None and gen.frames is not None and bool(gen.generated["motion"].all())
    assert bool(gen.generated["video"].all()) and not gen.generated["audio"].any()
    assert set(gen.latents) == {"audio", "motion", "video"}
    # pass 2 reads the maps of exactly the dance it returns
    maps = pipe.condition.conditioners["pose"].encode({"motion": torch.from_numpy(gen.joints)}).values
    _, seen, present = second[0]
    assert bool(present[:, : maps.shape[1]].all())
    torch.testing.assert_close(seen[:, : maps.shape[1]], maps, atol=1e-6, rtol=0)


def test_one_pass_when_asked_or_when_the_dance_is_given(pipe, clip):
    gen, calls = generate(pipe, "audio2video", {"audio": clip.audio}, dance_first=False)
    assert gen.joints is None and all("motion" not in c[0] and not c[2].any() for c in calls)
    task = Task.from_roles("dance_audio2video", {"audio": GIVEN, "motion": GIVEN, "video": GEN})
    _, calls = generate(pipe, task, {"audio": clip.audio, "motion": clip.joints})
    assert all("video" in c[0] for c in calls) and all(bool(c[2][:, :30].all()) for c in calls)
    maps = pipe.condition.conditioners["pose"].encode({"motion": torch.from_numpy(clip.joints)[None]}).values
    torch.testing.assert_close(calls[0][1][:, :30], maps, atol=1e-6, rtol=0)
    _, calls = generate(pipe, "music2dance", {"audio": clip.audio})  # no video: nothing to stage
    assert all("video" not in c[0] for c in calls)


def test_interpolation_keeps_one_pass_with_maps_where_the_dance_is_given(pipe, clip):
    given = {"audio": clip.audio, "motion": clip.joints, "video": clip.video}
    gen, calls = generate(pipe, "interpolate", given, task_kwargs={"head": 0.5, "tail": 0.5})
    assert all(set(c[0]) == {"audio", "motion", "video"} for c in calls)
    # 15 Hz over 2 s; the dance is given in the latent frames (7.5 Hz) that start in the first
    # 0.5 s (0 .. 3: maps 0 .. 7) and from 1.5 s on (12 .. 14: maps 24 .. 29)
    present = calls[0][2][0]
    assert bool(present[:8].all()) and not present[8:24].any() and bool(present[24:30].all())
    assert np.array_equal(gen.frames[0, :7], clip.video[:7])


def test_a_saved_pose_map_pipeline_loads_and_generates_the_same(pipe, clip, tmp_path):
    pipe.save_pretrained(tmp_path / "pose")
    loaded = Pipeline.from_pretrained(tmp_path / "pose")
    assert loaded.dit.maps is not None and loaded.condition.conditioners["pose"].size == 16
    a = pipe.generate("audio2video", {"audio": clip.audio}, seed=3, progress=False)
    b = loaded.generate("audio2video", {"audio": clip.audio}, seed=3, progress=False)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.joints, b.joints)


def test_the_cli_films_the_dance_it_makes_unless_asked_for_one_pass(pipe, clip, tmp_path):
    from mmgen.cli import main
    from mmgen.io.export import save_wav

    pipe.save_pretrained(tmp_path / "pose")
    wav = save_wav(tmp_path / "music.wav", clip.audio, clip.sample_rate)
    base = ["generate", "--pipeline", str(tmp_path / "pose"), "--task", "audio2video", "--audio", str(wav), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "two")]) == 0
    assert main([*base, "--out", str(tmp_path / "one"), "--one-pass"]) == 0
    two = sorted(p.name for p in (tmp_path / "two").iterdir() if not p.name.startswith("."))
    one = sorted(p.name for p in (tmp_path / "one").iterdir() if not p.name.startswith("."))
    assert "sample.npz" in two and "sample.mp4" in two  # the dance it filmed comes with the video
    assert "sample.npz" not in one and "sample.mp4" in one


def test_dance_first_hands_every_keyword_of_generate_to_both_passes(pipe, clip, monkeypatch):
    """A keyword added to `generate` must reach both passes without touching the dance-first code."""
    passes: list[dict] = []
    generate_fn = Pipeline.generate

    def spy(self, task, given=None, **kw):
        if kw.get("dance_first") is False:
            passes.append(kw)
        return generate_fn(self, task, given, **kw)

    monkeypatch.setattr(Pipeline, "generate", spy)
    pipe.generate("audio2video", {"audio": clip.audio}, seed=5, progress=False, hop=1.5, dtype="fp32", steps=1)
    assert len(passes) == 2
    per_pass = {"self", "task", "given", "task_kwargs", "sampling"}  # set for each pass itself
    own = set(inspect.signature(generate_fn).parameters) - per_pass
    for kw in passes:
        assert own <= set(kw) and kw["seed"] == 5 and kw["hop"] == 1.5 and kw["steps"] == 1
        assert kw["dtype"] == "fp32" and kw["progress"] is False and kw["dance_first"] is False
    assert passes[1]["batch_size"] == 1  # pass 2 draws one video per dance of pass 1
