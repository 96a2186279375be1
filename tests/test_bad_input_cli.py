"""Bad and hostile command lines: each is refused with exit code 2 and one line on stderr that names the
argument or file, before any model work, and leaves every file as it was (nothing written, nothing
lost, no code from a file run). Run in-process through `mmgen.cli.main`.

Each case builds its inputs in a fresh folder, then the test snapshots that folder and the shared
world (a tiny pipeline and ToyDance set), runs the command, and compares.
"""

from __future__ import annotations

import pickle
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_aistpp import write_aistpp_tree, write_fake_smpl
from test_pipeline import make_pipeline

from mmgen.cli import main
from mmgen.data.toydance.io import make_dataset
from mmgen.io.export import save_motion_npz


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    make_pipeline(video=True).save_pretrained(root / "pipe")
    make_dataset(root / "data", clips=2, seconds=4.0, seed=0, progress=False)
    return root


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root with its size and modification time: any write shows."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (st.st_size if p.is_file() else -1, st.st_mtime_ns if p.is_file() else 0)
    return out


class Payload:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


# ----------------------------------------------------------------------------- case builders
def gen(w: Path, t: Path, *extra: str, motion: bool = True, out: Path | None = None, pipe: Path | None = None) -> list[str]:
    args = ["generate", "--pipeline", str(pipe or w / "pipe"), "--out", str(out or t / "out"), "--steps", "2",
            "--no-progress"]
    return args + (["--motion", str(w / "data" / "clips" / "00000.npz")] if motion else []) + list(extra)


def motion_file(t: Path, fps, frames: int = 120) -> Path:
    path = t / "m.npz"
    np.savez(path, joints=np.zeros((frames, 24, 3), np.float32), fps=np.asarray(fps))
    return path


def wav_file(t: Path, samples: int, sr: int = 22050) -> Path:
    path = t / "a.wav"
    sf.write(path, np.zeros(samples, np.float32), sr)
    return path


def long_wav(t: Path) -> Path:
    """3 hours of silence at the lowest sample rate mmgen reads, 8-bit (11 MB): refused from its header."""
    path = t / "long.wav"
    sf.write(path, np.zeros(3 * 3600 * 1000, np.float32), 1000, subtype="PCM_U8")
    return path


def own_generation(t: Path) -> Path:
    """An --out an earlier generate wrote (sample.wav among its files)."""
    out = t / "out"
    from mmgen.core.fileio import atomic_files

    with atomic_files(out, "generation") as tmp:
        (tmp / "sample.wav").write_bytes(b"earlier")
    return out


def user_folder(t: Path) -> Path:
    out = t / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    return out


def malicious_smpl(t: Path) -> Path:
    smpl = t / "smpl" / "SMPL_MALE.pkl"
    smpl.parent.mkdir()
    smpl.write_bytes(pickle.dumps({"v_template": Payload(t / "pwned"), "f": np.zeros(3)}, protocol=2))
    return smpl.parent


def aist(t: Path, smpl_dir: Path | None = None, *extra: str) -> list[str]:
    write_aistpp_tree(t / "aist")
    if smpl_dir is None:
        write_fake_smpl(t / "smpl_ok")
        smpl_dir = t / "smpl_ok"
    return ["preprocess", "aistpp", "--root", str(t / "aist"), "--music-dir", str(t / "music"), "--smpl-dir",
            str(smpl_dir), "--out", str(t / "prep"), "--no-progress", *extra]


def broken_manifest(t: Path, w: Path, what: str) -> Path:
    """A copy of the world's ToyDance set with one file gone or corrupt."""
    data = t / "data"
    shutil.copytree(w / "data", data)
    if what == "missing wav":
        (data / "clips" / "00001.wav").unlink()
    else:
        (data / "clips" / "00001.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but not a video")
    return data


