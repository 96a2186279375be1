"""Kinematic motion features: joints <-> a per-frame feature vector, with an exact inverse.

One frame of features, for a skeleton of J joints in D dimensions (D = 3, or 2 for image poses),
with `up` the vertical axis (y; index 1) and `h` the horizontal axes (x, z in 3-D; x in 2-D):

    [ rel (J_r * D) | root velocity (D - 1) | root height (1) | heading velocity (1, optional) | contacts (F) ]

    rel              joint positions minus the root, for every joint except a real root joint
                     (SMPL's pelvis); COCO-17 has no root joint, so its root is the hip midpoint and
                     all 17 joints are stored
    root velocity    horizontal root displacement from the previous frame (0 at frame 0)
    root height      absolute root position on the up axis
    heading velocity (facing-invariant mode, 3-D only) change of the body's heading from the
                     previous frame, radians (0 at frame 0)
    contacts         EDGE's rule: foot joint f touches the floor at frame t when
                     |p_f[t+1] - p_f[t]| < contact_threshold (the last frame counts as contact)

Facing invariance (HumanML3D-style, optional): the heading theta_t is the angle about the up
axis of `left x up`, where `left` sums the left-minus-right vectors of the hips and shoulders;
`rel` and the root velocity are rotated by -theta_t, so a clip and its rotated copy have the same
features. Then a dance turning left and the same dance facing another way share one code.

The inverse integrates the root velocity (and heading velocity), so it is exact up to the state
the features do not hold: the horizontal root position (and heading) at frame 0. `initial_state`
returns that state; without it, clips are rebuilt starting at the horizontal origin facing +z.
Contacts are derived data and are not used by the inverse.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mmgen.core.skeleton import COCO17, SMPL24, SMPL24_FEET, Skeleton, get_skeleton

UP_AXIS = 1
MIN_FRAMES = 2  # a velocity needs two frames


@dataclass(frozen=True)
class KinematicLayout:
    """Which joints of a skeleton play which role in the features."""

    skeleton: Skeleton
    root: tuple[int, ...]  # one joint = a real root; several = their mean is a virtual root
    feet: tuple[int, ...]
    left_right: tuple[tuple[int, int], ...]  # (left, right) joint pairs that define the heading

    @property
    def stored_joints(self) -> tuple[int, ...]:
        drop = self.root[0] if len(self.root) == 1 else -1
        return tuple(j for j in range(self.skeleton.num_joints) if j != drop)


LAYOUTS: dict[str, KinematicLayout] = {
    "smpl24": KinematicLayout(SMPL24, root=(0,), feet=SMPL24_FEET, left_right=((1, 2), (16, 17))),
    "coco17": KinematicLayout(COCO17, root=(11, 12), feet=(15, 16), left_right=((11, 12), (5, 6))),
}


def get_layout(skeleton: str) -> KinematicLayout:
    get_skeleton(skeleton)  # raises the standard "unknown skeleton" error
    return LAYOUTS[skeleton]


def _rotate_y(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotate 3-D vectors [..., 3] about +y by theta [...] (broadcast): +z goes to (sin, 0, cos)."""
    c, s = torch.cos(theta), torch.sin(theta)
    x, y, z = v.unbind(-1)
    return torch.stack((c * x + s * z, y, -s * x + c * z), dim=-1)


