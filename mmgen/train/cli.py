"""`mmgen fit|validate|test -c config.yaml`: LightningCLI with mmgen's systems and data modules.

The constructor signature is the config: every `class_path` / `init_args` in a YAML under
`configs/` is a constructor call, composed with repeated `-c` (later files win). Multi-GPU and
multi-node runs are Lightning's own (`--trainer.strategy ddp|fsdp`, `--trainer.devices`,
`--trainer.num_nodes`), launched by torchrun or SLURM.

Resuming (`--ckpt_path PATH` or `last`): what the command line and configs say wins over the
settings stored in the checkpoint (LightningCLI would restore the stored ones for an explicit
path); the settings that differ are logged in one line, and a checkpoint whose weights do not
fit the configured model is refused in one line that lists them. Checkpoints also hold every
random stream and the data position (`mmgen.train.resume`), so a killed run resumes exactly.
Checkpoints load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.cli import LightningCLI

from mmgen.core.errors import MmgenError
from mmgen.train.resume import EpochBoundaryResume, RNGState

log = logging.getLogger(__name__)
LIGHTNING_CKPT_ALIASES = ("last", "best", "hpc", "registry")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint (tensors and plain values only); one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt_path {path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- corrupt zip, truncated file, foreign pickle: one line
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MmgenError(f"--ckpt_path {path}: not a readable Lightning checkpoint ({reason[:200]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise MmgenError(f"--ckpt_path {path}: not a Lightning checkpoint (no state_dict)")
    return ckpt


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {dotted key: value}; `init_args` levels dropped, so the `class_path` /
    `init_args` form and the plain form of a dataclass setting give the same keys."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = prefix if k == "init_args" else (f"{prefix}.{k}" if prefix else str(k))
            out.update(_flatten(v, key))
        return out
    return {prefix: value}


def differing_settings(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'key: stored -> current' for every setting the checkpoint stored that the config now sets
    otherwise (a `class_path` only where both sides name one)."""
    a = _flatten({k: v for k, v in stored.items() if k != "_instantiator"})
    b = _flatten(current)
    out = []
    for key in sorted(a):
        if key.endswith("class_path") and key not in b:
            continue
        if key not in b or a[key] != b[key]:
            out.append(f"{key}: {a[key]!r} -> {b.get(key, '(unset)')!r}")
    return out


class _SayOnTrainStart(L.Callback):
    def __init__(self, message: str) -> None:
        self.message = message

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log.warning("%s", self.message)


class MmgenCLI(LightningCLI):
    resume_differences: tuple[str, ...] = ()
    resume_path = ""

    def _parse_ckpt_path(self) -> None:
        """Keep the command line's settings on resume (see the module docstring)."""
        sub = self.config.get("subcommand")
        if not sub:
            return
        ckpt_path = self.config[sub].get("ckpt_path")
        if not ckpt_path or str(ckpt_path) in LIGHTNING_CKPT_ALIASES:
            return
        ckpt = load_checkpoint(ckpt_path)
        stored = ckpt.get("hyper_parameters") or {}
        dump = yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False, skip_none=False, format="yaml"))
        model = dump.get(sub, {}).get("model") or {}
        current = {"_class_path": model.get("class_path"), **(model.get("init_args") or {})}
        if "_class_path" not in stored:
            current.pop("_class_path")
        self.resume_differences = tuple(differing_settings(stored, current)) if stored else ()
        self.resume_path = str(ckpt_path)

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except Exception as err:
            mapped = _user_error(err, self.resume_differences)
            if mapped is None:
                raise
            raise mapped from err

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments.get(subcommand, ()):
            kwargs["weights_only"] = True  # a checkpoint is data: nothing in it may run code
        return kwargs

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.insert(0, RNGState())  # every random stream goes into the checkpoints
        trainer.callbacks.insert(1, EpochBoundaryResume())  # Lightning's epoch counters after an epoch-end resume
        if self.resume_differences:  # said once the checkpoint has loaded (a refusal is the only line)
            message = (f"resuming {self.resume_path} with the command line's settings, not the checkpoint's: "
                       + "; ".join(self.resume_differences))
            trainer.callbacks.append(_SayOnTrainStart(message))
        return trainer

    def before_fit(self) -> None:
        """Refuse an export folder mmgen may not write, and a DiT whose modalities do not match
        the latent cache it trains on, before anything loads."""
        check_exports = getattr(self.model, "check_exports", None)
        if callable(check_exports):
            check_exports()
        model = getattr(self.model, "model", None)
        specs = getattr(self.datamodule, "specs", None)
        if model is None or specs is None or not hasattr(model, "specs"):
            return
        for name, spec in model.specs.items():
            if name not in specs:
                raise ValueError(f"the DiT has modality {name!r} but the latent cache has {sorted(specs)}")
            if spec != specs[name]:
                raise ValueError(f"modality {name!r}: the DiT expects {spec}, the latent cache holds {specs[name]}")


