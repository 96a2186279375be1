"""MultimodalDiT vs diffusers' StableAudioDiTModel: train-step and forward time, peak memory vs tokens.

Both models: width 512 (8 heads x 64), 8 blocks, cross-attention to 32 context tokens, 64 latent
channels, batch 1. Ours gets a per-token noise-level vector (constant per 0.5 s segment at 21.5 Hz,
so ~11 tokens per modulation row); theirs one timestep per example (it cannot do more). Timings
are interleaved ours/theirs in one process, median of --reps after one warm-up. Printed: median
wall time of each and their ratio, the ratio of the best-of-reps wall times, and the ratio of
median process CPU times (on a shared, oversubscribed CPU a 2-thread op can stall waiting for a
descheduled thread: the median wall ratio then measures the neighbours; best-of and CPU time
are closer to the work done).

Memory: peak of one train step (forward + backward) at each of --mem-tokens, measured in a fresh
subprocess per (model, tokens). On CPU: peak RSS (VmHWM of /proc/self/status, reset just before
the step) minus RSS before the step; ru_maxrss is not used, Linux carries it over from the parent
across exec. On CUDA: torch.cuda.max_memory_allocated minus the allocation before the step.
Memory runs use --mem-depth blocks (CPU default 2, --quick 1, to keep 16k tokens affordable; the
16k/8k ratio is what shows whether attention memory is linear: N x N scores would make it ~4).

    python bench/dit_vs_diffusers.py --quick            # CPU, ~2 minutes
    python bench/dit_vs_diffusers.py --tokens 2048 --skip-memory --dtype bf16 --compile
    python bench/dit_vs_diffusers.py --skip-timing --mem-tokens 8192 16384 --mem-depth 8
    python bench/dit_vs_diffusers.py --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from mmgen.core.cond import Cond
from mmgen.core.timeline import ModalitySpec, segment_ids
from mmgen.dit import MultimodalDiT

RATE_HZ = 44100 / 2048  # Stable Audio's latent rate
CHANNELS = 64
CONTEXT_LEN, CONTEXT_DIM = 32, 768


def build(which: str, width: int, depth: int, heads: int, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if which == "ours":
        model = MultimodalDiT(
            {"audio": ModalitySpec(CHANNELS, RATE_HZ)},
            d_model=width,
            depth=depth,
            num_heads=heads,
            context_dim=CONTEXT_DIM,
            check_levels=False,
        )
    else:
        from diffusers import StableAudioDiTModel

        model = StableAudioDiTModel(
            sample_size=1024,
            in_channels=CHANNELS,
            num_layers=depth,
            attention_head_dim=width // heads,
            num_attention_heads=heads,
            num_key_value_attention_heads=heads,
            out_channels=CHANNELS,
            cross_attention_dim=width,
            time_proj_dim=256,
            global_states_input_dim=width,
            cross_attention_input_dim=CONTEXT_DIM,
        )
    return model.to(device).train()


def make_step(which: str, model: torch.nn.Module, tokens: int, width: int, heads: int, device: str):
    """Return (forward(), loss()) closures on fixed random inputs of `tokens` latent frames."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, tokens, CHANNELS, generator=g).to(device)
    target = torch.randn(1, tokens, CHANNELS, generator=g).to(device)
    context = torch.randn(1, CONTEXT_LEN, CONTEXT_DIM, generator=g).to(device)
    if which == "ours":
        seg = segment_ids(tokens, RATE_HZ, 0.5)
        t = torch.rand(1, int(seg.max()) + 1, generator=g)[:, seg].to(device)  # [1, N] per-token levels
        cond = Cond(context=context)

        def forward() -> torch.Tensor:
            return model({"audio": x}, {"audio": t}, cond)["audio"]
    else:
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        rotary = get_1d_rotary_pos_embed(
            width // heads // 2, tokens + 1, use_real=True, repeat_interleave_real=False
        )
        rotary = tuple(r.to(device) for r in rotary)
        timestep = torch.rand(1, generator=g).to(device)
        global_states = torch.randn(1, 1, width, generator=g).to(device)
        x_cf = x.transpose(1, 2).contiguous()  # [1, C, N]

        def forward() -> torch.Tensor:
            out = model(
                x_cf,
                timestep,
                encoder_hidden_states=context,
                global_hidden_states=global_states,
                rotary_embedding=rotary,
            ).sample
            return out.transpose(1, 2)  # [1, N, C]

    def loss() -> torch.Tensor:
        return F.mse_loss(forward().float(), target)

    return forward, loss


