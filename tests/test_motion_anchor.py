"""Generated motion spans are shifted so their root meets the given frames around them, and eased into them."""

import pytest
import torch

from mmgen.modalities.motion_anchor import anchor_to_given, ease_into_given


def root(joints: torch.Tensor) -> torch.Tensor:
    return joints[:, :, 0]


def drifted(reference: torch.Tensor, start: list[float], per_frame: list[float]) -> torch.Tensor:
    """`reference` translated by an offset that grows linearly with the frame index."""
    t = torch.arange(reference.shape[1], dtype=reference.dtype)[None, :, None, None]
    return reference + torch.tensor(start) + torch.tensor(per_frame) * t


@pytest.fixture
def reference() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, 40, 5, 3, dtype=torch.float64)


def test_a_linear_drift_between_two_given_ends_is_removed(reference):
    decoded = drifted(reference, [0.3, 0.0, -0.2], [0.01, 0.0, 0.02])
    given = torch.zeros(40, dtype=torch.bool)
    given[:10] = given[30:] = True
    out = anchor_to_given(decoded, reference, given, root)
    torch.testing.assert_close(out[:, 10:30], reference[:, 10:30])  # the in-between meets both ends
    torch.testing.assert_close(out[:, given], decoded[:, given])  # given frames are left to the paste


def test_only_the_horizontal_root_moves(reference):
    decoded = drifted(reference, [0.3, 0.5, 0.0], [0.0, 0.01, 0.0])  # vertical offset and drift
    given = torch.zeros(40, dtype=torch.bool)
    given[:10] = True
    out = anchor_to_given(decoded, reference, given, root)
    shift = out - decoded
    assert torch.all(shift[..., 1] == 0)  # root height is absolute in the features: never shifted
    torch.testing.assert_close(out[:, 10:, :, 0], reference[:, 10:, :, 0])  # constant x offset removed
    # the pose is translated rigidly: every joint of a frame moves by the same vector
    torch.testing.assert_close(shift[:, :, 1:], shift[:, :, :1].expand_as(shift[:, :, 1:]))


def test_a_continuation_keeps_the_offset_of_its_last_given_frame(reference):
    decoded = drifted(reference, [0.0, 0.0, 0.0], [0.01, 0.0, 0.0])
    given = torch.zeros(40, dtype=torch.bool)
    given[:10] = True
    out = anchor_to_given(decoded, reference, given, root)
    x_error = (out - reference)[..., 0]
    # frame 9 (given, drift 0.09) sets the shift, so the error grows from 0.01 at frame 10
    torch.testing.assert_close(x_error[:, 10:], (torch.arange(10, 40, dtype=torch.float64) - 9)[None, :, None].expand(2, 30, 5) * 0.01)


def test_nothing_given_or_everything_given_changes_nothing(reference):
    decoded = drifted(reference, [0.3, 0.0, 0.0], [0.01, 0.0, 0.0])
    for given in (torch.zeros(40, dtype=torch.bool), torch.ones(40, dtype=torch.bool)):
        assert torch.equal(anchor_to_given(decoded, reference, given, root), decoded)


def test_a_shared_reference_and_bad_shapes(reference):
    decoded = drifted(reference, [0.3, 0.0, 0.0], [0.0, 0.0, 0.0])
    given = torch.zeros(40, dtype=torch.bool)
    given[:5] = True
    out = anchor_to_given(decoded, reference[:1], given, root)  # one given clip for a batch of two
    torch.testing.assert_close(out[0, 5:], reference[0, 5:])
    with pytest.raises(ValueError, match="does not match"):
        anchor_to_given(decoded, reference[:, :30], given, root)
    with pytest.raises(ValueError, match=r"given must be \[40\]"):
        anchor_to_given(decoded, reference, given[:30], root)


def test_easing_removes_the_pop_at_each_join_and_leaves_the_rest(reference):
    decoded = reference + 0.2 * torch.randn(2, 1, 5, 3, dtype=torch.float64)  # the same wrong pose offset throughout
    given = torch.zeros(40, dtype=torch.bool)
    given[:10] = given[30:] = True
    out = ease_into_given(decoded, reference, given, frames=6)
    for b in (10, 29):  # first generated frame after a join, last before one
        mismatch, before = (out[:, b] - reference[:, b]).norm(), (decoded[:, b] - reference[:, b]).norm()
        assert mismatch < 0.1 * before  # the pose continues from the given frame instead of jumping
    torch.testing.assert_close(out[:, 17:23], decoded[:, 17:23])  # more than 6 frames from a join
    torch.testing.assert_close(out[:, given], decoded[:, given])
    # the correction fades monotonically away from the left join
    change = (out - decoded).norm(dim=(-1, -2)).mean(0)[10:17]
    assert torch.all(change[1:] <= change[:-1] + 1e-12) and change[-1] == 0


def test_easing_checks_its_arguments(reference):
    given = torch.zeros(40, dtype=torch.bool)
    with pytest.raises(ValueError, match="frames must be >= 1"):
        ease_into_given(reference, reference, given, frames=0)
    with pytest.raises(ValueError, match="do not match"):
        ease_into_given(reference, reference[:, :30], given, frames=3)
