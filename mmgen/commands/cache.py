"""`mmgen cache`: encode a manifest folder with trained VAEs into a latent cache for DiT training.

mmgen cache --data data/toydance --pipeline checkpoints/toydance --out cache/toydance
mmgen cache --data data/aist --vae audio=runs/mel_vae --vae motion=runs/motion_vae --out cache/aist --seconds 8

mmgen cache --data data/toydance --pipeline checkpoints/toydance --out cache/sync \
    --condition configs/toydance/dit_sync.yaml
mmgen cache --data data/aist --pipeline checkpoints/aist --out cache/aist --format shards --workers 2

`--format shards` writes tar shards for streaming multi-node training (`mmgen.data.latent_shards`,
docs/performance.md); `--workers N` reads and encodes clips in N processes, same bytes out.

`--condition FILE` also stores the frozen features of the condition encoder a DiT training config
names (its model.init_args.condition), or of a ConditionEncoder / Conditioner spec or a saved
ConditionEncoder folder, per clip beside the latents with each encoder's fingerprint, so
`mmgen fit` trains without running the encoders (T5 / CLIP text, CLIP image, melody chroma, the
sync stream, quality levels). Timing conditioners are left out: their inputs (seconds_start,
seconds_total) belong to the training window, which the data module adds to every batch.

`--vae NAME=DIR` takes a modality folder (DIR/vae, and DIR/vocoder for audio, as
`MediaModality.save_pretrained` writes) or a bare VAE folder (DIR/config.yaml). NAME is audio,
motion or video. The cache records each VAE's fingerprint, so a DiT is never trained on latents
of other VAEs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmgen.modalities.media import MediaModality


EXAMPLES = """\
mmgen cache --data data/toydance --pipeline checkpoints/toydance --out cache/toydance
mmgen cache --data data/aist --vae audio=runs/mel_vae --vae motion=runs/motion_vae --out cache/aist --seconds 8
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, help="manifest folder (`mmgen toydance make` or `mmgen preprocess` output)"
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--pipeline", help="pipeline folder whose VAEs encode the data")
    src.add_argument(
        "--vae", action="append", metavar="NAME=DIR", help="a modality's VAE folder (repeat per modality)"
    )
    parser.add_argument("--out", required=True, help="cache folder to write: new or empty (see --overwrite)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a latent cache an earlier `mmgen cache` wrote at --out"
    )
    parser.add_argument("--modalities", help="comma-separated subset to cache (default: every VAE's)")
    parser.add_argument(
        "--seconds", type=float, help="cut items into windows of this length (default: whole items)"
    )
    parser.add_argument("--stride", type=float, help="hop between windows (default: --seconds)")
    parser.add_argument(
        "--shard-size", type=int, default=256, help="clips per shard file (default 256)"
    )
    parser.add_argument(
        "--format",
        choices=("folder", "shards"),
        default="folder",
        help="folder: safetensors shards read whole on one machine (default); shards: tar shards of one "
        "safetensors per clip (WebDataset layout) that `LatentCacheDataModule(streaming=true)` streams "
        "across nodes. Training reads either.",
    )
    parser.add_argument(
        "--condition",
        metavar="FILE",
        help="store the frozen features of this config's condition encoder (a DiT training config, "
        "a ConditionEncoder / Conditioner YAML, or a saved ConditionEncoder folder)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes reading and encoding clips (default 1; same bytes out)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def load_vae_modality(name: str, directory: str, device: str) -> MediaModality:
    """A MediaModality for `name` from a modality folder (DIR/vae/...) or a bare VAE folder
    (DIR/config.yaml). The media kind follows the VAE's class: a MelVAE is `audio_mel`, a
    WaveVAE `audio_wave`, so an audio cache can come from either."""
    import yaml

    from mmgen.core.pretrained import import_class
    from mmgen.modalities.media import MEDIA_KINDS
    from mmgen.pipeline.load import load_part

    if name not in ("audio", "motion", "video"):
        raise ValueError(f"--vae {name}=...: the name must be one of ['audio', 'motion', 'video']")
    folder = Path(directory)
    bare = (folder / "config.yaml").is_file()
    config = folder / "config.yaml" if bare else folder / "vae" / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"--vae {name}={directory}: neither a VAE folder nor a modality folder (no {config})")
    try:
        vae_cls = import_class(yaml.safe_load(config.read_text())["class_path"])
    except Exception as err:  # noqa: BLE001 -- bad YAML, no class_path, unknown class: one line
        raise ValueError(f"{config}: cannot tell the VAE class ({str(err).splitlines()[0][:160]})") from None
    kinds = [c for c in MEDIA_KINDS.values() if issubclass(vae_cls, c.vae_class) and c.kind.partition("_")[0] == name]
    if not kinds:
        raise ValueError(f"--vae {name}={directory}: a {vae_cls.__name__} is not a {name} VAE")
    media_cls = kinds[0]
    if bare:
        vae = load_part(f"{name} VAE", folder, lambda: vae_cls.from_pretrained(folder, device))
        return media_cls(vae).to(device)
    return load_part(f"{name} modality", folder, lambda: media_cls.from_pretrained(folder, device))


