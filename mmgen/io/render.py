"""Stick-figure rendering of 3-D joints: an orthographic front view, drawn with numpy only.

The camera looks at the dancer from +z (SMPL bodies face +z), so image columns follow +x (the
body's left appears on the viewer's right, as when facing a person) and image rows follow -y.
One scale and one centre are used for the whole clip, so bounces, steps and turns stay visible:

    world (x, y) ──► column = cx + s · (x - x_mid)        s = fill · size / clip height
                      row    = floor_row - s · y            (limited so the widest pose fits)

Bones are anti-aliased capsules composited far-to-near (by depth z) per frame; left limbs are
blue/cyan, right limbs red/orange, the trunk white and the head a filled yellow disc.
ToyDance videos and `mmgen.io.export` use this same renderer.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mmgen.core.skeleton import SMPL24, Skeleton

Color = tuple[int, int, int]

# colour of a bone by the side/limb of its child joint
LIMB_COLORS: dict[str, Color] = {
    "left_arm": (60, 130, 255),
    "left_leg": (0, 215, 215),
    "right_arm": (255, 60, 60),
    "right_leg": (255, 165, 0),
    "trunk": (235, 235, 235),
    "head": (255, 220, 60),
}
FLOOR_COLOR: Color = (120, 120, 120)
HEAD_RADIUS_M = 0.10  # head disc radius in metres (drawn above the head joint)
GENERATED_BAR_COLOR: Color = (235, 90, 60)  # bar along the top of frames the model made
_ARM_WORDS = ("collar", "shoulder", "elbow", "wrist", "hand")
_LEG_WORDS = ("hip", "knee", "ankle", "foot")


def limb_of(joint_name: str) -> str:
    """Which colour group a bone ending at `joint_name` belongs to (see LIMB_COLORS)."""
    side = "left" if joint_name.startswith("left_") else "right" if joint_name.startswith("right_") else ""
    if side and any(w in joint_name for w in _ARM_WORDS):
        return f"{side}_arm"
    if side and any(w in joint_name for w in _LEG_WORDS):
        return f"{side}_leg"
    if joint_name in ("head", "nose"):
        return "head"
    return "trunk"


def resample_frames(joints: np.ndarray, fps: float, out_fps: float) -> np.ndarray:
    """Joints at `out_fps` by linear interpolation in time: [T, J, 3] -> [F, J, 3].

    F = floor(T / fps * out_fps + 1e-6) (at least 1); frame i is taken at time i / out_fps.
    """
    if fps <= 0 or out_fps <= 0:
        raise ValueError(f"fps and out_fps must be positive, got fps={fps}, out_fps={out_fps}")
    num_in = joints.shape[0]
    num_out = max(1, int(np.floor(num_in / fps * out_fps + 1e-6)))
    pos = np.arange(num_out) * (fps / out_fps)  # fractional input frame of each output frame
    lo = np.clip(np.floor(pos + 1e-9).astype(np.int64), 0, num_in - 1)
    hi = np.clip(lo + 1, 0, num_in - 1)
    w = np.clip(pos - lo, 0.0, 1.0)[:, None, None]
    return ((1.0 - w) * joints[lo] + w * joints[hi]).astype(np.float32)


def _fit_view(
    joints: np.ndarray, size: int, fill: float, head_joint: int | None
) -> tuple[float, float, float]:
    """Scale s (pixels per metre), x centre (metres) and floor row for the whole clip."""
    top = joints[..., 1].max() + (2 * HEAD_RADIUS_M if head_joint is not None else 0.0)
    bottom = min(0.0, float(joints[..., 1].min()))
    x_lo, x_hi = float(joints[..., 0].min()), float(joints[..., 0].max())
    height = max(top - bottom, 1e-3)
    scale = fill * size / height
    width = max(x_hi - x_lo + 2 * HEAD_RADIUS_M, 1e-3)
    scale = min(scale, 0.95 * size / width)
    floor_row = size / 2 + scale * (top + bottom) / 2  # centre the vertical extent
    return scale, (x_lo + x_hi) / 2, floor_row


def _draw_capsule(img: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, color: np.ndarray) -> None:
    """Blend an anti-aliased capsule a-b (pixel coordinates) into img [H, W, 3] float32, in place."""
    size_y, size_x = img.shape[:2]
    pad = radius + 1.0
    x0, x1 = max(0, int(min(a[0], b[0]) - pad)), min(size_x, int(max(a[0], b[0]) + pad) + 1)
    y0, y1 = max(0, int(min(a[1], b[1]) - pad)), min(size_y, int(max(a[1], b[1]) + pad) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    px = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - a[0]  # [1, w]
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - a[1]  # [h, 1]
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = np.clip((px * dx + py * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)  # [h, w]
    dist = np.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2)
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0)[..., None]  # [h, w, 1]
    region = img[y0:y1, x0:x1]
    region += (color - region) * alpha


def _draw_disc(img: np.ndarray, centre: np.ndarray, radius: float, color: np.ndarray) -> None:
    _draw_capsule(img, centre, centre, radius, color)


def render_stick_figure(
    joints: np.ndarray,
    fps: float,
    size: int = 64,
    out_fps: float | None = None,
    skeleton: Skeleton = SMPL24,
    background: Color = (24, 24, 32),
    fill: float = 0.8,
    line_width: float | None = None,
    floor: bool = True,
    generated: np.ndarray | None = None,
) -> np.ndarray:
    """All frames of `iter_stick_figure` at once: [F, size, size, 3] uint8 (same arguments)."""
    return np.concatenate(list(iter_stick_figure(
        joints, fps, size, out_fps, skeleton, background, fill, line_width, floor, generated
    )))


def iter_stick_figure(
    joints: np.ndarray,
    fps: float,
    size: int = 64,
    out_fps: float | None = None,
    skeleton: Skeleton = SMPL24,
    background: Color = (24, 24, 32),
    fill: float = 0.8,
    line_width: float | None = None,
    floor: bool = True,
    generated: np.ndarray | None = None,
    chunk: int = 256,
) -> Iterator[np.ndarray]:
    """Render joints [T, J, 3] (y-up, metres) as stick-figure frames, yielded in chunks of
    [<= chunk, size, size, 3] uint8 (the view is fitted to the whole clip; memory holds one chunk).

    Args:
        fps: frame rate of `joints`; out_fps: frame rate of the video (default: the same).
        background: RGB of the background; fill: fraction of the image height the clip's
            vertical extent (floor to head top) occupies.
        line_width: bone thickness in pixels (default size / 32, at least 1.5).
        floor: draw the floor line y = 0 when it is inside the view.
        generated: bool [T]; frames marked True get a bar along the top edge, so a viewer sees
            where an in-between or continuation takes over from the given motion.
    """
    joints = np.asarray(joints, dtype=np.float32)
    skeleton.check_joints(joints, "render_stick_figure joints")
    if joints.ndim != 3 or joints.shape[0] == 0:
        raise ValueError(
            f"render_stick_figure joints: expected [T, {skeleton.num_joints}, 3] with T > 0, got {joints.shape}"
        )
    if size < 8:
        raise ValueError(f"render_stick_figure size must be at least 8 pixels, got {size}")
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"render_stick_figure fill must be in (0, 1], got {fill}")
    frames = resample_frames(joints, fps, out_fps or fps) if out_fps else joints
    marked = _marks_at(generated, len(joints), len(frames), fps, out_fps or fps)
    head = skeleton.index("head") if "head" in skeleton.joint_names else None
    scale, x_mid, floor_row = _fit_view(frames, size, fill, head)
    col = size / 2 + scale * (frames[..., 0] - x_mid)  # [F, J]
    row = floor_row - scale * frames[..., 1]  # [F, J]
    uv = np.stack([col, row], axis=-1).astype(np.float32)  # [F, J, 2]
    depth = frames[..., 2]  # [F, J], larger = nearer the camera

    bones = skeleton.bones
    colors = np.array([LIMB_COLORS[limb_of(skeleton.joint_names[j])] for _, j in bones], dtype=np.float32)
    head_color = np.asarray(LIMB_COLORS["head"], np.float32)
    radius = (line_width if line_width is not None else max(1.5, size / 32)) / 2
    background_img = np.broadcast_to(np.asarray(background, np.float32), (size, size, 3)).copy()
    if floor and 0 <= floor_row < size:
        rows = np.arange(size, dtype=np.float32) + 0.5
        line = (np.clip(1.0 - np.abs(rows - floor_row), 0.0, 1.0) * 0.6)[:, None, None]  # [H, 1, 1]
        background_img += (np.asarray(FLOOR_COLOR, np.float32) - background_img) * line
    # bones far-to-near by the mean depth of their two joints, per frame
    bone_depth = np.stack([(depth[:, p] + depth[:, j]) / 2 for p, j in bones], axis=1)  # [F, B]
    order = np.argsort(bone_depth, axis=1, kind="stable")  # [F, B]

    img = np.empty((size, size, 3), dtype=np.float32)
    for a in range(0, len(frames), chunk):  # the view is the whole clip's; frames go out `chunk` at a time
        out = np.empty((min(chunk, len(frames) - a), size, size, 3), dtype=np.uint8)
        for k in range(len(out)):
            f = a + k
            img[:] = background_img
            for b in order[f]:
                p, j = bones[b]
                _draw_capsule(img, uv[f, p], uv[f, j], radius, colors[b])
            if head is not None:
                centre = uv[f, head] - np.array([0.0, scale * HEAD_RADIUS_M], np.float32)
                _draw_disc(img, centre, scale * HEAD_RADIUS_M, head_color)
            out[k] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        yield mark_generated(out, marked[a : a + len(out)], copy=False)


def mark_generated(frames: np.ndarray, generated: np.ndarray, copy: bool = True) -> np.ndarray:
    """Frames [F, H, W, 3] uint8 with a bar along the top edge of every frame marked True in
    `generated` [F]: where an in-between, continuation or inpainted span takes over from the given
    frames. A copy unless `copy=False`."""
    frames = np.asarray(frames)
    g = np.asarray(generated, dtype=bool).reshape(-1)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"mark_generated: expected uint8 frames [F, H, W, 3], got {frames.dtype} {frames.shape}")
    if g.shape[0] != frames.shape[0]:
        raise ValueError(f"mark_generated: mask has {g.shape[0]} frames, the video {frames.shape[0]}")
    out = frames.copy() if copy else frames
    out[g, : max(2, frames.shape[1] // 24)] = GENERATED_BAR_COLOR
    return out


def _marks_at(generated: np.ndarray | None, n_in: int, n_out: int, fps: float, out_fps: float) -> np.ndarray:
    """The `generated` mask [n_in] at the output frames (nearest input frame in time)."""
    if generated is None:
        return np.zeros(n_out, dtype=bool)
    g = np.asarray(generated, dtype=bool).reshape(-1)
    if g.shape[0] != n_in:
        raise ValueError(f"render_stick_figure generated: expected a mask of {n_in} frames, got {g.shape[0]}")
    idx = np.clip(np.round(np.arange(n_out) / out_fps * fps).astype(int), 0, n_in - 1)
    return g[idx]