def cache(w: Path, t: Path, data: Path | None = None, out: Path | None = None, *extra: str) -> list[str]:
    return ["cache", "--data", str(data or w / "data"), "--pipeline", str(w / "pipe"),
            "--out", str(out or t / "cache"), "--no-progress", *extra]


def nan_pipeline(w: Path, t: Path) -> Path:
    """A copy of the world's pipeline with one NaN in a DiT weight."""
    from safetensors.torch import load_file, save_file

    pipe = t / "pipe"
    shutil.copytree(w / "pipe", pipe)
    weights = load_file(str(pipe / "dit" / "model.safetensors"))
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, str(pipe / "dit" / "model.safetensors"))
    return pipe


def corrupt_ckpt(t: Path) -> Path:
    path = t / "broken.ckpt"
    path.write_bytes(b"PK\x03\x04 this is no checkpoint")
    return path


def fit(w: Path, t: Path, *extra: str) -> list[str]:
    configs = Path(__file__).resolve().parent.parent / "configs" / "toydance"
    return ["fit", "-c", str(configs / "trainer_cpu.yaml"), "-c", str(configs / "dit.yaml"),
            f"--data.init_args.root={t / 'nocache'}", "--trainer.max_steps=1",
            f"--trainer.default_root_dir={t / 'run'}", f"--trainer.logger.init_args.save_dir={t / 'logs'}",
            "--trainer.enable_progress_bar=false", *extra]


