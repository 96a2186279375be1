"""The video sync stream at generation: built from the given frames, present only where the video
is GIVEN, cut per long-form window, carried by a saved pipeline."""

from __future__ import annotations

import pytest
import torch
from test_pipeline import make_dit, make_media

from mmgen.conditioning import ConditionEncoder
from mmgen.conditioning.video_sync import VideoSyncConditioner, VideoSyncEncoder
from mmgen.core.pretrained import configs_relative_to
from mmgen.data.toydance import generate_clip
from mmgen.modalities.media import VideoModality
from mmgen.modalities.video import VideoVAE
from mmgen.pipeline import Pipeline


def make_sync_pipeline(folder) -> Pipeline:
    torch.manual_seed(0)
    VideoSyncEncoder(hidden=16, feature_dim=8, dilations=(1, 2)).save_pretrained(folder / "sync")
    with configs_relative_to(folder / "condition"):
        condition = ConditionEncoder({"sync": VideoSyncConditioner(dim=16, encoder="../sync")},
                                     aligned_dim=16, aligned_rate_hz=15.0)
    media = make_media()
    torch.manual_seed(0)
    media["video"] = VideoModality(VideoVAE.tiny(temporal_downsample=2))  # 7.5 Hz, as shipped
    dit = make_dit({m: v.spec for m, v in media.items()}, aligned_dim=16, aligned_rate_hz=15.0,
                   aligned_targets=["audio", "motion"])
    with torch.no_grad():  # the projections start at zero: give the stream a path to the output
        for p in condition.parameters():
            p.add_(0.1 * torch.randn_like(p))
    defaults = {"steps": 2, "window_seconds": 4.0, "hop_seconds": 2.0, "guidance": {"video": 2.0}}
    return Pipeline(dit, media, condition=condition.eval(), defaults=defaults)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> Pipeline:
    return make_sync_pipeline(tmp_path_factory.mktemp("syncpipe"))


def recorded_streams(pipe: Pipeline) -> list[torch.Tensor]:
    """Cond.aligned [S, D] of every example of every DiT call of the next generation (guidance
    batches the conditional and the unconditional rows into one call)."""
    calls: list[torch.Tensor] = []
    forward = pipe.dit.forward

    def spy(x, t, cond=None, **kw):
        calls.extend(cond.aligned.detach().clone())
        return forward(x, t, cond, **kw)

    pipe.dit.forward = spy
    return calls


def test_the_stream_comes_from_the_given_video_and_is_null_where_the_video_is_generated(pipe):
    clip, other = generate_clip(20001, seconds=2.0), generate_clip(20002, seconds=2.0)
    try:
        calls = recorded_streams(pipe)
        a = pipe.generate("video2audio", {"video": clip.video}, seed=0, progress=False)
        b = pipe.generate("video2audio", {"video": other.video}, seed=0, progress=False)
    finally:
        del pipe.dit.forward
    assert not torch.allclose(torch.as_tensor(a.audio), torch.as_tensor(b.audio))
    sync = pipe.condition.conditioners["sync"]
    null = pipe.condition.null_cond(1, aligned_frames=30).aligned[0]  # [30, 16]
    conditional = [c for c in calls if not torch.allclose(c, null)]
    assert conditional, "no DiT call saw the video's stream"
    expect = pipe.condition(features={"sync": sync.encode({"video": torch.from_numpy(clip.video)[None]})},
                            aligned_frames=30).aligned
    torch.testing.assert_close(conditional[0], expect[0], rtol=1e-5, atol=1e-6)
    # guidance on "video" also runs the DiT without the video: then the stream is the null
    assert any(torch.allclose(c, null) for c in calls)
    try:  # interpolate: video given only at the ends, so the stream is null in the middle
        calls = recorded_streams(pipe)
        pipe.generate("interpolate", {"video": clip.video, "audio": clip.audio, "motion": clip.joints},
                      task_kwargs={"head": 0.5, "tail": 0.5}, seed=0, progress=False, guidance={})
    finally:
        del pipe.dit.forward
    stream = calls[0]  # [30, 16] at 15 Hz over 2 s
    is_null = (stream - null).abs().amax(-1) < 1e-6
    # latent frames of 133 ms (7.5 Hz): the given ends are latent frames 0-3 and 12-14 (the
    # task's frames of the 0.5-s segments), i.e. stream frames 0-7 and 24-29
    assert not is_null[:8].any() and is_null[8:24].all() and not is_null[24:].any()


def test_long_form_windows_get_their_own_seconds_of_the_stream(pipe):
    clip = generate_clip(20003, seconds=6.0)
    sync = pipe.condition.conditioners["sync"]
    whole = pipe.condition(features={"sync": sync.encode({"video": torch.from_numpy(clip.video)[None]})},
                           aligned_frames=90).aligned[0]  # [90, 16]
    try:
        calls = recorded_streams(pipe)
        out = pipe.generate("video2audio", {"video": clip.video}, seed=0, progress=False, guidance={})
    finally:
        del pipe.dit.forward
    assert out.audio.shape[-1] == 6 * 22050
    windows = calls[:: pipe.defaults.steps]  # one DiT call per step without guidance
    assert [w.shape[0] for w in windows] == [60, 60]  # 4-s windows at 15 Hz, hop 2 s
    torch.testing.assert_close(windows[0], whole[:60])
    torch.testing.assert_close(windows[1], whole[30:90])


def test_a_saved_sync_pipeline_loads_from_another_folder_with_the_same_stream(pipe, tmp_path, monkeypatch):
    pipe.save_pretrained(tmp_path / "saved")
    monkeypatch.chdir(tmp_path)
    loaded = Pipeline.from_pretrained(tmp_path / "saved")
    clip = generate_clip(20004, seconds=2.0)
    a = pipe.generate("video2audio", {"video": clip.video}, seed=3, progress=False)
    b = loaded.generate("video2audio", {"video": clip.video}, seed=3, progress=False)
    torch.testing.assert_close(torch.as_tensor(a.audio), torch.as_tensor(b.audio), rtol=0, atol=2e-3)
    assert (tmp_path / "saved" / "sync" / "model.safetensors").is_file()
