"""`save_pretrained` / `from_pretrained` for every mmgen module: `config.yaml` + `model.safetensors`.

The constructor signature is the config: a module records the arguments it was built with, and
`config.yaml` stores them as jsonargparse-style `class_path` + `init_args`, the same form the
YAML files under `configs/` use. Weights are safetensors only; nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import importlib
import inspect
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml
from safetensors.torch import load_file, save_file

from mmgen.core.fileio import atomic_dir

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"
_TRUSTED_PREFIX = "mmgen."

M = TypeVar("M", bound="PretrainedMixin")


def _to_yaml_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "class_path": f"{type(value).__module__}.{type(value).__qualname__}",
            "init_args": {f.name: _to_yaml_value(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, dict):
        return {str(k): _to_yaml_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_yaml_value(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(
        f"cannot store constructor argument of type {type(value).__name__} in {CONFIG_NAME}; "
        "use plain numbers, strings, lists, dicts or dataclasses"
    )


# modules that moved when the loose top-level modules became packages (December 2026); folders
# saved before record the old class paths, e.g. `mmgen.timeline.ModalitySpec`
MOVED_MODULES = {
    "mmgen.timeline": "mmgen.core.timeline",
    "mmgen.cond": "mmgen.core.cond",
    "mmgen.pretrained": "mmgen.core.pretrained",
    "mmgen.fileio": "mmgen.core.fileio",
    "mmgen.errors": "mmgen.core.errors",
    "mmgen.spans": "mmgen.core.blend",
    "mmgen.modalities.skeleton": "mmgen.core.skeleton",
    "mmgen.export": "mmgen.io.export",
    "mmgen.bvh": "mmgen.io.bvh",
    "mmgen.render": "mmgen.io.render",
    "mmgen.inputs": "mmgen.io.read",
    "mmgen.data.audio_file": "mmgen.io.audio",
    "mmgen.pipeline_config": "mmgen.pipeline.config",
    "mmgen.pipeline_load": "mmgen.pipeline.load",
    "mmgen.pipeline_media": "mmgen.pipeline.media",
    "mmgen.generation": "mmgen.pipeline.generation",
    "mmgen.evaluation_folder": "mmgen.evaluation.folder",
    "mmgen.demo_tasks": "mmgen.demo.tasks",
    "mmgen.manifest_cache": "mmgen.data.manifest_cache",
    **{f"mmgen.data.toydance_{n}": f"mmgen.data.toydance.{n}" for n in ("dance", "grid", "io", "moves", "music", "report", "styles")},
}


_LOADING_FROM: contextvars.ContextVar[Path | None] = contextvars.ContextVar("mmgen_loading_from", default=None)


@contextlib.contextmanager
def configs_relative_to(directory: str | os.PathLike) -> Iterator[None]:
    """While active, `resolve_config_path` reads relative paths against `directory`.

    `from_pretrained` builds every module inside it, so a path a saved config names (a frozen
    encoder beside the model, as in `encoder: ../sync`) means the same wherever the model folder
    was copied, installed or downloaded.
    """
    token = _LOADING_FROM.set(Path(directory))
    try:
        yield
    finally:
        _LOADING_FROM.reset(token)


def resolve_config_path(path: str | os.PathLike) -> Path:
    """A path from a config: absolute as is; relative against the folder being loaded
    (`configs_relative_to`) when it exists there, else against the working directory (the
    paths a training config gives, e.g. `checkpoints/toydance/sync`)."""
    path = Path(path)
    base = _LOADING_FROM.get()
    if not path.is_absolute() and base is not None:
        # lexically: `base` itself may not exist yet ("condition/../sync" while it is being built)
        beside = Path(os.path.normpath(Path(base).absolute() / path))
        if beside.exists():
            return beside
    return path


def current_class_path(class_path: str) -> str:
    """`class_path` with a module that has moved replaced by its new home (old saved folders still load)."""
    module_name, _, name = class_path.rpartition(".")
    return f"{MOVED_MODULES[module_name]}.{name}" if module_name in MOVED_MODULES else class_path


def import_class(class_path: str) -> type:
    """Import `package.module.Class`, refusing anything outside mmgen (configs are data, not code)."""
    if not class_path.startswith(_TRUSTED_PREFIX):
        raise ValueError(f"refusing to import {class_path!r}: only classes under 'mmgen.' can be loaded")
    module_name, _, name = current_class_path(class_path).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"unknown class_path {class_path!r}: {err}") from err


def from_yaml_value(value: Any) -> Any:
    """Inverse of the dataclass encoding used in config.yaml."""
    if isinstance(value, dict) and set(value) == {"class_path", "init_args"}:
        cls = import_class(value["class_path"])
        return cls(**{k: from_yaml_value(v) for k, v in value["init_args"].items()})
    if isinstance(value, dict):
        return {k: from_yaml_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_yaml_value(v) for v in value]
    return value


def _known_subclass(cls: type, class_path: str) -> type | None:
    """`cls` or an already-imported subclass named `class_path` (no import needed, so always safe)."""
    stack = [cls]
    while stack:
        c = stack.pop()
        if f"{c.__module__}.{c.__qualname__}" == current_class_path(class_path):
            return c
        stack.extend(c.__subclasses__())
    return None


class PretrainedMixin:
    """Mixin for `nn.Module`s that records constructor arguments and saves/loads itself.

    Subclasses need nothing special: the outermost `__init__` call is recorded automatically.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__init__

        @functools.wraps(init)
        def recording_init(self: PretrainedMixin, *args: Any, **kw: Any) -> None:
            if not self.__dict__.get("_recording_init", False):
                bound = inspect.signature(init).bind(self, *args, **kw)
                bound.apply_defaults()
                params = dict(bound.arguments)
                params.pop("self")
                for name, p in inspect.signature(init).parameters.items():
                    if p.kind is inspect.Parameter.VAR_KEYWORD:
                        params.update(params.pop(name, {}))
                    elif p.kind is inspect.Parameter.VAR_POSITIONAL:
                        raise TypeError(f"{cls.__name__}: *args constructors cannot be saved as a config")
                object.__setattr__(self, "_init_config", params)
                object.__setattr__(self, "_recording_init", True)
                try:
                    init(self, *args, **kw)
                finally:
                    object.__setattr__(self, "_recording_init", False)
            else:
                init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[method-assign]

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments this module was built with."""
        return dict(self.__dict__.get("_init_config", {}))

    def config_yaml(self) -> dict[str, Any]:
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": _to_yaml_value(self.config)}

    def fingerprint(self) -> str:
        """sha256 of the config and every weight: two modules with equal fingerprints encode alike.

        Latent caches record the fingerprints of the VAEs that made them, so a DiT is never
        trained or sampled on latents of a different VAE.
        """
        assert isinstance(self, torch.nn.Module)
        digest = hashlib.sha256(yaml.safe_dump(self.config_yaml(), sort_keys=True).encode())
        for name, tensor in sorted(self.fingerprinted_state().items()):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return digest.hexdigest()

    def fingerprinted_state(self) -> dict[str, torch.Tensor]:
        """The weights `fingerprint` hashes: all of them unless a subclass knows some cannot
        change what the fingerprint vouches for."""
        assert isinstance(self, torch.nn.Module)
        return self.state_dict()

    def save_pretrained(
        self, directory: str | os.PathLike, dtype: torch.dtype | None = None, overwrite: bool = False
    ) -> Path:
        """Write `config.yaml` and `model.safetensors` into `directory` (atomically).

        `dtype` (e.g. torch.float16) stores the floating-point *parameters* at that precision to
        halve the file; buffers (latent statistics, filterbanks) stay exact. `from_pretrained`
        casts them back to the module's own dtype. `directory` must be new or empty, or (with
        `overwrite`) a folder an earlier `save_pretrained` wrote (`mmgen.core.fileio`).
        """
        assert isinstance(self, torch.nn.Module)
        params = {name for name, _ in self.named_parameters()}
        state = {
            k: (v.to(dtype) if dtype is not None and k in params and v.is_floating_point() else v).detach().contiguous().cpu()
            for k, v in self.state_dict().items()
        }
        with atomic_dir(directory, "pretrained model", overwrite=overwrite) as tmp:
            (tmp / CONFIG_NAME).write_text(yaml.safe_dump(self.config_yaml(), sort_keys=False))
            save_file(state, str(tmp / WEIGHTS_NAME))
        return Path(directory)

    @classmethod
    def from_pretrained(
        cls: type[M], directory: str | os.PathLike, device: torch.device | str = "cpu", strict: bool = True
    ) -> M:
        """Build the module from `config.yaml` and load `model.safetensors`; returns it in eval mode."""
        directory = Path(directory)
        config_file, weights_file = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for f in (config_file, weights_file):
            if not f.is_file():
                raise FileNotFoundError(f"{f}: missing (a pretrained directory holds {CONFIG_NAME} and {WEIGHTS_NAME})")
        spec = yaml.safe_load(config_file.read_text())
        if not isinstance(spec, dict) or "class_path" not in spec:
            raise ValueError(f"{config_file}: expected a mapping with 'class_path' and 'init_args'")
        target = _known_subclass(cls, spec["class_path"]) or import_class(spec["class_path"])
        if not (isinstance(target, type) and issubclass(target, cls)):
            raise ValueError(f"{config_file}: holds a {spec['class_path']}, not a {cls.__name__}")
        with configs_relative_to(directory):
            module = target(**from_yaml_value(spec.get("init_args") or {}))
        load_weights(module, weights_file, device=device, strict=strict)  # type: ignore[arg-type]
        return module.to(device).eval()  # type: ignore[attr-defined,return-value]


def load_weights(
    module: torch.nn.Module,
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    strict: bool = True,
    new: Sequence[str] = (),
) -> None:
    """Load a `model.safetensors` file (or the one in a pretrained directory) into a built module.

    Tensors are cast to the module's own dtypes (float16-stored checkpoints load into float32
    modules). With `strict`, a missing or unexpected name or a changed shape is an error naming the file.
    `new` names parameter prefixes the file may lack or hold in another shape (parts added to or
    rebuilt in a trained model, e.g. `aligned.` for a new time-aligned stream, `in_proj.video.`
    when the video patch size changes); they keep their initial values.
    """
    path = Path(path)
    weights_file = path / WEIGHTS_NAME if path.is_dir() else path
    if not weights_file.is_file():
        raise FileNotFoundError(f"{weights_file}: missing (a pretrained directory holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    state = load_file(str(weights_file), device=str(device))
    own = module.state_dict()
    rebuilt = [k for k, v in state.items() if k in own and v.shape != own[k].shape and any(k.startswith(p) for p in new)]
    for k in rebuilt:
        del state[k]
    changed = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if k in own and v.shape != own[k].shape]
    if changed:
        raise ValueError(f"{weights_file}: shapes differ from the module's: {', '.join(changed[:5])}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # a corrupt or diverged checkpoint: say so here, not as NaN output further down
        raise ValueError(f"{weights_file}: {len(bad)} weight tensor(s) hold NaN or infinite values (e.g. {bad[0]})")
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not any(k.startswith(prefix) for prefix in new)]
    if strict and (missing or unexpected):
        raise ValueError(f"{weights_file}: weights do not match the config (missing {missing}, unexpected {unexpected})")
