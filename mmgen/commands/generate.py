"""`mmgen generate`: run a task of a pipeline on wav / npz / mp4 inputs and write wav, npz, mp4, png.

mmgen generate --task dance2music --motion dance.npz --out out/
mmgen generate --task music2dance --audio song.wav --out out/ --seconds 8 --steps 30
mmgen generate --task music2dance --audio song.wav --out out/ --steps 12 --sampler unipc2 --grid log_snr
mmgen generate --task dance2music --motion dance.npz --out out/ --dtype bf16 --device cuda
mmgen generate --task interpolate --audio a.wav --motion a.npz --head 1 --tail 1 --out out/
mmgen generate --task video2audio --video clip.mp4 --via motion --out out/
mmgen generate --task joint --seconds 4 --cross-guidance 0.5 --caption "a calm waltz" --out out/
mmgen generate --task music2dance --audio song.wav --export bvh,smpl --out out/   # + sample.bvh, sample_smpl.pkl
mmgen generate --task dance2music --motion d.npz --text "a waltz" --melody ref.wav --image ref.png --quality 5 --out out/

Conditions (--text / --caption, --melody, --image, --quality) each need a conditioner of that kind in
the pipeline's condition encoder (docs/conditions.md); one left out sits at its null embedding.

Inputs are conformed to the pipeline (`mmgen.io.read`): audio is resampled to the model's sample
rate, motion to its fps (linear interpolation; a wrong joint count is an error), video to its fps
(by timestamps, also variable frame rate) and frame size (scale the short side, centre-crop; see
`mmgen.io.video_stream`). Any length: past the training window the clip is sampled in windows
(`--hop`, `--overlap`: any seconds; docs/long_form.md).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from mmgen.core.errors import MmgenError

SPAN_ARGS = ("head", "tail", "prefix", "start", "end", "t0")


def parse_guidance(text: str) -> dict[str, float]:
    """ "motion=2,text=1.5" -> {"motion": 2.0, "text": 1.5}; "none" -> {}."""
    if text.strip().lower() in ("none", "off", ""):
        return {}
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(
                f"--guidance: expected group=scale[,group=scale...] (e.g. motion=2,text=1.5), got {text!r}"
            ) from None
    return out


EXAMPLES = "\n".join(line for line in __doc__.splitlines() if line.startswith("mmgen generate"))


def _choice(kind: str, names: tuple[str, ...]) -> Any:
    """An argparse type naming the unknown value and the choices in one line."""

    def check(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(f"unknown {kind} {text!r}; choose from {', '.join(names)}")
        return text

    check.__name__ = kind
    return check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mmgen.diffusion import GRIDS, PRESETS, SAMPLERS
    from mmgen.lm.pipeline import LM_TASKS

    tasks = (*PRESETS, *(t for t in LM_TASKS if t not in PRESETS))  # "music": the codebook LM only
    parser.add_argument(
        "--pipeline", help="pipeline folder, \"toydance\" or a Hugging Face Hub id owner/name (default: the shipped ToyDance checkpoint)"
    )
    parser.add_argument("--task", default="dance2music", choices=tasks, type=_choice("task", tasks), help="task preset")
    parser.add_argument(
        "--out", required=True, help="output folder: new, empty, or an earlier `mmgen generate --out`"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace files of the same --name an earlier generate wrote"
    )
    parser.add_argument("--motion", help="motion .npz (joints [T, J, 3] + fps)")
    parser.add_argument("--audio", help="audio file (wav / flac / ogg)")
    parser.add_argument("--video", help="video file (mp4)")
    parser.add_argument("--seconds", type=float, help="clip length (default: the longest input)")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the pipeline's)")
    parser.add_argument(
        "--sampler", choices=SAMPLERS, type=_choice("sampler", SAMPLERS), help="solver (default: the pipeline's)"
    )
    parser.add_argument(
        "--grid", choices=GRIDS, type=_choice("grid", GRIDS),
        help="sampling grid; docs/samplers.md: unipc2 + log_snr at 8-20 steps (default: the pipeline's)",
    )
    parser.add_argument("--guidance", help="CFG scales, e.g. motion=2,text=1.5 ('none' for off)")
    parser.add_argument("--cross-guidance", type=float, help="MoMu cross-guidance switch level in [0, 1]")
    parser.add_argument(
        "--no-cross-guidance", action="store_true", help="turn the pipeline's default cross-guidance off"
    )
    parser.add_argument("--caption", "--text", dest="caption", help="text condition (pipelines with a text encoder)")
    parser.add_argument("--melody", help="reference melody audio file (pipelines with a melody conditioner)")
    parser.add_argument("--image", help="reference image, png / jpg (pipelines with a CLIP image conditioner)")
    parser.add_argument("--quality", type=float, help="quality score asked for, e.g. 5 (pipelines with a quality conditioner)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--batch-size", type=int, help="number of samples (default 1)")
    parser.add_argument(
        "--long-form",
        choices=("auto", "on", "off"),
        default="auto",
        help="sample in training-length windows (auto: when --seconds exceeds the window)",
    )
    parser.add_argument(
        "--hop",
        type=float,
        help="long form: seconds each window moves on (default: the pipeline's, half its training window); "
        "any value, each modality rounds it on its own latent grid",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        help="long form: seconds of each window already generated (GIVEN), default window - hop",
    )
    parser.add_argument("--name", default="sample", help="file name stem of the outputs (default 'sample')")
    parser.add_argument(
        "--export",
        help="motion exports besides the npz, comma-separated: bvh (<name>.bvh), smpl (<name>_smpl.pkl: SMPL "
        "pose parameters by inverse kinematics, AIST++ layout); SMPL-24 3-D motion only",
    )
    parser.add_argument(
        "--smpl-dir",
        help="SMPL model folder for --export smpl (its rest joints; default: mmgen's approximate template)",
    )
    parser.add_argument(
        "--one-pass",
        action="store_true",
        help="with a DiT that draws video from pose maps: generate the video in the same pass as the dance, "
        "not from the dance made first (docs/pose_maps.md)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
        help="DiT precision (autocast): bf16 on recent CPUs / GPUs, fp16 on GPUs; docs/inference.md",
    )
    lm = parser.add_argument_group("codebook LM baseline (docs/musicgen.md)")
    lm.add_argument(
        "--model-kind",
        choices=("dit", "lm"),
        help="dit or lm (default: what the pipeline folder holds; lm without --pipeline: checkpoints/toydance_lm)",
    )
    lm.add_argument("--temperature", type=float, help="LM sampling temperature (default: the pipeline's)")
    lm.add_argument("--top-k", type=int, help="LM top-k sampling, 0 = off (default: the pipeline's)")
    lm.add_argument("--top-p", type=float, help="LM nucleus sampling, 0 = off (default: the pipeline's)")
    lm.add_argument("--cfg-scale", type=float, help="LM classifier-free guidance scale (default: the pipeline's)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    span = parser.add_argument_group("task spans (seconds)")
    span.add_argument("--head", type=float, help="interpolate: GIVEN seconds at the start")
    span.add_argument("--tail", type=float, help="interpolate: GIVEN seconds at the end")
    span.add_argument("--prefix", type=float, help="continue: GIVEN seconds at the start")
    span.add_argument("--start", type=float, help="inpaint / edit: start of the regenerated span")
    span.add_argument("--end", type=float, help="inpaint / edit: end of the regenerated span")
    span.add_argument("--t0", type=float, help="edit: noise level the input is noised to, in (0, 1]")
    span.add_argument(
        "--modalities", help="comma-separated modalities the task generates (default: see Pipeline.task)"
    )
    span.add_argument(
        "--conditions", help="comma-separated modalities GIVEN throughout (continue / inpaint / edit)"
    )
    span.add_argument(
        "--via",
        help="dance2music / music2dance / video2audio / audio2video: comma-separated modalities generated "
        "alongside as a bridge, e.g. motion for video2audio ('none' turns the pipeline's default off)",
    )


def task_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {k: getattr(args, k) for k in SPAN_ARGS if getattr(args, k) is not None}
    for key in ("modalities", "conditions", "via"):
        value = getattr(args, key)
        if value:
            kwargs[key] = tuple(v.strip() for v in value.split(",") if v.strip())
    if kwargs.get("via") == ("none",):
        kwargs["via"] = ()
    return kwargs


def parse_export(text: str | None) -> tuple[str, ...]:
    """ "bvh,smpl" -> ("bvh", "smpl"); unknown names raise before anything runs."""
    from mmgen.pipeline.generation import EXPORT_FORMATS

    formats = tuple(dict.fromkeys(f.strip().lower() for f in (text or "").split(",") if f.strip()))
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(f"--export: unknown format(s) {unknown}; choose from {', '.join(EXPORT_FORMATS)}")
    return formats


def check_arguments(args: argparse.Namespace) -> None:
    """Every flag within `mmgen.core.limits`, the device present, the input files readable and
    not too long: all before the pipeline loads."""
    from mmgen.core.limits import (
        MAX_SECONDS,
        check_batch,
        check_number,
        check_seconds,
        check_seed,
        check_steps,
    )
    from mmgen.pipeline.checks import check_audio_file, check_device, check_video_file

    check_device(args.device)
    if args.seconds is not None:
        check_seconds("--seconds", args.seconds)
    if args.steps is not None:
        check_steps("--steps", args.steps)
    check_seed("--seed", args.seed)
    if args.batch_size is not None:
        check_batch("--batch-size", args.batch_size)
    if args.cross_guidance is not None:
        check_number("--cross-guidance", args.cross_guidance, 0.0, 1.0)
    if args.hop is not None:
        check_number("--hop", args.hop, 1e-3, MAX_SECONDS)
    if args.overlap is not None:
        check_number("--overlap", args.overlap, 0.0, MAX_SECONDS)
    for key in SPAN_ARGS:
        if getattr(args, key) is not None:
            check_number(f"--{key}", getattr(args, key), 0.0, MAX_SECONDS)
    for flag in ("motion", "audio", "video"):
        path = getattr(args, flag)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{flag} {path}: no such file")
    for flag in ("melody", "image"):
        path = getattr(args, flag)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{flag} {path}: no such file")
    if args.audio is not None:
        check_audio_file(args.audio)
    if args.melody is not None:
        check_audio_file(args.melody, "--melody")
    if args.quality is not None:
        check_number("--quality", args.quality, -1e6, 1e6)
    if args.video is not None:
        check_video_file(args.video)


def check_out(args: argparse.Namespace) -> None:
    """Before any work: --out is new, empty or an earlier generate's folder, and holds no earlier
    output of this --name unless --overwrite (then only files mmgen wrote are replaced)."""
    from mmgen.core.fileio import read_marker

    out, name = Path(args.out), args.name
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"--name must be a plain file name, got {name!r}")
    if out.exists() and not out.is_dir():
        raise MmgenError(f"--out {out}: is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    marker = read_marker(out)
    if marker is None or marker.get("kind") != "generation":
        raise MmgenError(f"--out {out}: is not empty and was not written by `mmgen generate`; give a new or empty folder")
    pattern = re.compile(rf"{re.escape(name)}(_\d{{3}})?(\.wav|\.npz|\.mp4|_mel\.png|\.bvh|_smpl\.pkl)")
    for flag in ("motion", "audio", "video"):
        path = getattr(args, flag)
        if path is not None and Path(path).resolve().parent == out.resolve() and pattern.fullmatch(Path(path).name):
            raise MmgenError(f"--{flag} {path}: the output {name!r} would replace this input; give another --name")
    earlier = sorted(p.name for p in out.iterdir() if pattern.fullmatch(p.name))
    foreign = [n for n in earlier if n not in marker["files"] or (out / n).is_dir()]
    if foreign:
        raise MmgenError(f"--out {out}: {foreign[0]} is already there and was not written by mmgen; "
                         "give another --name or --out")
    if earlier and not args.overwrite:
        raise MmgenError(
            f"--out {out}: holds an earlier output named {name!r} ({earlier[0]}); "
            "pass --overwrite to replace it or --name for another name"
        )


def read_conditions(args: argparse.Namespace) -> dict[str, Any]:
    """--melody (mono, at its own rate), --image (RGB uint8) and --quality as `generate` kwargs."""
    out: dict[str, Any] = {"quality": args.quality}
    if args.melody is not None:
        import soundfile as sf

        try:
            wave, rate = sf.read(str(args.melody), dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as err:
            raise ValueError(f"--melody {args.melody}: cannot be read ({str(err).splitlines()[0][:160]})") from None
        out["melody"], out["melody_rate"] = wave.mean(axis=1), int(rate)
    if args.image is not None:
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(args.image) as img:
                out["image"] = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"--image {args.image}: not a readable image ({str(err).splitlines()[0][:160]})") from None
    return out


def run(args: argparse.Namespace) -> int:
    from mmgen.demo.run import default_pipeline_dir
    from mmgen.io.read import read_audio, read_motion, read_video_file
    from mmgen.pipeline import Pipeline
    from mmgen.pipeline.hub import locate

    directory = locate(args.pipeline) if args.pipeline else default_pipeline_dir()
    if args.pipeline is None and args.model_kind == "lm":
        directory = directory.parent / "toydance_lm"
    if args.pipeline is None and not directory.is_dir():
        raise MmgenError(f"no --pipeline given and the shipped checkpoint {directory} is not there")
    check_arguments(args)
    from mmgen.lm.pipeline import pipeline_kind

    kind = pipeline_kind(directory)
    if args.model_kind is not None and args.model_kind != kind:
        raise MmgenError(f"--model-kind {args.model_kind}: {directory} holds a {kind} pipeline")
    if kind == "lm":
        return run_lm(args, directory)
    used = [f"--{k.replace('_', '-')}" for k in ("temperature", "top_k", "top_p", "cfg_scale") if getattr(args, k) is not None]
    if used:
        raise ValueError(f"{', '.join(used)}: only for the codebook LM (--model-kind lm)")
    export = parse_export(args.export)
    if args.smpl_dir is not None and "smpl" not in export:
        raise ValueError("--smpl-dir is only used by --export smpl")
    check_out(args)
    pipe = Pipeline.from_pretrained(directory, device=args.device)
    if export:
        if "motion" not in pipe.modalities:
            raise ValueError(f"--export {','.join(export)}: this pipeline has no motion modality")
        codec = pipe.modalities["motion"].vae.codec
        if (codec.layout.skeleton.name, codec.dims) != ("smpl24", 3):
            raise ValueError(
                f"--export {','.join(export)}: needs SMPL-24 3-D motion, this pipeline's is "
                f"{codec.layout.skeleton.name} {codec.dims}-D (keep the npz)"
            )
    if args.smpl_dir is not None:
        from mmgen.data.smpl_fk import find_smpl_model

        find_smpl_model(args.smpl_dir)  # a wrong folder fails now, not after sampling
    given: dict[str, Any] = {}
    for flag, reader in (("audio", read_audio), ("motion", read_motion), ("video", read_video_file)):
        path = getattr(args, flag)
        if path is None:
            continue
        if flag not in pipe.modalities:
            raise ValueError(
                f"--{flag}: this pipeline has no {flag} modality (has {sorted(pipe.modalities)})"
            )
        given[flag] = reader(path, pipe.modalities[flag])
    cross = False if args.no_cross_guidance else args.cross_guidance
    result = pipe.generate(
        args.task,
        given,
        seconds=args.seconds,
        steps=args.steps,
        sampler=args.sampler,
        grid=args.grid,
        guidance=parse_guidance(args.guidance) if args.guidance is not None else None,
        cross_guidance=cross,
        caption=args.caption,
        **read_conditions(args),
        seed=args.seed,
        batch_size=args.batch_size,
        long_form={"auto": None, "on": True, "off": False}[args.long_form],
        progress=not args.no_progress,
        task_kwargs=task_kwargs(args),
        hop=args.hop,
        overlap=args.overlap,
        dtype=args.dtype,
        dance_first=False if args.one_pass else None,
    )
    written = result.save(
        args.out, prefix=args.name, export=export, smpl_dir=args.smpl_dir, overwrite=args.overwrite
    )
    print(
        f"{result.task}: {result.batch_size} sample(s) of {result.seconds:g} s -> {len(written)} files in {args.out}"
    )
    for path in written:
        print(f"  {path}")
    return 0


def run_lm(args: argparse.Namespace, directory: Path) -> int:
    """`mmgen generate` with a codebook-LM pipeline folder: dance2music, video2audio, continue, music."""
    from mmgen.io.read import read_audio, read_motion, read_video_file
    from mmgen.lm.pipeline import LM_TASKS, LMPipeline

    if args.task not in LM_TASKS:
        raise ValueError(f"--task {args.task}: the codebook LM runs {', '.join(LM_TASKS)}")
    dit_only = {"steps": "--steps", "sampler": "--sampler", "grid": "--grid", "guidance": "--guidance", "cross_guidance": "--cross-guidance",
                "caption": "--caption", "export": "--export", "smpl_dir": "--smpl-dir"}  # fmt: skip
    dit_only.update({k: f"--{k}" for k in (*SPAN_ARGS, "modalities", "conditions", "via") if k != "prefix"})
    used = [flag for key, flag in dit_only.items() if getattr(args, key) is not None]
    used += ["--dtype"] if args.dtype != "fp32" else []
    used += ["--one-pass"] if args.one_pass else []
    if used:
        raise ValueError(f"{', '.join(used)}: not used by the codebook LM (see mmgen generate --help)")
    check_out(args)
    pipe = LMPipeline.from_pretrained(directory, device=args.device)
    given = {}
    for flag, reader in (("audio", read_audio), ("motion", read_motion), ("video", read_video_file)):
        path = getattr(args, flag)
        if path is not None:
            given[flag] = reader(path, pipe.modalities[flag])
    result = pipe.generate(
        args.task, given, seconds=args.seconds, prefix_seconds=args.prefix, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, cfg_scale=args.cfg_scale, seed=args.seed, batch_size=args.batch_size,
    )  # fmt: skip
    written = result.save(args.out, prefix=args.name, overwrite=args.overwrite)
    print(f"{result.task} (codebook LM): {result.batch_size} sample(s) of {result.seconds:g} s -> {len(written)} files in {args.out}")
    for path in written:
        print(f"  {path}")
    return 0