def _with_init_args(value: Any) -> Any:
    """jsonargparse allows {class_path} without init_args; from_yaml_value wants both."""
    if isinstance(value, dict):
        value = {k: _with_init_args(v) for k, v in value.items()}
        if "class_path" in value and set(value) <= {"class_path", "init_args"}:
            value.setdefault("init_args", {})
        return value
    if isinstance(value, list):
        return [_with_init_args(v) for v in value]
    return value


def load_conditioners(source: str) -> dict[str, Any]:
    """{name: Conditioner} from a training config, a ConditionEncoder / Conditioner spec, or a
    saved ConditionEncoder folder (only mmgen classes are built; weights are not needed to encode)."""
    import yaml

    from mmgen.conditioning import ConditionEncoder, Conditioner
    from mmgen.core.pretrained import CONFIG_NAME, from_yaml_value

    path = Path(source)
    file = path / CONFIG_NAME if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"--condition {source}: no such file or condition encoder folder")
    spec = yaml.safe_load(file.read_text())
    if isinstance(spec, dict) and isinstance(spec.get("model"), dict):  # a LightningCLI training config
        spec = (spec["model"].get("init_args") or {}).get("condition")
        if spec is None:
            raise ValueError(f"--condition {source}: the config's model has no condition encoder")
    if not (isinstance(spec, dict) and "class_path" in spec):
        raise ValueError(f"--condition {source}: expected a class_path / init_args mapping")
    built = from_yaml_value(_with_init_args(spec))
    if isinstance(built, ConditionEncoder):
        return dict(built.conditioners.items())
    if isinstance(built, Conditioner):
        return {"condition": built}
    raise ValueError(f"--condition {source}: builds a {type(built).__name__}, not a condition encoder")


def run(args: argparse.Namespace) -> int:
    from mmgen.core.fileio import check_output_dir
    from mmgen.core.limits import MAX_SECONDS, check_int, check_number, check_seconds
    from mmgen.core.parallel import check_workers
    from mmgen.data.manifest_cache import cache_manifest
    from mmgen.pipeline.checks import check_device

    check_device(args.device)
    if args.seconds is not None:
        check_seconds("--seconds", args.seconds)
    if args.stride is not None:
        check_number("--stride", args.stride, 0.01, MAX_SECONDS)
    check_int("--shard-size", args.shard_size, 1, 100_000)
    check_workers("--workers", args.workers)
    if args.workers > 1 and args.device != "cpu":
        raise ValueError(f"--workers {args.workers} needs --device cpu (workers are forked processes)")
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f"--data {args.data}: no such folder")
    # before any VAE loads: --out may not be the data, hold it, or be a folder mmgen did not write
    vae_dirs = [spec.partition("=")[2] or None for spec in args.vae or ()]
    check_output_dir(
        args.out, "latent cache", overwrite=args.overwrite, inputs=[args.data, args.pipeline, args.condition, *vae_dirs]
    )
    conditioners = load_conditioners(args.condition) if args.condition else None  # a bad config fails before the VAEs load
    if conditioners:
        from mmgen.conditioning.timing import TimingConditioner

        # timing depends on the training window (seconds_start), not on the clip: computed per batch
        conditioners = {n: c for n, c in conditioners.items() if not isinstance(c, TimingConditioner)} or None

    if args.pipeline is not None:
        from mmgen.pipeline.config import read_config
        from mmgen.pipeline.load import load_modalities

        modalities = load_modalities(args.pipeline, read_config(args.pipeline), args.device)
    else:
        modalities = {}
        for spec in args.vae:
            name, sep, directory = spec.partition("=")
            if not sep or not name or not directory:
                raise ValueError(f"--vae: expected NAME=DIR (e.g. audio=runs/mel_vae), got {spec!r}")
            if name in modalities:
                raise ValueError(f"--vae: {name!r} given twice")
            modalities[name] = load_vae_modality(name, directory, args.device)
    if args.modalities:
        wanted = [m.strip() for m in args.modalities.split(",") if m.strip()]
        missing = sorted(set(wanted) - set(modalities))
        if missing:
            raise ValueError(f"--modalities {missing}: no VAE for them (have {sorted(modalities)})")
        modalities = {m: modalities[m] for m in wanted}
    for c in (conditioners or {}).values():
        c.to(args.device)
    out = cache_manifest(
        args.data,
        modalities,
        args.out,
        seconds=args.seconds,
        stride=args.stride,
        shard_size=args.shard_size,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        conditioners=conditioners,
        workers=args.workers,
        layout="tar" if args.format == "shards" else "safetensors",
    )
    stored = f" and features {', '.join(conditioners)}" if conditioners else ""
    print(f"wrote latent cache of {', '.join(modalities)}{stored} to {out}")
    return 0
