"""The shipped ToyDance DiT gives the outputs it gave when it was written.

`tests/data/toydance_dit_golden.safetensors` holds the model's outputs on fixed inputs (and, since
the checkpoint has a time-aligned stream, a fixed stream), written by
`python tests/test_dit_golden.py --write` when the checkpoint was retrained on 2026-12-07 and
again when its wide video head and per-patch partner streams were trained (stage dit_wide) and
when it learned to draw the video from pose maps (stage dit_pose; fixed random maps). The
first golden file pinned the first checkpoint through the conditioning-ways change
(bit-identical) and the fused modulation (float rounding); the test allows rounding (1e-5 of
the output scale).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mmgen.core.cond import Cond
from mmgen.core.timeline import segment_ids
from mmgen.dit import MultimodalDiT

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "toydance" / "dit"
GOLDEN = Path(__file__).parent / "data" / "toydance_dit_golden.safetensors"
FRAMES = {"audio": 15, "motion": 15, "video": 8}  # 2 s: 4 noise-level segments per modality


def golden_inputs(model: MultimodalDiT) -> tuple[dict, dict]:
    """Two examples: one with mixed per-segment levels (some GIVEN at 0), one all-noisy."""
    g = torch.Generator().manual_seed(2024)
    x, t = {}, {}
    for name, n in FRAMES.items():
        spec = model.specs[name]
        x[name] = torch.randn(2, *spec.latent_shape(n), generator=g)
        seg = segment_ids(n, spec.rate_hz, model.segment_seconds)
        rows = torch.rand(2, int(seg.max()) + 1, generator=g)
        rows[0, ::2] = 0.0  # GIVEN segments
        t[name] = rows[:, seg]  # [2, T]
    return x, t


def outputs() -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    model = MultimodalDiT.from_pretrained(CHECKPOINT)
    x, t = golden_inputs(model)
    cond = None
    if model.aligned_dim is not None:  # 2 s of stream at the aligned rate
        g = torch.Generator().manual_seed(7)
        frames = round(2.0 * model.aligned.rate_hz)
        maps = {}
        if model.maps is not None:  # pictures in [0, 1]; the second example's second second absent
            mask = torch.ones(2, frames, dtype=torch.bool)
            mask[1, frames // 2 :] = False
            maps = {"maps": torch.rand(2, frames, model.input_dims()["maps"], generator=g), "maps_mask": mask}
        cond = Cond(aligned=torch.randn(2, frames, model.aligned_dim, generator=g), **maps)
    with torch.no_grad():
        return model(x, t, cond)


def test_shipped_checkpoint_outputs_are_unchanged():
    want = load_file(str(GOLDEN))
    got = outputs()
    assert set(got) == set(want)
    for name, ref in want.items():
        scale = ref.abs().max()
        assert scale > 0.1, name  # the reference is a real prediction, not zeros
        torch.testing.assert_close(got[name], ref, rtol=0, atol=1e-5 * float(scale), msg=name)


if __name__ == "__main__" and "--write" in sys.argv:
    save_file({k: v.contiguous() for k, v in outputs().items()}, str(GOLDEN))
    print(f"wrote {GOLDEN}")