class KinematicFeatures(nn.Module):
    """The codec joints <-> kinematic features, with per-dimension normalization stats as buffers.

    Args:
        skeleton: "smpl24" or "coco17".
        dims: 3 for 3-D joints (y-up), 2 for 2-D keypoints (axis 1 is treated as "up").
        facing_invariant: store positions in the body's heading frame (3-D only; see module doc).
        contact_threshold: foot displacement per frame below which a foot is in contact
            (EDGE: 0.01 m at 30 fps; in pixels for 2-D poses).
        min_std: floor of the fitted per-dimension std (constant dims must not blow up).
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    position_scale: torch.Tensor
    velocity_scale: torch.Tensor

    def __init__(
        self,
        skeleton: str = "smpl24",
        dims: int = 3,
        facing_invariant: bool = False,
        contact_threshold: float = 0.01,
        min_std: float = 1e-3,
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        if facing_invariant and dims != 3:
            raise ValueError("facing_invariant needs 3-D joints (dims=3)")
        if not contact_threshold > 0:
            raise ValueError(f"contact_threshold must be positive, got {contact_threshold}")
        self.layout = get_layout(skeleton)
        self.dims = dims
        self.facing_invariant = facing_invariant
        self.contact_threshold = float(contact_threshold)
        self.min_std = float(min_std)
        self.register_buffer("feature_mean", torch.zeros(self.feature_dim))
        self.register_buffer("feature_std", torch.ones(self.feature_dim))
        # typical size of root-relative positions and of per-frame joint displacements (RMS over
        # the training data): they make position / velocity losses unit-free (metres or pixels)
        self.register_buffer("position_scale", torch.ones(()))
        self.register_buffer("velocity_scale", torch.ones(()))

    # ------------------------------------------------------------------ layout of the vector
    @property
    def num_joints(self) -> int:
        return self.layout.skeleton.num_joints

    @property
    def slices(self) -> dict[str, slice]:
        """Where each part lives in the feature vector."""
        d, n_rel = self.dims, len(self.layout.stored_joints)
        sizes = {"rel": n_rel * d, "root_velocity": d - 1, "root_height": 1}
        if self.facing_invariant:
            sizes["heading_velocity"] = 1
        sizes["contacts"] = len(self.layout.feet)
        out, start = {}, 0
        for name, size in sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def feature_dim(self) -> int:
        return self.slices["contacts"].stop

    @property
    def state_dim(self) -> int:
        """Size of the frame-0 state the features drop: horizontal root position (+ heading)."""
        return self.dims - 1 + int(self.facing_invariant)

    # ------------------------------------------------------------------ checks
    def check_joints(
        self, joints: torch.Tensor | np.ndarray, what: str = "joints", check_finite: bool = True
    ) -> torch.Tensor:
        """Raise ValueError unless `joints` is [B, T, J, D] (or [T, J, D]) finite with T >= 2.

        The finiteness test reads a value back from the device; training loops that validated
        their data once pass `check_finite=False`.
        """
        if not isinstance(joints, torch.Tensor):
            joints = torch.as_tensor(np.asarray(joints))
        if joints.ndim == 3:
            joints = joints.unsqueeze(0)
        name = self.layout.skeleton.name
        if joints.ndim != 4 or joints.shape[-2:] != (self.num_joints, self.dims):
            raise ValueError(
                f"{what}: expected [B, T, {self.num_joints}, {self.dims}] for the {name} skeleton "
                f"({self.dims}-D), got {tuple(joints.shape)}"
            )
        if joints.shape[1] < MIN_FRAMES:
            raise ValueError(f"{what}: clip too short ({joints.shape[1]} frames); need at least {MIN_FRAMES}")
        if not joints.is_floating_point():
            joints = joints.float()
        if check_finite and not bool(torch.isfinite(joints).all()):
            raise ValueError(f"{what}: contains NaN or infinite values")
        return joints

    def check_features(self, features: torch.Tensor, what: str = "features") -> None:
        if features.ndim != 3 or features.shape[-1] != self.feature_dim:
            raise ValueError(f"{what}: expected [B, T, {self.feature_dim}], got {tuple(features.shape)}")

    # ------------------------------------------------------------------ geometry
    def root(self, joints: torch.Tensor) -> torch.Tensor:
        """[B, T, J, D] -> [B, T, D]"""
        return joints[:, :, list(self.layout.root)].mean(2)

    def heading(self, joints: torch.Tensor) -> torch.Tensor:
        """Heading angle about +y of each frame: [B, T] (0 = facing +z)."""
        left = sum(joints[:, :, a] - joints[:, :, b] for a, b in self.layout.left_right)  # [B, T, 3]
        # forward = left x up = (-left_z, 0, left_x); theta = atan2(forward_x, forward_z)
        return torch.atan2(-left[..., 2], left[..., 0])

    def horizontal(self, v: torch.Tensor) -> torch.Tensor:
        """[..., D] -> the horizontal components [..., D - 1]."""
        keep = [a for a in range(self.dims) if a != UP_AXIS]
        return v[..., keep]

    def contacts(self, joints: torch.Tensor) -> torch.Tensor:
        """EDGE's foot contacts: [B, T, J, D] -> [B, T, F] in {0, 1}."""
        feet = joints[:, :, list(self.layout.feet)]  # [B, T, F, D]
        disp = torch.zeros_like(feet)
        disp[:, :-1] = feet[:, 1:] - feet[:, :-1]
        return (disp.norm(dim=-1) < self.contact_threshold).to(joints.dtype)

    def initial_state(self, joints: torch.Tensor | np.ndarray, check_finite: bool = True) -> torch.Tensor:
        """The frame-0 state the features drop: [B, state_dim] (root x[, z][, heading])."""
        joints = self.check_joints(joints, check_finite=check_finite)
        state = self.horizontal(self.root(joints)[:, 0])  # [B, D - 1]
        if self.facing_invariant:
            state = torch.cat((state, self.heading(joints[:, :1])), dim=-1)
        return state

    # ------------------------------------------------------------------ joints <-> features
    def features(self, joints: torch.Tensor | np.ndarray, check_finite: bool = True) -> torch.Tensor:
        """Raw (un-normalized) features: joints [B, T, J, D] -> [B, T, feature_dim]."""
        joints = self.check_joints(joints, check_finite=check_finite)
        b, t = joints.shape[:2]
        root = self.root(joints)  # [B, T, D]
        rel = joints[:, :, list(self.layout.stored_joints)] - root.unsqueeze(2)  # [B, T, J_r, D]
        step = torch.zeros_like(root)
        step[:, 1:] = root[:, 1:] - root[:, :-1]
        if self.facing_invariant:
            theta = self.heading(joints)  # [B, T]
            rel = _rotate_y(rel, -theta.unsqueeze(2))
            step = _rotate_y(step, -theta)
            dtheta = torch.zeros_like(theta)
            diff = theta[:, 1:] - theta[:, :-1]
            dtheta[:, 1:] = torch.atan2(torch.sin(diff), torch.cos(diff))  # wrapped to (-pi, pi]
        parts = [rel.reshape(b, t, -1), self.horizontal(step), root[..., UP_AXIS : UP_AXIS + 1]]
        if self.facing_invariant:
            parts.append(dtheta.unsqueeze(-1))
        parts.append(self.contacts(joints))
        return torch.cat(parts, dim=-1)

    def joints(self, features: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Inverse of `features` (differentiable): [B, T, feature_dim] -> joints [B, T, J, D].

        `state` [B, state_dim] is the frame-0 horizontal root position (and heading) from
        `initial_state`; zeros when omitted. Integration runs in float64 so that long clips are
        rebuilt to float32 precision.
        """
        self.check_features(features)
        b, t, _ = features.shape
        s, d = self.slices, self.dims
        f64 = features.double()
        rel = f64[..., s["rel"]].reshape(b, t, -1, d)  # [B, T, J_r, D]
        step_h = f64[..., s["root_velocity"]]  # [B, T, D - 1]
        height = f64[..., s["root_height"]]  # [B, T, 1]
        if state is None:
            state = features.new_zeros(b, self.state_dim)
        if state.shape != (b, self.state_dim):
            raise ValueError(f"state: expected [{b}, {self.state_dim}], got {tuple(state.shape)}")
        state = state.double()
        step = self._assemble(step_h, torch.zeros_like(height))  # [B, T, D]
        if self.facing_invariant:
            theta = state[:, -1:] + torch.cumsum(f64[..., s["heading_velocity"]].squeeze(-1), dim=1)  # [B, T]
            rel = _rotate_y(rel, theta.unsqueeze(2))
            step = _rotate_y(step, theta)
        origin = self._assemble(state[:, : d - 1], torch.zeros_like(state[:, :1])).unsqueeze(1)  # [B, 1, D]
        root = origin + torch.cumsum(step, dim=1)
        root = self._assemble(self.horizontal(root), height)  # [B, T, D]
        stored = rel + root.unsqueeze(2)  # [B, T, J_r, D]
        if len(self.layout.root) == 1:
            r = self.layout.root[0]
            out = torch.cat((stored[:, :, :r], root.unsqueeze(2), stored[:, :, r:]), dim=2)  # [B, T, J, D]
        else:
            out = stored
        return out.to(features.dtype)

    def _assemble(self, horizontal: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """Horizontal components [..., D - 1] and the up component [..., 1] -> [..., D]."""
        return torch.cat((horizontal[..., :UP_AXIS], up, horizontal[..., UP_AXIS:]), dim=-1)

    # ------------------------------------------------------------------ normalization
    @torch.no_grad()
    def fit(self, clips: Iterable[torch.Tensor | np.ndarray]) -> KinematicFeatures:
        """Fit per-dimension mean/std of the features over every frame of `clips` (float64),
        and the position / velocity scales (RMS of the root-relative std and of joint displacements)."""
        total = sq = None
        count, disp_sq, disp_count = 0, 0.0, 0
        for clip in clips:
            joints = self.check_joints(clip).double()
            f = self.features(joints).reshape(-1, self.feature_dim)
            total = f.sum(0) if total is None else total + f.sum(0)
            sq = f.pow(2).sum(0) if sq is None else sq + f.pow(2).sum(0)
            count += f.shape[0]
            disp = joints[:, 1:] - joints[:, :-1]  # [B, T - 1, J, D]
            disp_sq, disp_count = disp_sq + float(disp.pow(2).sum()), disp_count + disp.numel()
        if total is None or sq is None or count < 2:
            raise ValueError("KinematicFeatures.fit needs at least two frames of training data")
        mean = total / count
        var = (sq / count - mean.pow(2)).clamp_min(0.0) * count / (count - 1)
        self.feature_mean.copy_(mean.to(self.feature_mean))
        self.feature_std.copy_(var.sqrt().clamp_min(self.min_std).to(self.feature_std))
        self.position_scale.fill_(max(float(var[self.slices["rel"]].mean().sqrt()), self.min_std))
        self.velocity_scale.fill_(max((disp_sq / max(disp_count, 1)) ** 0.5, self.min_std))
        return self

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean.to(features.dtype)) / self.feature_std.to(features.dtype)

    def denormalize(self, features: torch.Tensor) -> torch.Tensor:
        return features * self.feature_std.to(features.dtype) + self.feature_mean.to(features.dtype)

    def encode(self, joints: torch.Tensor | np.ndarray, check_finite: bool = True) -> torch.Tensor:
        """joints -> normalized features [B, T, feature_dim] (what the motion VAE consumes)."""
        joints_t = self.check_joints(joints, check_finite=check_finite).to(self.feature_mean.device)
        return self.normalize(self.features(joints_t, check_finite=False))

    def decode(self, features: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """normalized features -> joints [B, T, J, D]."""
        return self.joints(self.denormalize(features), state)
