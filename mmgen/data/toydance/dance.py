"""ToyDance dance: beat-keyed poses -> joint rotations -> forward kinematics on SMPL-24.

    key poses (one per beat) ──ease──► semantic params per frame [T, P]
        ──► local Euler angles per joint [T, 24, 3] ──► rotation matrices ──► FK on the clip's
            scaled rest skeleton (constant bone lengths) ──► ground the lowest foot joint at y = 0
            ──► plant the stance ankle (root translation follows the feet, no foot sliding)

The ease between two keys has zero velocity at both ends (velocity ∝ sin²), so every joint speed
is at a minimum exactly on the beats: Bailando's motion beats fall on the music beats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmgen.core.skeleton import SMPL24, SMPL24_REST
from mmgen.data.toydance.grid import BeatGrid
from mmgen.data.toydance.moves import BALLET_BASE, BASE_POSE, MOVES, PARAMS, Pose, mirror
from mmgen.data.toydance.styles import Style

_IDX = {p: i for i, p in enumerate(PARAMS)}
_J = {n: i for i, n in enumerate(SMPL24.joint_names)}
FOOT_JOINTS = (7, 8, 10, 11)  # left/right ankle, left/right foot
_ARM_BONES = (
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)
_LEG_BONES = ("left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot", "right_foot")
_TORSO_BONES = ("spine1", "spine2", "spine3", "neck", "head", "left_collar", "right_collar")


@dataclass(frozen=True)
class Body:
    """Per-clip body proportions (multipliers of the SMPL template's bone vectors)."""

    height: float = 1.0
    legs: float = 1.0
    arms: float = 1.0
    torso: float = 1.0
    shoulders: float = 1.0

    @staticmethod
    def random(rng: np.random.Generator) -> Body:
        u = rng.uniform
        return Body(u(0.88, 1.1), u(0.92, 1.08), u(0.92, 1.08), u(0.92, 1.08), u(0.9, 1.1))

    def offsets(self) -> np.ndarray:
        """Bone vectors [24, 3] of this body in T-pose (offsets[j] = rest[j] - rest[parent])."""
        rest = SMPL24_REST.astype(np.float64)
        off = np.zeros_like(rest)
        for j, p in enumerate(SMPL24.parents):
            if p >= 0:
                off[j] = rest[j] - rest[p]
        for names, k in ((_ARM_BONES, self.arms), (_LEG_BONES, self.legs), (_TORSO_BONES, self.torso)):
            for n in names:
                off[_J[n]] *= k
        for n in ("left_collar", "right_collar", "left_hip", "right_hip"):
            off[_J[n], 0] *= self.shoulders
        return off * self.height


def ease(u: np.ndarray) -> np.ndarray:
    """0 -> 1 on [0, 1] with velocity 2 sin²(pi u): zero at both ends, fastest mid-beat."""
    return u - np.sin(2 * np.pi * u) / (2 * np.pi)


@dataclass(frozen=True)
class Choreography:
    """Key poses of the beats grid.first_beat .. grid.last_beat, before amplitude scaling.

    keys(amps)[i] = base + amps[phrase[i]] * delta[i], with the "turn" column replaced by the
    accumulated body yaw (turns are never scaled: a full turn stays a full turn).
    """

    base: np.ndarray  # [P]
    delta: np.ndarray  # [K, P] move pose minus base pose
    turn: np.ndarray  # [K] accumulated yaw
    phrase: np.ndarray  # [K] phrase index of each key, from 0

    @property
    def num_phrases(self) -> int:
        return int(self.phrase.max()) + 1

    def keys(self, amps: np.ndarray) -> np.ndarray:
        keys = self.base + np.asarray(amps)[self.phrase][:, None] * self.delta
        keys[:, _IDX["turn"]] = self.turn
        return keys


def choreograph(rng: np.random.Generator, style: Style, grid: BeatGrid) -> Choreography:
    """Pick a move (random choice, random mirroring) for every phrase of two bars."""
    base_pose = BALLET_BASE if style.name == "ballet" else BASE_POSE
    base = np.array([base_pose.get(p, 0.0) for p in PARAMS])
    beats = grid.beat_indices()
    bars = grid.bar(beats)
    phrase = (bars - bars.min()) // 2
    delta = np.zeros((len(beats), len(PARAMS)))
    turn = np.zeros(len(beats))
    moves: dict[int, list[Pose]] = {}
    for i, k in enumerate(beats):
        if phrase[i] not in moves:
            poses = MOVES[style.moves[int(rng.integers(len(style.moves)))]]
            moves[phrase[i]] = [mirror(p) for p in poses] if rng.random() < 0.5 else poses
        poses = moves[phrase[i]]
        beat_in_phrase = (bars[i] % 2) * grid.meter + int(grid.position(k))
        for p, v in poses[beat_in_phrase % len(poses)].items():
            if p == "turn":
                turn[i] = v
            else:
                delta[i, _IDX[p]] = v - base_pose.get(p, 0.0)
    return Choreography(base=base, delta=delta, turn=np.cumsum(turn), phrase=phrase.astype(np.int64))


def interpolate(keys: np.ndarray, grid: BeatGrid, times: np.ndarray) -> np.ndarray:
    """Semantic params at `times` [T] from beat keys [K, P] -> [T, P]."""
    pos = (times - grid.phase) / grid.period - grid.first_beat  # fractional key index
    k = np.clip(np.floor(pos).astype(np.int64), 0, len(keys) - 2)
    u = np.clip(pos - k, 0.0, 1.0)[:, None]
    return keys[k] + (keys[k + 1] - keys[k]) * ease(u)


def _euler_to_matrix(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """R = Ry(yaw) Rx(pitch) Rz(roll) for angle arrays [...] -> [..., 3, 3]."""
    cx, sx, cy, sy, cz, sz = (
        np.cos(pitch),
        np.sin(pitch),
        np.cos(yaw),
        np.sin(yaw),
        np.cos(roll),
        np.sin(roll),
    )
    one, zero = np.ones_like(pitch), np.zeros_like(pitch)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*pitch.shape, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*pitch.shape, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*pitch.shape, 3, 3)
    return ry @ rx @ rz


def local_angles(params: np.ndarray, facing: float) -> np.ndarray:
    """Semantic params [T, P] -> local (pitch, yaw, roll) of every SMPL joint [T, 24, 3].

    Right-side joints use the mirror image of the left-side formula (yaw and roll negated).
    """
    g = {p: params[:, i] for p, i in _IDX.items()}
    ang = np.zeros((params.shape[0], 24, 3))

    def put(
        joint: str,
        pitch: np.ndarray | float = 0.0,
        yaw: np.ndarray | float = 0.0,
        roll: np.ndarray | float = 0.0,
    ) -> None:
        ang[:, _J[joint]] = np.stack([np.broadcast_to(a, ang.shape[:1]) for a in (pitch, yaw, roll)], -1)

    b = g["bounce"]
    put("pelvis", pitch=g["tilt"], yaw=facing + g["turn"], roll=g["sway"])
    for spine in ("spine1", "spine2", "spine3"):
        put(spine, pitch=g["lean"] / 3, yaw=g["twist"] / 3, roll=-g["side"] / 3)
    put("neck", pitch=g["nod"] / 2)
    put("head", pitch=g["nod"] / 2, yaw=g["head_turn"], roll=-g["head_tilt"])
    for s, side, m in (("l", "left", 1.0), ("r", "right", -1.0)):
        put(f"{side}_collar", roll=m * g[f"shrug_{s}"])
        put(
            f"{side}_shoulder",
            pitch=-g[f"arm_fwd_{s}"],
            yaw=-m * g[f"arm_swing_{s}"],
            roll=m * (g[f"arm_raise_{s}"] - np.pi / 2),
        )
        put(f"{side}_elbow", yaw=-m * g[f"elbow_{s}"])
        put(
            f"{side}_hip",
            pitch=-g[f"leg_fwd_{s}"] - b,
            yaw=m * g[f"leg_turn_{s}"],
            roll=m * g[f"leg_out_{s}"],
        )
        put(f"{side}_knee", pitch=g[f"knee_{s}"] + 2 * b)
        put(f"{side}_ankle", pitch=-b + g[f"ankle_{s}"] * 0.8)
    return ang


def forward_kinematics(rotations: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Joint positions [T, 24, 3] relative to the root from local rotations [T, 24, 3, 3]."""
    num = rotations.shape[0]
    glob = np.zeros_like(rotations)
    pos = np.zeros((num, 24, 3))
    for j, p in enumerate(SMPL24.parents):  # parents precede children in SMPL order
        if p < 0:
            glob[:, j] = rotations[:, j]
            continue
        glob[:, j] = glob[:, p] @ rotations[:, j]
        pos[:, j] = pos[:, p] + glob[:, p] @ offsets[j]
    return pos


def plant_feet(pos: np.ndarray, frame_beat: np.ndarray) -> np.ndarray:
    """Ground the lowest foot joint at y = 0 and move the root so the stance ankle stays put.

    pos [T, 24, 3] relative to the root; frame_beat [T] = index of the beat interval of each frame.
    The stance foot of an interval is the one lower on average; it only changes on a beat.
    """
    out = pos.copy()
    out[..., 1] -= pos[:, FOOT_JOINTS, 1].min(axis=1, keepdims=True)
    heights = np.stack([out[:, [7, 10], 1].min(1), out[:, [8, 11], 1].min(1)], -1)  # [T, 2] left, right
    root = np.zeros((pos.shape[0], 2))
    prev: tuple[np.ndarray, int] | None = None  # (world xz of the previous stance ankle, its joint)
    for interval in np.unique(frame_beat):
        idx = np.nonzero(frame_beat == interval)[0]
        ankle = (7, 8)[int(heights[idx].mean(0).argmin())]
        first = idx[0]
        root_first = np.zeros(2) if prev is None else prev[0] - out[first, prev[1], [0, 2]]
        anchor = root_first + out[first, ankle, [0, 2]]
        root[idx] = anchor - out[idx, ankle][:, [0, 2]]
        prev = (anchor, ankle)
    out[..., 0] += root[:, None, 0]
    out[..., 2] += root[:, None, 1]
    return out


def pose_joints(
    keys: np.ndarray,
    grid: BeatGrid,
    times: np.ndarray,
    body: Body,
    facing: float,
    roll: np.ndarray | None = None,
) -> np.ndarray:
    """Joints [T, 24, 3] at `times` from beat keys: ease, angles, FK, grounding, planted feet.

    roll [K]: radius (radians) of a torso circle (lean, side) made during each beat interval; it
    starts and ends at the key pose with zero velocity, so it adds motion without moving the beats.
    """
    params = interpolate(keys, grid, times)
    if roll is not None:
        pos = (times - grid.phase) / grid.period - grid.first_beat
        k = np.clip(np.floor(pos).astype(np.int64), 0, len(keys) - 2)
        angle = 2 * np.pi * ease(np.clip(pos - k, 0.0, 1.0))
        params[:, _IDX["lean"]] += roll[k] * (1 - np.cos(angle))
        params[:, _IDX["side"]] += roll[k] * np.sin(angle)
    ang = local_angles(params, facing)
    rot = _euler_to_matrix(ang[..., 0], ang[..., 1], ang[..., 2])
    pos = forward_kinematics(rot, body.offsets())
    frame_beat = np.floor((times - grid.phase) / grid.period + 1e-9).astype(np.int64)
    return plant_feet(pos, frame_beat)


# mean joint path length per beat (metres) of a dance with energy 1
BEAT_DISPLACEMENT = 0.14
MAX_ROLL = 0.15  # radians


def synthesize_dance(
    rng: np.random.Generator,
    style: Style,
    grid: BeatGrid,
    fps: float,
    energy: float,
    body: Body,
    facing: float,
) -> np.ndarray:
    """Joints [round(seconds * fps), 24, 3] float32 (y-up, metres), speed minima on grid beats.

    The motion on both sides of every beat is made (nearly) equal, so that even a heavily
    smoothed speed curve (Bailando's σ = 5 frames, ~1/3 of a beat at 30 fps) keeps its minima on
    the beats rather than sliding towards the calmer neighbour:
    1. each phrase's amplitude is scaled so its mean joint path per beat is energy * BEAT_DISPLACEMENT;
    2. a small torso circle per beat interval tops every interval up to the clip's largest one.
    """
    chor = choreograph(rng, style, grid)
    jitter = rng.uniform(0.9, 1.1, chor.num_phrases)
    start = np.ceil(grid.time(grid.first_beat) * fps)
    times = np.arange(start, np.floor(grid.time(grid.last_beat) * fps) + 1) / fps  # all keyed frames
    interval = np.floor((times - grid.phase) / grid.period + 1e-9).astype(np.int64) - grid.first_beat
    num_keys = len(chor.phrase)

    def beat_paths(keys: np.ndarray, roll: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        joints = pose_joints(keys, grid, times, body, facing, roll)
        speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(-1)  # [T-1] mean joint speed
        return joints, np.bincount(interval[:-1], weights=speed, minlength=num_keys)  # [K] path per interval

    target = energy * BEAT_DISPLACEMENT * jitter
    amps = np.ones(chor.num_phrases)
    for _ in range(3):
        _, path = beat_paths(chor.keys(amps))
        per_phrase = np.bincount(chor.phrase, weights=path) / np.maximum(np.bincount(chor.phrase), 1)
        amps = np.clip(amps * target / np.maximum(per_phrase, 1e-6), 0.3, 2.0)
    keys = chor.keys(amps)

    inside = np.unique(interval[(times >= 0) & (times < grid.seconds)])
    _, path = beat_paths(keys)
    goal = path[inside].max()
    probe = 0.05
    _, probed = beat_paths(keys, np.full(num_keys, probe))
    slope = np.maximum((probed - path) / probe, 0.3)  # metres of path per radian of roll
    roll = np.clip((goal - path) / slope, 0.0, MAX_ROLL)
    for _ in range(2):
        _, path = beat_paths(keys, roll)
        roll = np.clip(roll + (goal - path) / slope, 0.0, MAX_ROLL)
    joints, _ = beat_paths(keys, roll)
    first = int(-start)  # index of t = 0
    return joints[first : first + int(round(grid.seconds * fps))].astype(np.float32)
