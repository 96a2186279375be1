"""`Generation`: what `Pipeline.generate` returns (raw media per example) and how it is written to disk.

    audio   [B, S] float32 at sample_rate          -> <name>.wav
    joints  [B, T, J, D] float32 at fps            -> <name>.npz (mmgen.io.export.save_motion_npz; 2-D pose
                                                      as x, y, confidence 1 like preprocessed pose)
    frames  [B, F, H, W, 3] uint8 at video_fps     -> <name>.mp4 with the audio muxed (AAC); without a
                                                      video modality the stick figure of the joints
    audio (+ joints)                               -> <name>_mel.png: log-mel with music beats (librosa)
                                                      and motion beats (joint-speed minima) marked
                                                      (the first PNG_SECONDS = 60 s of longer clips)
    joints, export "bvh" (SMPL-24 3-D only)        -> <name>.bvh (mmgen.io.bvh, centimetres, each bone's
                                                      mean length)
    joints, export "smpl" (SMPL-24 3-D only)       -> <name>_smpl.pkl (mmgen.io.smpl_export: SMPL pose
                                                      parameters by inverse kinematics, AIST++ layout)

`<name>` is the prefix for a single example and `<prefix>_<i>` (3 digits) for a batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("bvh", "smpl")
PNG_SECONDS = 60.0  # the mel PNG shows at most this much of the audio


@dataclass
class Generation:
    """Raw outputs of one `Pipeline.generate` call; a field is None when the task did not produce it.

    Given inputs appear exactly as given (trimmed / padded to the clip); `latents` holds the
    sampled normalized latents per modality (CPU) and `given` the modalities the task took as input.
    `generated` marks, per modality, the raw samples / frames [N] the model made (False where the
    input was pasted back): the span to score an interpolation or inpainting on, and the frames
    that carry a bar along the top of the mp4 (the video, or the stick figure without one).
    """

    task: str
    seconds: float
    audio: np.ndarray | None = None  # [B, S] float32
    sample_rate: int | None = None
    joints: np.ndarray | None = None  # [B, T, J, D] float32 (D = 3, or 2 for 2-D pose)
    fps: float | None = None
    frames: np.ndarray | None = None  # [B, F, H, W, 3] uint8
    video_fps: float | None = None
    seed: int = 0
    given: tuple[str, ...] = ()
    latents: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    generated: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def batch_size(self) -> int:
        for x in (self.audio, self.joints, self.frames):
            if x is not None:
                return int(x.shape[0])
        return 0

    def names(self, prefix: str = "sample") -> list[str]:
        """File stem of every example: `prefix` alone for one example, `prefix_000`, ... for a batch."""
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"Generation: prefix must be a plain file name, got {prefix!r}")
        b = self.batch_size
        return [prefix] if b == 1 else [f"{prefix}_{i:03d}" for i in range(b)]

    def example_frames(self, i: int, stick_size: int = 128) -> tuple[np.ndarray, float] | None:
        """Frames and fps of example i for the mp4: the video if there is one, else the stick figure."""
        from mmgen.io.render import mark_generated, render_stick_figure

        if self.frames is not None:
            marks = self._partial_span("video")
            frames = self.frames[i] if marks is None else mark_generated(self.frames[i], marks)
            return frames, float(self.video_fps or 0.0)
        if self.joints is None:
            return None
        joints = self.joints[i]
        if joints.shape[1:] != (24, 3):
            logger.info("no stick figure for %s joints (needs SMPL-24, 3-D); mp4 skipped", joints.shape[1:])
            return None
        fps = float(self.fps or 0.0)
        return render_stick_figure(joints, fps, size=stick_size, generated=self._partial_span("motion")), fps

    def example_video(self, i: int, stick_size: int = 128) -> tuple[Iterator[np.ndarray] | np.ndarray, float] | None:
        """Like `example_frames`, but the stick figure comes as chunks rendered while they are
        written (a 10-min dance is ~0.9 GB of 128 x 128 frames at once)."""
        from mmgen.io.render import iter_stick_figure

        if self.frames is not None or self.joints is None or self.joints[i].shape[1:] != (24, 3):
            return self.example_frames(i, stick_size)
        fps = float(self.fps or 0.0)
        return iter_stick_figure(self.joints[i], fps, size=stick_size, generated=self._partial_span("motion")), fps

    def _partial_span(self, modality: str) -> np.ndarray | None:
        """The generated mask of `modality` if the model made some of its frames but not all (only
        then is there a boundary worth marking), else None."""
        made = self.generated.get(modality)
        return made if made is not None and made.any() and not made.all() else None

    def check_export(self, export: Sequence[str]) -> tuple[str, ...]:
        """The motion exports asked for, checked against what this generation holds (raises early,
        before anything is written)."""
        formats = tuple(dict.fromkeys(export))
        unknown = [f for f in formats if f not in EXPORT_FORMATS]
        if unknown:
            raise ValueError(f"export: unknown format(s) {unknown}; choose from {list(EXPORT_FORMATS)}")
        if formats and self.joints is None:
            raise ValueError(f"export {', '.join(formats)}: this generation has no motion (task {self.task})")
        if formats and self.joints is not None and self.joints.shape[2:] != (24, 3):
            raise ValueError(
                f"export {', '.join(formats)}: needs SMPL-24 3-D joints [T, 24, 3], this motion is "
                f"{list(self.joints.shape[2:])} (2-D pose has no depth to solve rotations from; keep the npz)"
            )
        return formats

    def file_names(self, prefix: str = "sample", export: Sequence[str] = ()) -> list[str]:
        """The files `save` writes (wav / npz / exports / mp4 / mel PNG per example)."""
        names = []
        for name in self.names(prefix):
            if self.audio is not None:
                names.append(f"{name}.wav")
            if self.joints is not None:
                names.append(f"{name}.npz")
                names += [f"{name}.bvh" for f in export if f == "bvh"] + [f"{name}_smpl.pkl" for f in export if f == "smpl"]
            if self.frames is not None or (self.joints is not None and self.joints.shape[2:] == (24, 3)):
                names.append(f"{name}.mp4")
            if self.audio is not None:
                names.append(f"{name}_mel.png")
        return names

    def save(
        self,
        directory: str | os.PathLike,
        prefix: str = "sample",
        stick_size: int = 128,
        export: Sequence[str] = (),
        smpl_dir: str | os.PathLike | None = None,
        overwrite: bool = False,
    ) -> list[Path]:
        """Write wav / npz / mp4 (audio muxed) / mel PNG per example into `directory`; returns the paths.

        All or nothing: the files are written to a staging folder and moved in together
        (`mmgen.core.fileio.atomic_files`). A file already in `directory` is replaced only if an
        earlier `save` wrote it and `overwrite` is set. `stick_size` is the frame size of the
        stick-figure video drawn when the generation has joints but no video. `export` adds motion
        files: "bvh" (`<name>.bvh`) and / or "smpl" (`<name>_smpl.pkl`, solved against the rest
        joints of the SMPL model in `smpl_dir`, or mmgen's approximate SMPL template without one).
        """
        from mmgen.core.fileio import atomic_files, check_output_files
        from mmgen.io.export import plot_mel_with_beats, save_motion_npz, save_video, save_wav
        from mmgen.metrics import motion_beats, music_beats

        formats = self.check_export(export)
        rest = None
        if "smpl" in formats:
            from mmgen.io.smpl_export import smpl_rest_joints

            rest = smpl_rest_joints(smpl_dir)
        directory = Path(directory)
        check_output_files(directory, self.file_names(prefix, formats), overwrite=overwrite, arg="output folder")
        sr, fps = int(self.sample_rate or 0), float(self.fps or 0.0)
        written: list[str] = []
        with atomic_files(directory, "generation", overwrite=overwrite, arg="output folder") as tmp:
            for i, name in enumerate(self.names(prefix)):
                audio = self.audio[i] if self.audio is not None else None
                joints = self.joints[i] if self.joints is not None else None
                if audio is not None:
                    save_wav(tmp / f"{name}.wav", audio, sr)
                    written.append(f"{name}.wav")
                if joints is not None:
                    stored = joints
                    if joints.shape[-1] == 2:  # 2-D pose: stored as (x, y, confidence 1), like preprocessed pose
                        stored = np.concatenate([joints, np.ones_like(joints[..., :1])], axis=-1)
                    save_motion_npz(tmp / f"{name}.npz", stored, fps, task=self.task, seed=self.seed)
                    written.append(f"{name}.npz")
                    written += self._export_motion(tmp, name, joints, formats, rest)
                video = self.example_video(i, stick_size)
                if video is not None:
                    mux = {"audio": audio, "sr": sr} if audio is not None else {}
                    save_video(tmp / f"{name}.mp4", video[0], video[1], **mux)
                    written.append(f"{name}.mp4")
                if audio is not None:
                    # the picture shows the first PNG_SECONDS: readable, and bounded memory at any length
                    audio = audio[: round(PNG_SECONDS * sr)]
                    joints = joints[: round(PNG_SECONDS * fps)] if joints is not None else None
                    dance = (
                        motion_beats(joints, fps) / fps if joints is not None and len(joints) >= 3 else None
                    )  # seconds
                    beats = music_beats(audio, sr)
                    plot_mel_with_beats(
                        tmp / f"{name}_mel.png", audio, sr, beats, dance, title=f"{self.task}: {name}"
                    )
                    written.append(f"{name}_mel.png")
        logger.info("wrote %d files to %s", len(written), directory)
        return [directory / n for n in written]

    def _export_motion(
        self, directory: Path, name: str, joints: np.ndarray, formats: tuple[str, ...], rest: np.ndarray | None
    ) -> list[str]:
        fps = float(self.fps or 0.0)
        out = []
        if "bvh" in formats:
            from mmgen.io.bvh import save_bvh

            out.append(save_bvh(directory / f"{name}.bvh", joints, fps, bone_lengths="mean").name)
        if "smpl" in formats:
            from mmgen.io.smpl_export import joints_to_smpl, save_smpl

            out.append(save_smpl(directory / f"{name}_smpl.pkl", joints_to_smpl(joints, fps, rest)).name)
        return out
