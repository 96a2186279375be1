"""Loading a pipeline folder's parts, and the checks that they fit together.

Every part is a `save_pretrained` folder (config.yaml + model.safetensors). A missing file raises
FileNotFoundError naming it; a corrupt one raises MmgenError naming it; a part that loads but does
not fit (DiT specs vs VAE specs, conditioning widths) raises ValueError naming the modality.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml
from safetensors import SafetensorError

from mmgen.conditioning.encoder import ConditionEncoder
from mmgen.core.errors import MmgenError
from mmgen.core.pretrained import CONFIG_NAME as PART_CONFIG
from mmgen.core.pretrained import WEIGHTS_NAME, from_yaml_value
from mmgen.diffusion.process import Process
from mmgen.dit.model import MultimodalDiT
from mmgen.modalities.media import MEDIA_KINDS, MediaModality
from mmgen.pipeline.config import CONFIG_NAME, part_path

T = TypeVar("T")


def load_part(what: str, directory: Path, load: Callable[[], T]) -> T:
    """Run `load`, turning a corrupt config / weights file into one error that names the file."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: missing {what} folder")
    try:
        return load()
    except yaml.YAMLError as err:
        raise MmgenError(
            f"{what}: a config.yaml under {directory} is not valid YAML ({str(err).splitlines()[0]})"
        ) from None
    except SafetensorError as err:
        raise MmgenError(
            f"{what}: a {WEIGHTS_NAME} under {directory} is corrupt or truncated ({err})"
        ) from None
    except TypeError as err:  # config.yaml init_args that the class does not take
        raise MmgenError(
            f"{what}: a {PART_CONFIG} under {directory} does not fit its class ({err})"
        ) from None


def load_modalities(
    directory: str | os.PathLike, cfg: Mapping[str, Any], device: torch.device | str
) -> dict[str, MediaModality]:
    """{name: MediaModality} from the `modalities:` section of a read pipeline.yaml."""
    out = {}
    for name, entry in cfg["modalities"].items():
        kind = entry["kind"]
        if kind not in MEDIA_KINDS:
            raise MmgenError(
                f"{Path(directory) / CONFIG_NAME}: modality {name!r} has kind {kind!r}; known: {sorted(MEDIA_KINDS)}"
            )
        folder = part_path(directory, entry["path"], f"modality {name!r}")
        cls = MEDIA_KINDS[kind]
        mod = load_part(f"modality {name!r}", folder, lambda c=cls, f=folder: c.from_pretrained(f, device))  # type: ignore[attr-defined]
        iters = entry.get("griffin_lim_iters")
        if iters is not None:
            if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
                raise MmgenError(
                    f"{Path(directory) / CONFIG_NAME}: {name}.griffin_lim_iters must be >= 0, got {iters!r}"
                )
            mod.codec.griffin_lim_iters = iters
        out[str(name)] = mod
    return out


def load_dit(
    directory: str | os.PathLike, cfg: Mapping[str, Any], device: torch.device | str
) -> MultimodalDiT:
    folder = part_path(directory, cfg["dit"], "dit")
    return load_part("dit", folder, lambda: MultimodalDiT.from_pretrained(folder, device))


def load_condition(
    directory: str | os.PathLike, cfg: Mapping[str, Any], device: torch.device | str
) -> ConditionEncoder | None:
    if cfg.get("condition") is None:
        return None
    folder = part_path(directory, cfg["condition"], "condition")
    return load_part("condition", folder, lambda: ConditionEncoder.from_pretrained(folder, device))


def load_process(directory: str | os.PathLike, cfg: Mapping[str, Any]) -> Process | None:
    spec = cfg.get("process")
    if spec is None:
        return None
    where = Path(directory) / CONFIG_NAME
    if not isinstance(spec, dict) or set(spec) != {"class_path", "init_args"}:
        raise MmgenError(f"{where}: 'process' must be {{class_path, init_args}}, got {spec!r}")
    try:
        process = from_yaml_value(spec)
    except TypeError as err:
        raise MmgenError(f"{where}: process init_args do not fit {spec['class_path']} ({err})") from None
    except ValueError as err:
        raise MmgenError(f"{where}: {err}") from None
    if not isinstance(process, Process):
        raise MmgenError(f"{where}: process {spec['class_path']} is not a mmgen.diffusion Process")
    return process


def _same_spec(a: Any, b: Any) -> bool:
    return (
        a.channels == b.channels
        and math.isclose(a.rate_hz, b.rate_hz, rel_tol=1e-9)
        and (None if a.spatial is None else tuple(a.spatial))
        == (None if b.spatial is None else tuple(b.spatial))
    )


def check_parts(
    dit: MultimodalDiT,
    modalities: Mapping[str, MediaModality],
    process: Process,
    condition: ConditionEncoder | None,
) -> None:
    """Raise ValueError unless the DiT and the VAEs name the same modalities with equal specs, and
    the condition encoder matches the DiT's context / prefix inputs."""
    if not isinstance(dit, MultimodalDiT):
        raise TypeError(f"Pipeline: dit must be a MultimodalDiT, got {type(dit).__name__}")
    if not isinstance(process, Process):
        raise TypeError(f"Pipeline: process must be a mmgen.diffusion Process, got {type(process).__name__}")
    for name, mod in modalities.items():
        if not isinstance(mod, MediaModality):
            raise TypeError(f"Pipeline: modality {name!r} is a {type(mod).__name__}, not a MediaModality")
    if set(dit.specs) != set(modalities):
        raise ValueError(
            f"Pipeline: the DiT models {sorted(dit.specs)} but the VAEs are for {sorted(modalities)}"
        )
    for name, mod in modalities.items():
        if not _same_spec(dit.specs[name], mod.spec):
            raise ValueError(
                f"Pipeline: the DiT's {name!r} latents are {dit.specs[name]} but the {name} VAE makes {mod.spec}"
            )
    if condition is None:
        if dit.context_dim is not None or dit.prefix_dim is not None:
            raise ValueError(
                f"Pipeline: the DiT takes conditions (context_dim={dit.context_dim}, prefix_dim={dit.prefix_dim}) "
                "but no condition encoder was given"
            )
        return
    if condition.context_dim != dit.context_dim or condition.prefix_dim != dit.prefix_dim:
        raise ValueError(
            f"Pipeline: condition encoder widths (context {condition.context_dim}, prefix {condition.prefix_dim}) "
            f"differ from the DiT's (context {dit.context_dim}, prefix {dit.prefix_dim})"
        )