def _user_error(err: Exception, differences: tuple[str, ...]) -> MmgenError | None:
    """Lightning's errors that the command line caused, as one line; None for internal errors."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    if isinstance(err, (MmgenError, ValueError, FileNotFoundError)):
        return None  # already one line of ours
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, MisconfigurationException):
        return MmgenError(first)
    if isinstance(err, argparse.ArgumentError):  # jsonargparse: the command line or a config file
        lines = [line.strip(" -") for line in text.splitlines() if line.strip(" -")]
        return MmgenError(("; ".join(lines))[:600])
    if isinstance(err, RuntimeError) and text.startswith("Error(s) in loading state_dict"):
        problems = [line.strip().rstrip(".") for line in text.splitlines()[1:] if line.strip()]
        shown = problems[0] if problems else first
        more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
        return MmgenError(f"--ckpt_path: its weights do not fit the configured model ({shown}{more}); settings "
                          f"that differ from the checkpoint's: {'; '.join(differences) or 'none stored'}")
    return None


def short_class_names() -> dict[str, str]:
    """{ClassName: import path} of mmgen's LightningModules, DataModules and callbacks (mmgen.train)."""
    import importlib
    import inspect
    import pkgutil

    import mmgen.train

    out: dict[str, str] = {}
    for info in pkgutil.iter_modules(mmgen.train.__path__):
        module = importlib.import_module(f"mmgen.train.{info.name}")
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
                    and issubclass(obj, (L.LightningModule, L.LightningDataModule, L.Callback))):
                out[name] = f"{obj.__module__}.{name}"
    return out


def resolve_help_names(argv: list[str]) -> list[str]:
    """`--model.help DiTModule` -> `--model.help mmgen.train.dit_module.DiTModule` (jsonargparse
    takes import paths only there); an unknown short name is refused naming the known ones."""
    out, names = list(argv), None
    for i, arg in enumerate(out):
        key, eq, value = arg.partition("=")
        if not key.endswith(".help") or not key.startswith("--"):
            continue
        if not eq:
            if i + 1 >= len(out):
                continue
            value = out[i + 1]
        if "." in value:
            continue
        names = short_class_names() if names is None else names
        if value not in names:
            raise MmgenError(f"{key} {value}: no mmgen class of that name; known: {', '.join(sorted(names))} "
                             "(or give an import path, e.g. lightning.pytorch.callbacks.ModelCheckpoint)")
        if eq:
            out[i] = f"{key}={names[value]}"
        else:
            out[i + 1] = names[value]
    return out


def quiet_lightning_warnings() -> None:
    """Hide the warnings every `mmgen fit` would print that no user can act on (call inside
    `warnings.catch_warnings()`): `args=` is how mmgen hands the command line over; Lightning
    calls jsonargparse APIs that jsonargparse deprecated and torch pytree names torch deprecated;
    mmgen's systems keep their frozen parts (VAEs, condition encoders) in eval mode on purpose."""
    from jsonargparse._deprecated import JsonargparseDeprecationWarning

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    warnings.filterwarnings("ignore", category=JsonargparseDeprecationWarning)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")


def run_lightning(command: str, argv: list[str]) -> int:
    """Run a LightningCLI sub-command (fit / validate / test) with the rest of the command line.

    Lightning's INFO lines (GPU available, seed set) show with `mmgen -v` only, so an error stays
    the one line on stderr."""
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from mmgen.cli import FIT_EXAMPLES

    argv = resolve_help_names(argv)
    no_exit = {"exit_on_error": False}  # parse errors raise, so they become one line below
    sub_kwargs = {c: {**no_exit, "epilog": "examples:\n" + FIT_EXAMPLES.replace("mmgen fit", f"mmgen {c}")}
                  for c in ("fit", "validate", "test")}
    try:
        with warnings.catch_warnings():
            quiet_lightning_warnings()
            MmgenCLI(
                model_class=None,
                datamodule_class=None,
                subclass_mode_model=True,
                subclass_mode_data=True,
                args=[command, *argv],
                save_config_kwargs={"overwrite": True},
                auto_configure_optimizers=False,
                parser_kwargs={**no_exit, "prog": "mmgen", **sub_kwargs},
            )
    except Exception as err:
        mapped = _user_error(err, ())
        if mapped is None:
            raise
        raise mapped from err
    return 0