# id -> (builder(world, tmp) -> argv, fragments the one line must hold)
Case = tuple[Callable[[Path, Path], list[str]], tuple[str, ...]]
CASES: dict[str, Case] = {
    # ---- outputs: never replace what mmgen did not write; the right kind of place
    "generate --out is a file": (
        lambda w, t: (t.joinpath("f.txt").write_text("x"), gen(w, t, out=t / "f.txt"))[1],
        ("--out", "f.txt: is a file, not a folder")),
    "generate --out a user's folder": (
        lambda w, t: gen(w, t, out=user_folder(t)), ("--out", "mine: is not empty and was not written by `mmgen generate`")),
    "generate --out holds an earlier sample": (
        lambda w, t: gen(w, t, out=own_generation(t)), ("--out", "holds an earlier output named 'sample'", "--overwrite")),
    "generate where sample.mp4 is a folder": (
        lambda w, t: (own_generation(t).joinpath("x.mp4").mkdir(), gen(w, t, "--name", "x", "--overwrite"))[1],
        ("--out", "x.mp4 is already there and was not written by mmgen")),
    "generate --name with a slash": (lambda w, t: gen(w, t, "--name", "a/b"), ("--name", "plain file name")),
    "cache --out equal to --data": (
        lambda w, t: cache(w, t, out=w / "data"), ("--out", "data: is the input")),
    "cache --out inside --data": (
        lambda w, t: cache(w, t, out=w / "data" / "cache"), ("--out", "lies inside the input")),
    "cache --out holding --data": (
        lambda w, t: cache(w, t, data=w / "data", out=w), ("--out", "holds the input")),
    "cache --out a user's folder": (
        lambda w, t: cache(w, t, out=user_folder(t)), ("--out", "mine: is not empty and was not written by mmgen")),
    "cache --out another kind of mmgen folder": (
        lambda w, t: cache(w, t, shutil.copytree(w / "data", t / "data"), w / "data", "--overwrite"),
        ("--out", "holds a ToyDance set written by mmgen, not a latent cache")),
    "toydance make --out a user's folder": (
        lambda w, t: ["toydance", "make", "--out", str(user_folder(t)), "--clips", "1", "--seconds", "1", "--overwrite"],
        ("--out", "was not written by mmgen")),
    "toydance make --out an earlier set": (
        lambda w, t: ["toydance", "make", "--out", str(w / "data"), "--clips", "1", "--seconds", "1"],
        ("--out", "holds an earlier ToyDance set", "--overwrite")),
    "preprocess --out a user's folder": (
        lambda w, t: aist(t, None, "--out", str(user_folder(t))), ("--out", "mine: is not empty")),
    "preprocess --out equal to --root": (
        lambda w, t: aist(t, None, "--out", str(t / "aist")), ("--out", "is the input")),
    "eval --out over a user's file": (
        lambda w, t: (t.joinpath("notes.json").write_text("{}"),
                      ["eval", str(w / "data" / "clips"), str(w / "data" / "clips"), "--out", str(t / "notes.json")])[1],
        ("notes.json is already there and was not written by mmgen",)),
    "demo --out a user's folder": (
        lambda w, t: ["demo", "--pipeline", str(w / "pipe"), "--out", str(user_folder(t))], ("--out", "mine: is not empty")),
    "fit export_dir a user's folder": (
        lambda w, t: fit(w, t, f"--model.init_args.export_dir={user_folder(t)}"),
        ("export_dir", "not empty and was not written by mmgen")),
    # ---- foreign code: never unpickled
    "preprocess a malicious SMPL pickle": (
        lambda w, t: aist(t, malicious_smpl(t)), ("SMPL_MALE.pkl: not a readable SMPL model pickle", "refusing to load")),
    "preprocess a text SMPL file": (
        lambda w, t: (t.joinpath("smpltxt").mkdir(), t.joinpath("smpltxt", "SMPL_MALE.pkl").write_text("hello"),
                      aist(t, t / "smpltxt"))[2], ("SMPL_MALE.pkl: not a readable SMPL model pickle",)),
    # ---- limits
    "generate --seconds 1e9": (lambda w, t: gen(w, t, "--seconds", "1e9"), ("--seconds must be in (0, 7200]",)),
    "generate --seconds 0": (lambda w, t: gen(w, t, "--seconds", "0"), ("--seconds must be in (0, 7200]",)),
    "generate --seconds nan": (lambda w, t: gen(w, t, "--seconds", "nan"), ("--seconds must be a finite number",)),
    "generate --seconds 0.01": (lambda w, t: gen(w, t, "--seconds", "0.01"), ("seconds", "shorter than one latent frame")),
    "generate --steps 1e8": (lambda w, t: gen(w, t, "--steps", "1e8"), ("--steps", "invalid int value: '1e8'")),
    "generate --steps 100000000": (lambda w, t: gen(w, t, "--steps", "100000000"), ("--steps must be an integer in [1, 1000]",)),
    "generate --steps 0": (lambda w, t: gen(w, t, "--steps", "0"), ("--steps must be an integer in [1, 1000]",)),
    "generate --seed 2**70": (lambda w, t: gen(w, t, "--seed", str(2**70)), ("--seed must be an integer in [0, 2**63)",)),
    "generate --seed -1": (lambda w, t: gen(w, t, "--seed", "-1"), ("--seed must be an integer in [0, 2**63)",)),
    "generate --batch-size 100000": (lambda w, t: gen(w, t, "--batch-size", "100000"), ("--batch-size must be an integer in [1, 256]",)),
    "generate --cross-guidance 5": (lambda w, t: gen(w, t, "--cross-guidance", "5"), ("--cross-guidance must be in [0, 1]",)),
    "generate --guidance motion": (lambda w, t: gen(w, t, "--guidance", "motion"), ("--guidance: expected group=scale",)),
    "generate memory beyond the machine": (
        lambda w, t: gen(w, t, "--task", "joint", "--seconds", "7000", "--batch-size", "256", motion=False),
        ("needs about", "GiB", "are free")),
    # ---- spans that leave nothing to generate
    "interpolate head + tail cover the clip": (
        lambda w, t: gen(w, t, "--task", "interpolate", "--head", "2", "--tail", "2", "--seconds", "4"),
        ("task 'interpolate' leaves nothing to generate", "head=2, tail=2")),
    "continue with a prefix as long as the clip": (
        lambda w, t: gen(w, t, "--task", "continue", "--prefix", "4"), ("task 'continue' leaves nothing to generate", "prefix=4")),
    # ---- input files
    "generate --motion fps stored as an array": (
        lambda w, t: gen(w, t, "--motion", str(motion_file(t, [30.0, 30.0])), motion=False), ("m.npz: fps must be one number",)),
    "generate --motion at 1e-3 fps": (
        lambda w, t: gen(w, t, "--motion", str(motion_file(t, 1e-3)), motion=False), ("m.npz: fps must be in [1, 1000]",)),
    "generate --motion with 17 joints": (
        lambda w, t: (save_motion_npz(t / "m17.npz", np.zeros((60, 17, 3), np.float32), 30.0),
                      gen(w, t, "--motion", str(t / "m17.npz"), motion=False))[1], ("m17.npz: joints have shape",)),
    "generate --motion a text file": (
        lambda w, t: (t.joinpath("m.npz").write_text("not npz"), gen(w, t, "--motion", str(t / "m.npz"), motion=False))[1],
        ("m.npz: not a readable motion .npz",)),
    "generate --audio one sample": (
        lambda w, t: gen(w, t, "--task", "music2dance", "--audio", str(wav_file(t, 1)), motion=False),
        ("seconds", "shorter than one latent frame")),
    "generate --audio a 3-hour header": (
        lambda w, t: gen(w, t, "--task", "music2dance", "--audio", str(long_wav(t)), motion=False),
        ("--audio", "long.wav: 10800 s long; mmgen reads at most 7200 s")),
    "generate --audio not audio": (
        lambda w, t: (t.joinpath("a.wav").write_text("RIFF?"), gen(w, t, "--task", "music2dance", "--audio",
                                                                   str(t / "a.wav"), motion=False))[1],
        ("--audio", "a.wav: not a readable audio file")),
    "generate --audio missing": (
        lambda w, t: gen(w, t, "--task", "music2dance", "--audio", str(t / "nope.wav"), motion=False), ("--audio", "nope.wav: no such file")),
    "generate --video corrupt": (
        lambda w, t: (t.joinpath("v.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42garbage"),
                      gen(w, t, "--task", "video2audio", "--video", str(t / "v.mp4"), motion=False))[1],
        ("--video", "v.mp4: not a readable video")),
    "generate --device cuda without a GPU": (lambda w, t: gen(w, t, "--device", "cuda"), ("--device cuda: no CUDA GPU",)),
    "generate --device tpu9": (lambda w, t: gen(w, t, "--device", "tpu9"), ("--device tpu9: not a torch device",)),
    "generate --pipeline missing": (
        lambda w, t: ["generate", "--pipeline", str(t / "nopipe"), "--out", str(t / "out")], ("nopipe",)),
    "generate an unknown task": (lambda w, t: gen(w, t, "--task", "dance2smell"), ("dance2smell",)),
    "cache a manifest naming a missing wav": (
        lambda w, t: cache(w, t, broken_manifest(t, w, "missing wav")), ("00001.wav",)),
    "cache a manifest with a corrupt mp4": (
        lambda w, t: cache(w, t, broken_manifest(t, w, "corrupt mp4")), ("00001.mp4",)),
    "cache --stride 0": (lambda w, t: cache(w, t, None, None, "--seconds", "2", "--stride", "0"), ("--stride must be in [0.01, 7200]",)),
    "cache --device cuda without a GPU": (lambda w, t: cache(w, t, None, None, "--device", "cuda"), ("--device cuda",)),
    "toydance make --clips 1e9": (
        lambda w, t: ["toydance", "make", "--out", str(t / "td"), "--clips", "1000000000"], ("--clips must be an integer in [1, 100000]",)),
    "toydance make --seconds 1e9": (
        lambda w, t: ["toydance", "make", "--out", str(t / "td"), "--seconds", "1e9"], ("--seconds must be in (0, 7200]",)),
    "demo --steps 1e6": (lambda w, t: ["demo", "--out", str(t / "d"), "--steps", "1000000"], ("--steps must be an integer in [1, 1000]",)),
    "preprocess av-folder with a missing root": (
        lambda w, t: ["preprocess", "av-folder", "--root", str(t / "novideos"), "--out", str(t / "o")], ("--root", "novideos: no such folder")),
    "preprocess av-folder --size 0": (
        lambda w, t: (t.joinpath("v").mkdir(), ["preprocess", "av-folder", "--root", str(t / "v"), "--out", str(t / "o"),
                                                "--size", "0", "64"])[1], ("--size H must be an integer in [2, 4096]",)),
    "generate with a NaN in a DiT weight": (
        lambda w, t: gen(w, t, pipe=nan_pipeline(w, t)),
        ("dit/model.safetensors", "hold NaN or infinite values")),
    "preprocess av-folder without a usable video": (
        lambda w, t: (t.joinpath("v").mkdir(), t.joinpath("v", "x.mp4").write_bytes(b"not a video"),
                      ["preprocess", "av-folder", "--root", str(t / "v"), "--out", str(t / "o"), "--no-progress"])[2],
        ("--root", "no usable item")),
    "fit an option the model does not take": (
        lambda w, t: fit(w, t, "--model.init_args.bogus=1"), ("bogus",)),
    "fit a config file that does not exist": (
        lambda w, t: fit(w, t, "-c", str(t / "nope.yaml")), ("nope.yaml",)),
    "fit on a GPU that is not there": (
        lambda w, t: fit(w, t, "--trainer.accelerator=gpu"), ("gpu",)),
    "fit a corrupt --ckpt_path": (
        lambda w, t: fit(w, t, f"--ckpt_path={corrupt_ckpt(t)}"), ("--ckpt_path", "broken.ckpt: not a readable Lightning checkpoint")),
    "fit a missing --ckpt_path": (
        lambda w, t: fit(w, t, f"--ckpt_path={t / 'none.ckpt'}"), ("--ckpt_path", "none.ckpt: no such file")),
}


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["mmgen"])  # LightningCLI compares its args with sys.argv


