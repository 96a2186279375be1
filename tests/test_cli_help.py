"""CLI help: every sub-command shows examples and its defaults; --task / --sampler / --grid are
choices with one-line errors; short class names resolve in `mmgen fit --model.help`."""

from __future__ import annotations

import importlib

import pytest

from mmgen.cli import COMMANDS, main
from mmgen.core.errors import MmgenError


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_help_has_runnable_looking_examples(capsys, command):
    assert str(getattr(importlib.import_module(COMMANDS[command][0]), "EXAMPLES", "")).strip(), command
    text = _help(capsys, command)
    examples = text.split("examples:\n", 1)[1].splitlines()
    assert examples and all(line.strip().startswith(f"mmgen {command}") for line in examples if line.strip())


def test_sub_actions_show_their_own_examples_and_defaults_are_shown(capsys):
    make = _help(capsys, "toydance", "make")
    assert "examples:\n  mmgen toydance make --out" in make and "mmgen toydance report" not in make
    gen = _help(capsys, "generate")
    assert "task preset (default: dance2music)" in gen
    assert "(default: auto)" in gen  # --long-form
    assert "random seed (default 0)" in gen and "(default 0) (default" not in gen  # said once
    for name in ("unipc2", "log_snr", "interpolate"):
        assert name in gen


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--task", "dance3music", "unknown task 'dance3music'; choose from joint, dance2music"),
        ("--sampler", "dpm", "unknown sampler 'dpm'; choose from ddpm, ddim, dpmpp2m"),
        ("--grid", "cosine", "unknown grid 'cosine'; choose from uniform, log_snr, karras"),
    ],
)
def test_choices_are_refused_in_one_line(capsys, tmp_path, flag, value, message):
    assert main(["generate", flag, value, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_short_class_names_resolve_for_lightning_help():
    from mmgen.train.cli import resolve_help_names, short_class_names

    names = short_class_names()
    assert names["DiTModule"] == "mmgen.train.dit_module.DiTModule"
    assert names["LatentCacheDataModule"] == "mmgen.train.data.LatentCacheDataModule"
    assert resolve_help_names(["--model.help", "DiTModule"]) == ["--model.help", "mmgen.train.dit_module.DiTModule"]
    assert resolve_help_names(["--data.help=LatentCacheDataModule"]) == [
        "--data.help=mmgen.train.data.LatentCacheDataModule"
    ]
    kept = ["-c", "a.yaml", "--model.help", "lightning.pytorch.demos.boring_classes.BoringModel"]
    assert resolve_help_names(kept) == kept
    with pytest.raises(MmgenError, match=r"--model.help DitModule: no mmgen class of that name; known: .*DiTModule"):
        resolve_help_names(["--model.help", "DitModule"])


@pytest.mark.slow
def test_fit_help_has_examples_and_model_help_takes_a_short_name(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "mmgen fit -c configs/toydance/trainer_cpu.yaml" in out
    with pytest.raises(SystemExit):
        main(["fit", "--model.help", "DiTModule"])
    assert "Help for --model.help=mmgen.train.dit_module.DiTModule" in capsys.readouterr().out
