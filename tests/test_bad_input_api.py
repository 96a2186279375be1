"""Bad and hostile Python API calls: each raises one error (a ValueError, and an MmgenError where mmgen
decides) whose one-line message names the argument or file, before any sampling, and leaves every file
as it was. The CLI corpus is tests/test_bad_input_cli.py."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bad_input_cli import Payload, tree, user_folder
from test_pipeline import make_pipeline

from mmgen.core.errors import MmgenError
from mmgen.core.fileio import atomic_files
from mmgen.data.toydance.io import make_dataset

SR, FPS, VFPS = 22050, 30, 15
AUDIO = np.zeros(4 * SR, np.float32)
MOTION = np.zeros((4 * FPS, 24, 3), np.float32)


@pytest.fixture(scope="module")
def pipe():
    return make_pipeline(video=True)


def generate(**kwargs: object) -> Callable:
    """A generate call (dance2music on 4 s of motion unless the case says otherwise)."""
    task = kwargs.pop("task", "dance2music")
    kwargs.setdefault("given", {"motion": MOTION})
    return lambda pipe, t: lambda: pipe.generate(task, progress=False, **kwargs)


def save_into(folder: Callable[[Path], Path], **kwargs: object) -> Callable:
    def run(pipe, t):
        from mmgen.pipeline.generation import Generation

        gen = Generation(task="dance2music", seconds=1.0, audio=np.zeros((1, SR), np.float32), sample_rate=SR)
        target = folder(t)
        return lambda: gen.save(target, **kwargs)

    return run


def on_user_folder(write: Callable) -> Callable:
    def prepare(pipe, t):
        folder = user_folder(t)
        return lambda: write(pipe, folder)

    return prepare


def earlier_save(t: Path) -> Path:
    with atomic_files(t / "gen", "generation") as tmp:
        (tmp / "sample.wav").write_bytes(b"earlier")
    return t / "gen"


def smpl(t: Path, payload: bool) -> Path:
    path = t / "SMPL_MALE.pkl"
    value = Payload(t / "pwned") if payload else "text"
    path.write_bytes(pickle.dumps({"v_template": value}, protocol=2) if payload else b"not a pickle at all")
    return path


def fk(path_of: Callable[[Path], Path]) -> Callable:
    def run(pipe, t):
        from mmgen.data.smpl_fk import SMPLForwardKinematics

        path = path_of(t)
        return lambda: SMPLForwardKinematics(path)

    return run


def annotation(pipe, t):
    from mmgen.data.annotation_pickle import load_annotation_pickle

    path = t / "motion.pkl"
    path.write_bytes(pickle.dumps({"smpl_poses": Payload(t / "pwned")}))
    return lambda: load_annotation_pickle(path)


def cache_over(folder: Callable[[Path], Path], inputs: Callable[[Path], list]) -> Callable:
    def run(pipe, t):
        from mmgen.data.latent_cache import build_latent_cache

        items = [{"id": "a", "audio": torch.zeros(SR)}]
        out, given = folder(t), inputs(t)
        return lambda: build_latent_cache(out, items, {"audio": pipe.modalities["audio"]}, progress=False,
                                          inputs=given)

    return run


# id -> (prepare(pipe, tmp) -> the call, exception type, fragments of the message)
CASES: dict[str, tuple[Callable, type, tuple[str, ...]]] = {
    "given motion None": (generate(given={"motion": None}), ValueError, ("given['motion'] is None",)),
    "given a list": (generate(given=[MOTION]), TypeError, ("given must map modality names to arrays",)),
    "given motion a nested list": (generate(given={"motion": MOTION.tolist()}), TypeError, ("given['motion']", "numpy array")),
    "steps 2.5": (generate(steps=2.5), ValueError, ("steps must be an integer in [1, 1000], got 2.5",)),
    "steps True": (generate(steps=True), ValueError, ("steps must be an integer", "True (bool)")),
    "steps 0": (generate(steps=0), ValueError, ("steps must be an integer in [1, 1000], got 0",)),
    "steps 1e8": (generate(steps=10**8), ValueError, ("steps must be an integer in [1, 1000]",)),
    "seed 1.5": (generate(seed=1.5), ValueError, ("seed must be an integer in [0, 2**63), got 1.5",)),
    "seed 2**70": (generate(seed=2**70), ValueError, ("seed must be an integer in [0, 2**63)",)),
    "seed -1": (generate(seed=-1), ValueError, ("seed must be an integer in [0, 2**63)",)),
    "seed '3'": (generate(seed="3"), ValueError, ("seed must be an integer",)),
    "seconds 1e9": (generate(seconds=1e9), ValueError, ("seconds must be in (0, 7200]",)),
    "seconds 0.01": (generate(seconds=0.01), ValueError, ("seconds", "shorter than one latent frame")),
    "seconds inf": (generate(seconds=float("inf")), ValueError, ("seconds must be a finite number",)),
    "seconds '4'": (generate(seconds="4"), ValueError, ("seconds must be a finite number",)),
    "batch_size 2.0": (generate(batch_size=2.0), ValueError, ("batch_size must be an integer",)),
    "batch_size 10**6": (generate(batch_size=10**6), ValueError, ("batch_size must be an integer in [1, 256]",)),
    "guidance a string": (generate(guidance="motion=2"), TypeError, ("guidance must map groups to scales",)),
    "guidance a NaN scale": (generate(guidance={"motion": float("nan")}), ValueError, ("guidance['motion']",)),
    "cross_guidance 5": (generate(cross_guidance=5.0), ValueError, ("cross_guidance must be in [0, 1]",)),
    "caption a number": (generate(caption=3), TypeError, ("caption must be a string",)),
    "long_form 'yes'": (generate(long_form="yes"), TypeError, ("long_form must be True, False or None",)),
    "audio [S, 2] (soundfile's layout)": (
        generate(task="music2dance", given={"audio": np.zeros((4 * SR, 2), np.float32)}), ValueError,
        ("given['audio'] has shape [88200, 2]", "[samples, channels]", "x.mean(axis=1)")),
    "audio [B, C, S]": (
        generate(task="music2dance", given={"audio": np.zeros((1, 2, SR), np.float32)}), ValueError,
        ("given['audio'] has shape [1, 2, 22050]",)),
    "audio int16 PCM": (
        generate(task="music2dance", given={"audio": np.zeros(4 * SR, np.int16)}), ValueError, ("given['audio'] must be float",)),
    "audio of one sample": (
        generate(task="music2dance", given={"audio": np.zeros(1, np.float32)}), ValueError, ("shorter than one latent frame",)),
    "motion with NaN": (
        generate(given={"motion": np.full((60, 24, 3), np.nan, np.float32)}), ValueError, ("given['motion']",)),
    "interpolate head + tail over the clip": (
        generate(task="interpolate", given={"motion": MOTION, "audio": AUDIO}, task_kwargs={"head": 3.0, "tail": 3.0}),
        ValueError, ("leaves nothing to generate", "head=3, tail=3")),
    "continue with the whole clip as prefix": (
        generate(task="continue", given={"motion": MOTION, "audio": AUDIO}, task_kwargs={"prefix": 4.0}),
        ValueError, ("leaves nothing to generate", "prefix=4")),
    "a call that cannot fit in memory": (
        generate(task="joint", given={}, seconds=7000.0, batch_size=256), ValueError, ("needs about", "GiB")),
    "Generation.save over a user's file": (
        save_into(lambda t: (t.joinpath("u").mkdir(), t.joinpath("u", "sample.wav").write_text("mine"), t / "u")[2]),
        MmgenError, ("sample.wav is already there and was not written by mmgen",)),
    "Generation.save over an earlier save": (
        save_into(earlier_save), MmgenError, ("sample.wav is already there (an earlier mmgen output)", "overwrite=True")),
    "Generation.save into a file": (
        save_into(lambda t: (t.joinpath("f").write_text("x"), t / "f")[1]), MmgenError, ("is a file, not a folder",)),
    "save_pretrained into a user's folder": (
        on_user_folder(lambda pipe, folder: pipe.dit.save_pretrained(folder)), MmgenError, ("mine: is not empty and was not written by mmgen",)),
    "Pipeline.save_pretrained over a modality folder": (
        lambda pipe, t: (pipe.modalities["audio"].save_pretrained(t / "a"),
                         lambda: pipe.save_pretrained(t / "a", overwrite=True))[1],
        MmgenError, ("holds a modality folder written by mmgen, not a pipeline",)),
    "a latent cache into its own input": (
        cache_over(lambda t: t, lambda t: [t]), MmgenError, ("is the input",)),
    "a latent cache over a user's folder": (
        cache_over(user_folder, lambda t: []), MmgenError, ("not empty and was not written by mmgen",)),
    "an SMPL pickle with a payload": (
        fk(lambda t: smpl(t, payload=True)), MmgenError, ("SMPL_MALE.pkl: not a readable SMPL model pickle", "posix.system")),
    "an SMPL file that is no pickle": (fk(lambda t: smpl(t, payload=False)), MmgenError, ("SMPL_MALE.pkl",)),
    "an annotation pickle with a payload": (annotation, ValueError, ("motion.pkl: not a readable annotation pickle",)),
    "make_dataset over a user's folder": (
        on_user_folder(lambda pipe, folder: make_dataset(folder, 1, 1.0, 0, progress=False, overwrite=True)),
        MmgenError, ("not written by mmgen",)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_call_raises_one_line_and_changes_nothing(name, pipe, tmp_path):
    call, kind, fragments = CASES[name]
    work = tmp_path / "case"
    work.mkdir()
    state = {k: v.clone() for k, v in pipe.dit.state_dict().items()}
    act = call(pipe, work)  # builds the case's inputs in `work`
    before = tree(work)
    with pytest.raises(kind) as info:
        act()
    message = str(info.value)
    assert isinstance(info.value, (ValueError, MmgenError)), f"{name}: {type(info.value).__name__}"
    assert "\n" not in message.strip(), f"{name}: {message}"
    for fragment in fragments:
        assert fragment in message, f"{name}: {fragment!r} not in {message!r}"
    assert tree(work) == before, f"{name}: files changed or left behind"
    assert not (work / "pwned").exists(), f"{name}: a payload ran"
    assert all(torch.equal(v, pipe.dit.state_dict()[k]) for k, v in state.items())


def test_user_files_survive_every_refused_write(pipe, tmp_path):
    """Beyond the error: the user's folder, byte for byte, after each refused writer."""
    folder = user_folder(tmp_path)
    before = tree(folder)
    for write in (lambda: pipe.dit.save_pretrained(folder, overwrite=True),
                  lambda: pipe.save_pretrained(folder, overwrite=True),
                  lambda: pipe.modalities["audio"].save_pretrained(folder, overwrite=True)):
        with pytest.raises(MmgenError, match="not written by mmgen"):
            write()
        assert tree(folder) == before
    assert (folder / "thesis.tex").read_text() == "precious"


def test_the_api_corpus_is_big_enough():
    assert len(CASES) >= 40


def test_a_save_that_fails_half_way_leaves_no_partial_example(tmp_path, monkeypatch):
    """The wav and npz of an example are written, then its mp4 fails: none of them appears."""
    from mmgen.io import export
    from mmgen.pipeline.generation import Generation

    gen = Generation(task="dance2music", seconds=1.0, audio=np.zeros((1, SR), np.float32), sample_rate=SR,
                     joints=np.zeros((1, FPS, 24, 3), np.float32), fps=float(FPS))

    def broken_video(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export, "save_video", broken_video)
    earlier = earlier_save(tmp_path)
    before = tree(earlier)
    with pytest.raises(OSError, match="disk full"):
        gen.save(earlier, prefix="new")
    assert tree(earlier) == before  # neither new.wav nor new.npz, and no staging folder
    with pytest.raises(OSError, match="disk full"):
        gen.save(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
