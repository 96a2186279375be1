"""Bytes autograd keeps for backward in one DiT train step: ours (fused AdaLN), ours unfused, diffusers.

The activation memory of a train step is what the forward saves for backward. This counts it
exactly (torch-aware, unlike tracemalloc): every tensor packed by autograd during the forward,
deduplicated by storage, parameters excluded. "ours, unfused" is the block as it was before
`mmgen.dit.modulation` (per-token [B, N, 6D] modulation gathered, LayerNorm then addcmul), run on
the same weights. Models as in `bench/dit_vs_diffusers.py` (width 512, 8 heads, 64 channels,
cross-attention to 32 tokens, batch 1).

    python bench/dit_saved_tensors.py --tokens 2048 --depth 2
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dit_vs_diffusers import build, make_step

from mmgen.dit.blocks import DiTBlock, gather_rows


def unfused_forward(self, x, c_rows, row, cos, sin, context=None, context_mask=None, shared_rows=None):
    """DiTBlock.forward before the fusion: the [B, N, 6D] gather and unfused norm / modulate."""
    rows = self.modulation_rows(c_rows, shared_rows) + self.scale_one  # [B, R, 6D]
    mod = gather_rows(rows, row)  # [B, N, 6D]
    shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod.chunk(6, dim=-1)
    x = torch.addcmul(x, gate_a, self.attn(torch.addcmul(shift_a, self.norm1(x), scale_a), cos, sin))
    if self.cross is not None:
        x = x + self.cross(self.norm_cross(x), context, context_mask)
    return torch.addcmul(x, gate_m, self.mlp(torch.addcmul(shift_m, self.norm2(x), scale_m)))


def saved_mb(which: str, tokens: int, depth: int, unfused: bool = False) -> float:
    model = build(which, 512, depth, 8, "cpu")
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    _, loss_fn = make_step(which, model, tokens, 512, 8, "cpu")
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    patch = contextlib.nullcontext()
    if unfused:
        original = DiTBlock.forward
        DiTBlock.forward = unfused_forward
        patch = contextlib.ExitStack()
        patch.callback(setattr, DiTBlock, "forward", original)
    with patch, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    del loss
    return sum(seen.values()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours = saved_mb("ours", args.tokens, args.depth)
    old = saved_mb("ours", args.tokens, args.depth, unfused=True)
    theirs = saved_mb("theirs", args.tokens, args.depth)
    print(f"saved for backward, {args.tokens} tokens, depth {args.depth} (MB):")
    print(f"  ours (fused AdaLN) {ours:8.1f}   ours unfused {old:8.1f}   diffusers {theirs:8.1f}")
    print(f"  ours / diffusers {ours / theirs:.2f}   unfused / diffusers {old / theirs:.2f}   fused / unfused {ours / old:.2f}")


if __name__ == "__main__":
    main()
