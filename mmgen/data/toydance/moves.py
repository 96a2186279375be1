"""ToyDance dance moves as key poses, one per beat.

A pose is a dict of semantic parameters (radians) added to the style's base pose; parameters
ending in `_l` / `_r` act on the body's left / right side, and a mirrored move swaps them (and
negates the lateral ones, `MIRROR_NEGATE`). Between two beats the pose eases from one key to the
next with zero velocity at both ends, so every joint pauses or reverses ON the beat.

Semantic parameters (left-side meaning; the right side is the mirror image):
    turn         yaw of the whole body, a DELTA per beat (accumulated; not scaled by energy)
    sway, tilt   pelvis roll (to the left) / pitch (forward)
    lean, side, twist   spine pitch forward / bend to the left / yaw to the left
    nod, head_tilt, head_turn
    bounce       knee bend of both legs with hips and ankles compensating (feet stay flat)
    shrug_s      collar raise
    arm_raise_s  angle of the upper arm from hanging down (pi/2 = sideways horizontal, pi = up)
    arm_fwd_s    forward swing of the upper arm; arm_swing_s horizontal swing (forward when raised)
    elbow_s      elbow flexion
    leg_fwd_s, leg_out_s, leg_turn_s   hip flexion / abduction / outward rotation
    knee_s, ankle_s   knee flexion / ankle plantar flexion (pointing the toes)
"""

from __future__ import annotations

import math

SIDE_PARAMS = (
    "shrug",
    "arm_raise",
    "arm_fwd",
    "arm_swing",
    "elbow",
    "leg_fwd",
    "leg_out",
    "leg_turn",
    "knee",
    "ankle",
)
CENTRE_PARAMS = ("turn", "sway", "tilt", "lean", "side", "twist", "nod", "head_tilt", "head_turn", "bounce")
PARAMS: tuple[str, ...] = CENTRE_PARAMS + tuple(f"{p}_{s}" for p in SIDE_PARAMS for s in ("l", "r"))
MIRROR_NEGATE = ("turn", "sway", "side", "twist", "head_tilt", "head_turn")

Pose = dict[str, float]

BASE_POSE: Pose = {
    "arm_raise_l": 0.25,
    "arm_raise_r": 0.25,
    "elbow_l": 0.35,
    "elbow_r": 0.35,
    "lean": 0.04,
    "bounce": 0.06,
}
# ballet keeps the arms rounded and the legs turned out
BALLET_BASE: Pose = {
    "arm_raise_l": 0.35,
    "arm_raise_r": 0.35,
    "arm_fwd_l": 0.2,
    "arm_fwd_r": 0.2,
    "elbow_l": 0.5,
    "elbow_r": 0.5,
    "leg_turn_l": 0.35,
    "leg_turn_r": 0.35,
    "lean": -0.03,
}


def both(**kw: float) -> Pose:
    """The same value for the left and the right side: both(elbow=1) -> elbow_l, elbow_r."""
    return {f"{k}_{s}": v for k, v in kw.items() for s in ("l", "r")}


def _p(**kw: float) -> Pose:
    return dict(kw)