def autocast(device: str, dtype: str):
    return (
        torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
        if dtype == "bf16"
        else contextlib.nullcontext()
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_one(fn, device: str) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def run_timing(args: argparse.Namespace) -> None:
    models = {w: build(w, args.width, args.depth, args.heads, args.device) for w in ("ours", "theirs")}
    for which, m in models.items():
        print(f"{which}: {sum(p.numel() for p in m.parameters()) / 1e6:.2f} M parameters")
    opts = {w: torch.optim.AdamW(m.parameters(), lr=1e-4) for w, m in models.items()}
    if args.compile:  # compiled modules share the parameters: the optimizers stay valid
        models = {w: torch.compile(m) for w, m in models.items()}
        print("torch.compile: the warm-up rep includes compilation and is not counted")
    print(
        f"\n{'tokens':>7} {'':>6} {'ours s':>8} {'theirs s':>9} {'ratio':>6} {'best-of':>8} {'| cpu: ours s':>13} {'theirs s':>9} {'ratio':>6}"
    )
    for tokens in args.tokens:
        steps = {w: make_step(w, m, tokens, args.width, args.heads, args.device) for w, m in models.items()}

        def train(w: str, steps: dict = steps) -> None:
            with autocast(args.device, args.dtype):
                loss = steps[w][1]()
            loss.backward()
            opts[w].step()
            opts[w].zero_grad(set_to_none=True)

        def infer(w: str, steps: dict = steps) -> None:
            with torch.no_grad(), autocast(args.device, args.dtype):
                steps[w][0]()

        times: dict[tuple[str, str], list[tuple[float, float]]] = {
            (w, k): [] for w in models for k in ("fwd", "train")
        }
        for rep in range(args.reps + 1):  # rep 0 is the warm-up
            for w in models:  # interleaved
                f, s = (
                    time_one(lambda w=w: infer(w), args.device),
                    time_one(lambda w=w: train(w), args.device),
                )
                if rep:
                    times[(w, "fwd")].append(f)
                    times[(w, "train")].append(s)
        for kind in ("fwd", "train"):
            wall = [statistics.median(v[0] for v in times[(w, kind)]) for w in ("ours", "theirs")]
            best = [min(v[0] for v in times[(w, kind)]) for w in ("ours", "theirs")]
            cpu = [statistics.median(v[1] for v in times[(w, kind)]) for w in ("ours", "theirs")]
            print(
                f"{tokens:>7} {kind:>6} {wall[0]:>8.3f} {wall[1]:>9.3f} {wall[0] / wall[1]:>6.2f} {best[0] / best[1]:>8.2f} "
                f"{cpu[0]:>13.3f} {cpu[1]:>9.3f} {cpu[0] / cpu[1]:>6.2f}"
            )


def run_memory_child(args: argparse.Namespace) -> None:
    """One train step of one model at one length; print the step's peak memory in MiB as JSON."""
    which, tokens = args.mem_child, args.mem_child_tokens
    model = build(which, args.width, args.mem_depth, args.heads, args.device)
    _, loss_fn = make_step(which, model, tokens, args.width, args.heads, args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        reset = _reset_peak_rss()
        before, prior_peak = _proc_status("VmRSS"), _proc_status("VmHWM")
    with autocast(args.device, args.dtype):
        loss = loss_fn()
    loss.backward()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        peak, masked = torch.cuda.max_memory_allocated(), False
    else:
        peak = _proc_status("VmHWM")
        masked = not reset and peak <= prior_peak  # the step never exceeded the process's earlier peak
    print(json.dumps({"mib": (peak - before) / 2**20, "masked": masked}))


def _proc_status(field: str) -> int:
    """A memory field of /proc/self/status in bytes (VmRSS: now, VmHWM: peak of this process image)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_memory(args: argparse.Namespace) -> None:
    kind = "max_memory_allocated" if args.device.startswith("cuda") else "peak RSS (VmHWM) minus RSS before"
    print(f"\npeak memory of one train step ({kind}, depth {args.mem_depth}, batch 1)")
    print(f"{'model':>7} " + " ".join(f"{n:>10}" for n in args.mem_tokens) + f" {'ratio':>8}")
    per_model = {}
    for which in ("ours", "theirs"):
        mib = []
        for tokens in args.mem_tokens:
            cmd = [
                sys.executable,
                __file__,
                "--mem-child",
                which,
                "--mem-child-tokens",
                str(tokens),
                "--device",
                args.device,
                "--dtype",
                args.dtype,
                "--width",
                str(args.width),
                "--heads",
                str(args.heads),
                "--mem-depth",
                str(args.mem_depth),
            ]
            res = json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            mib.append(res["mib"])
            if res["masked"]:
                print(
                    f"  note: {which} at {tokens} tokens stayed below the process's import peak; number is a lower bound"
                )
        ratio = mib[-1] / mib[0]
        per_model[which] = mib
        print(f"{which:>7} " + " ".join(f"{m:>8.0f}MB" for m in mib) + f" {ratio:>8.2f}")
    print(f"{'o/t':>7} " + " ".join(f"{a / b:>10.2f}" for a, b in zip(per_model["ours"], per_model["theirs"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--mem-tokens", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--mem-depth", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 reps, memory at depth 1")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument(
        "--compile", action="store_true", help="time both models under torch.compile (the warm-up rep compiles)"
    )
    parser.add_argument("--mem-child", choices=["ours", "theirs"], help=argparse.SUPPRESS)
    parser.add_argument("--mem-child-tokens", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.mem_depth is None:
        args.mem_depth = args.depth if args.device.startswith("cuda") else (1 if args.quick else 2)
    if args.mem_child:
        run_memory_child(args)
        return
    if args.quick:
        args.reps = min(args.reps, 2)
    print(
        f"torch {torch.__version__}, device {args.device}, dtype {args.dtype}, threads {torch.get_num_threads()}, "
        f"width {args.width}, depth {args.depth}, heads {args.heads}"
    )
    if not args.skip_timing:
        run_timing(args)
    if not args.skip_memory:
        run_memory(args)


if __name__ == "__main__":
    main()