@pytest.mark.parametrize("name", list(CASES))
def test_bad_command_line_is_one_line_exit_2_and_changes_nothing(name, world, tmp_path, capsys):
    build, fragments = CASES[name]
    work = tmp_path / "case"
    work.mkdir()
    argv = build(world, work)
    before_world, before_work = tree(world), tree(work)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, f"{name}: exit {code}, stderr: {err[-2000:]}"
    assert len(lines) == 1, f"{name}: {len(lines)} lines: {err[-2000:]}"
    assert lines[0].startswith(f"mmgen {argv[0]}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{name}: {fragment!r} not in {lines[0]!r}"
    assert tree(work) == before_work, f"{name}: files changed or left behind"
    assert tree(world) == before_world, f"{name}: the shared inputs changed"
    assert not (work / "pwned").exists(), f"{name}: a payload ran"


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 40


def test_an_internal_error_keeps_its_traceback(world, tmp_path, monkeypatch):
    """Not a user's error: exit through the exception (the traceback), not a one-liner."""
    import mmgen.commands.generate as command

    def broken(args):
        raise KeyError("an internal bug")

    monkeypatch.setattr(command, "run", broken)
    with pytest.raises(KeyError, match="an internal bug"):
        main(gen(world, tmp_path))


def test_overwrite_replaces_only_mmgens_own_files(world, tmp_path, capsys):
    out = own_generation(tmp_path)
    (out / "mine.txt").write_text("the user's")
    assert main(gen(world, tmp_path, "--overwrite", "--seconds", "2")) == 0
    assert (out / "sample.wav").read_bytes() != b"earlier" and (out / "mine.txt").read_text() == "the user's"
    assert not [p for p in out.iterdir() if "mmgen-stage" in p.name]  # no staging folder left