Q = math.pi / 2
MOVES: dict[str, list[Pose]] = {
    # ---- hip-hop
    "bounce_swing": [
        _p(bounce=0.32, nod=0.25, arm_fwd_l=0.6, arm_fwd_r=-0.35, elbow_l=0.9, elbow_r=0.5, twist=0.15),
        _p(bounce=0.04, nod=-0.05, arm_fwd_l=-0.35, arm_fwd_r=0.6, elbow_l=0.5, elbow_r=0.9, twist=-0.15),
    ],
    "rock": [
        _p(**both(shrug=0.3, arm_fwd=0.5, elbow=1.3), bounce=0.3, lean=0.35, nod=0.3),
        _p(**both(shrug=0.0, arm_fwd=0.15, elbow=0.8), bounce=0.04, lean=-0.08, nod=-0.1),
    ],
    "step_touch": [
        _p(
            leg_out_r=0.3,
            knee_r=0.25,
            sway=-0.1,
            side=-0.15,
            bounce=0.25,
            arm_raise_l=0.9,
            arm_raise_r=0.3,
            nod=0.15,
        ),
        _p(bounce=0.04, arm_raise_l=0.3, arm_raise_r=0.3, elbow_l=1.0, elbow_r=1.0),
        _p(
            leg_out_l=0.3,
            knee_l=0.25,
            sway=0.1,
            side=0.15,
            bounce=0.25,
            arm_raise_r=0.9,
            arm_raise_l=0.3,
            nod=0.15,
        ),
        _p(bounce=0.04, arm_raise_l=0.3, arm_raise_r=0.3, elbow_l=1.0, elbow_r=1.0),
    ],
    "arm_wave": [
        _p(arm_raise_l=1.7, elbow_l=0.2, bounce=0.28, side=0.12, nod=0.15),
        _p(arm_raise_l=0.7, elbow_l=1.3, arm_raise_r=0.7, elbow_r=1.3, bounce=0.04),
        _p(arm_raise_r=1.7, elbow_r=0.2, bounce=0.28, side=-0.12, nod=0.15),
        _p(arm_raise_l=0.7, elbow_l=1.3, arm_raise_r=0.7, elbow_r=1.3, bounce=0.04),
    ],
    "turn_bar": [  # a full turn over two bars, arms out
        _p(**both(arm_raise=1.2, elbow=0.4), turn=Q / 2, bounce=0.25),
        _p(**both(arm_raise=0.6, elbow=0.9), turn=Q / 2, bounce=0.05),
    ],
    # ---- house
    "jack": [
        _p(**both(arm_fwd=0.4, elbow=1.1), lean=0.4, bounce=0.3, nod=0.3),
        _p(**both(arm_fwd=0.1, elbow=0.7), lean=-0.1, bounce=0.03, nod=-0.1),
    ],
    "side_shuffle": [
        _p(**both(leg_out=0.18), bounce=0.3, twist=0.3, arm_swing_l=0.4, arm_raise_l=0.6, arm_raise_r=0.6),
        _p(bounce=0.05, twist=0.0, arm_raise_l=0.3, arm_raise_r=0.3),
        _p(**both(leg_out=0.18), bounce=0.3, twist=-0.3, arm_swing_r=0.4, arm_raise_l=0.6, arm_raise_r=0.6),
        _p(bounce=0.05, twist=0.0, arm_raise_l=0.3, arm_raise_r=0.3),
    ],
    "heel_toe": [
        _p(**both(leg_turn=0.5, arm_fwd=0.3, elbow=1.0), bounce=0.28, sway=0.08, head_turn=0.2),
        _p(**both(leg_turn=-0.3, arm_fwd=0.1, elbow=0.6), bounce=0.05, sway=-0.08, head_turn=-0.2),
    ],
    "arm_pump": [
        _p(**both(arm_raise=2.6, elbow=0.2), bounce=0.05, lean=-0.1, nod=-0.15),
        _p(**both(arm_raise=0.9, elbow=1.6), bounce=0.3, lean=0.2, nod=0.25),
    ],
    # ---- ballet (3 beats per bar): 6-beat cycles A B C D C B whose steps are all about equal
    "port_de_bras": [
        _p(**both(arm_raise=r, arm_fwd=f, elbow=0.5), bounce=bo, lean=le)
        for r, f, bo, le in (
            (0.35, 0.3, 0.2, 0.0),
            (1.0, 0.9, 0.05, -0.03),
            (1.7, 0.6, 0.2, -0.06),
            (2.4, 0.3, 0.05, -0.1),
            (1.7, 0.6, 0.2, -0.06),
            (1.0, 0.9, 0.05, -0.03),
        )
    ],
    "balance": [  # balancé from side to side with a pointed foot
        _p(
            arm_raise_l=1.4,
            arm_raise_r=0.6,
            leg_fwd_r=0.35,
            ankle_r=0.7,
            bounce=0.2,
            sway=0.06,
            side=0.2,
            head_tilt=0.2,
        ),
        _p(
            arm_raise_r=1.4,
            arm_raise_l=0.6,
            leg_fwd_l=0.35,
            ankle_l=0.7,
            bounce=0.0,
            sway=-0.06,
            side=-0.2,
            head_tilt=-0.2,
        ),
    ],
    "waltz_turn": [  # a full turn over two bars
        _p(**both(arm_raise=1.4, elbow=0.35), turn=math.pi / 3, bounce=0.2),
        _p(**both(arm_raise=1.0, arm_fwd=0.6, elbow=0.6), turn=math.pi / 3, bounce=0.02),
    ],
    "plie": [
        _p(**both(arm_raise=r, arm_fwd=0.4, elbow=0.45), bounce=bo, nod=n)
        for r, bo, n in (
            (0.5, 0.45, 0.1),
            (1.2, 0.3, 0.0),
            (1.9, 0.15, -0.1),
            (2.6, 0.0, -0.2),
            (1.9, 0.15, -0.1),
            (1.2, 0.3, 0.0),
        )
    ],
    # ---- breaking (toprock)
    "toprock_cross": [
        _p(
            leg_fwd_r=0.45,
            leg_out_r=-0.25,
            knee_r=0.5,
            **both(arm_raise=1.3, elbow=0.4),
            bounce=0.25,
            twist=0.3,
        ),
        _p(**both(arm_raise=0.5, arm_fwd=0.9, elbow=1.4), bounce=0.05, lean=0.2),
        _p(
            leg_fwd_l=0.45,
            leg_out_l=-0.25,
            knee_l=0.5,
            **both(arm_raise=1.3, elbow=0.4),
            bounce=0.25,
            twist=-0.3,
        ),
        _p(**both(arm_raise=0.5, arm_fwd=0.9, elbow=1.4), bounce=0.05, lean=0.2),
    ],
    "kick_out": [
        _p(leg_fwd_r=1.1, knee_r=0.15, ankle_r=0.4, lean=-0.2, **both(elbow=1.5, arm_fwd=0.6), bounce=0.15),
        _p(**both(elbow=0.9, arm_fwd=0.2), bounce=0.3, lean=0.25, nod=0.2),
    ],
    "twist_swing": [
        _p(twist=0.55, arm_fwd_l=0.9, arm_fwd_r=-0.5, elbow_l=1.0, bounce=0.3, **both(leg_turn=0.3)),
        _p(twist=-0.55, arm_fwd_l=-0.5, arm_fwd_r=0.9, elbow_r=1.0, bounce=0.05, **both(leg_turn=-0.2)),
    ],
    "indian_step": [
        _p(leg_fwd_l=0.7, knee_l=1.2, **both(arm_raise=0.9, elbow=1.2), bounce=0.15, lean=-0.1),
        _p(bounce=0.3, lean=0.2, **both(arm_raise=0.4, elbow=0.6), nod=0.2),
        _p(leg_fwd_r=0.7, knee_r=1.2, **both(arm_raise=0.9, elbow=1.2), bounce=0.15, lean=-0.1),
        _p(bounce=0.3, lean=0.2, **both(arm_raise=0.4, elbow=0.6), nod=0.2),
    ],
    # ---- pop
    "point": [
        _p(arm_raise_r=2.4, arm_fwd_r=0.5, elbow_r=0.0, head_turn=-0.35, sway=0.1, bounce=0.2),
        _p(arm_raise_r=0.5, elbow_r=1.2, bounce=0.04, sway=-0.05),
        _p(arm_raise_l=2.4, arm_fwd_l=0.5, elbow_l=0.0, head_turn=0.35, sway=-0.1, bounce=0.2),
        _p(arm_raise_l=0.5, elbow_l=1.2, bounce=0.04, sway=0.05),
    ],
    "hip_sway": [
        _p(sway=0.1, side=-0.12, arm_raise_l=0.9, elbow_l=1.0, bounce=0.25, head_tilt=0.15),
        _p(sway=-0.1, side=0.12, arm_raise_r=0.9, elbow_r=1.0, bounce=0.08, head_tilt=-0.15),
    ],
    "clap": [
        _p(**both(arm_fwd=1.2, arm_swing=0.5, elbow=0.6), bounce=0.25, nod=0.2),
        _p(**both(arm_raise=1.3, elbow=0.3), bounce=0.04, lean=-0.1),
    ],
    # ---- locking
    "lock_point": [
        _p(
            arm_raise_l=1.5,
            arm_fwd_l=1.0,
            elbow_l=0.0,
            arm_raise_r=0.6,
            elbow_r=1.9,
            bounce=0.3,
            head_turn=0.3,
        ),
        _p(**both(arm_raise=0.8, elbow=1.9), bounce=0.05, lean=0.15),
        _p(
            arm_raise_r=1.5,
            arm_fwd_r=1.0,
            elbow_r=0.0,
            arm_raise_l=0.6,
            elbow_l=1.9,
            bounce=0.3,
            head_turn=-0.3,
        ),
        _p(**both(arm_raise=0.8, elbow=1.9), bounce=0.05, lean=0.15),
    ],
    "wrist_roll": [
        _p(**both(arm_fwd=0.9, elbow=1.7), arm_swing_l=0.3, bounce=0.28, nod=0.2),
        _p(**both(arm_fwd=0.5, elbow=1.1), arm_swing_r=0.3, bounce=0.04, lean=0.1),
    ],
    "knee_drop": [
        _p(**both(arm_raise=2.3, elbow=0.5), bounce=0.55, lean=0.3, nod=0.3),
        _p(**both(arm_raise=0.6, elbow=1.2), bounce=0.04, lean=-0.05),
    ],
    "kick_step": [
        _p(leg_fwd_l=0.8, knee_l=0.3, ankle_l=0.3, **both(elbow=1.6, arm_fwd=0.4), bounce=0.15, lean=-0.15),
        _p(bounce=0.3, **both(elbow=1.0), nod=0.2),
        _p(leg_fwd_r=0.8, knee_r=0.3, ankle_r=0.3, **both(elbow=1.6, arm_fwd=0.4), bounce=0.15, lean=-0.15),
        _p(bounce=0.3, **both(elbow=1.0), nod=0.2),
    ],
}


def mirror(pose: Pose) -> Pose:
    """The same pose with left and right exchanged."""
    out: Pose = {}
    for k, v in pose.items():
        if k.endswith("_l"):
            out[k[:-2] + "_r"] = v
        elif k.endswith("_r"):
            out[k[:-2] + "_l"] = v
        else:
            out[k] = -v if k in MIRROR_NEGATE else v
    return out
