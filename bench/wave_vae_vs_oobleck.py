"""Our WaveVAE vs diffusers' AutoencoderOobleck at the EQUAL config: encode/decode seconds per second of audio.

Both models get the same weights (ours loads the Oobleck state dict), the outputs are checked to
agree, then encode and decode are timed in interleaved repeats (ours, theirs, ours, ...) on
`--threads` CPU threads; the median time per second of audio and the ratio ours / theirs are printed
(goal: ratio <= 1.0).

    python bench/wave_vae_vs_oobleck.py                 # the `sao` preset (Stable Audio Open size)
    python bench/wave_vae_vs_oobleck.py --preset tiny --seconds 4 --repeats 9
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="sao")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio length per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    from diffusers import AutoencoderOobleck

    from mmgen.modalities.audio_wave import WAVE_PRESETS, WaveVAE

    cfg = WAVE_PRESETS[args.preset]
    if cfg["encoder_channels"] != 2 * cfg["latent_channels"]:
        raise SystemExit(
            f"preset {args.preset}: diffusers ties encoder width to 2 x latent channels; no equal config"
        )
    if any(r % 2 for r in cfg["ratios"]):
        raise SystemExit(
            f"preset {args.preset}: odd ratios {cfg['ratios']} are not length-exact in diffusers"
        )
    torch.manual_seed(0)
    theirs = AutoencoderOobleck(
        encoder_hidden_size=cfg["encoder_channels"],
        downsampling_ratios=list(cfg["ratios"]),
        channel_multiples=list(cfg["channel_mults"]),
        decoder_channels=cfg["decoder_channels"],
        decoder_input_channels=cfg["latent_channels"],
        audio_channels=cfg["audio_channels"],
        sampling_rate=cfg["sample_rate"],
    ).eval()
    ours = WaveVAE.from_preset(args.preset).eval()
    ours.load_state_dict(theirs.state_dict(), strict=False)
    n_ours, n_theirs = count(ours), count(theirs)
    print(
        f"preset {args.preset}: parameters ours {n_ours:,} | diffusers {n_theirs:,} | equal: {n_ours == n_theirs}"
    )

    sr, hop = cfg["sample_rate"], ours.hop_length
    samples = max(1, round(args.seconds * sr / hop)) * hop
    seconds = samples / sr
    wave = 0.1 * torch.randn(1, cfg["audio_channels"], samples)
    with torch.inference_mode():
        z_theirs = theirs.encode(wave).latent_dist.mode()  # [1, L, T]
        mean, _ = ours.encode(wave)  # [1, T, L]
        enc_err = (mean.transpose(1, 2) - z_theirs).abs().max()
        dec_err = (ours.decode(mean) - theirs.decode(z_theirs).sample).abs().max()
        print(
            f"max |ours - diffusers|: latents {float(enc_err):.2e}, audio {float(dec_err):.2e} ({seconds:.2f} s of audio)"
        )

        times: dict[str, list[float]] = {k: [] for k in ("enc_ours", "enc_theirs", "dec_ours", "dec_theirs")}
        for _ in range(args.repeats):
            times["enc_ours"].append(timed(lambda: ours.encode(wave)))
            times["enc_theirs"].append(timed(lambda: theirs.encode(wave).latent_dist.mode()))
            times["dec_ours"].append(timed(lambda: ours.decode(mean)))
            times["dec_theirs"].append(timed(lambda: theirs.decode(z_theirs).sample))
    med = {k: statistics.median(v) / seconds for k, v in times.items()}
    print(
        f"threads {args.threads}, repeats {args.repeats} (interleaved, median), seconds of compute per second of audio:"
    )
    for stage in ("enc", "dec"):
        a, b = med[f"{stage}_ours"], med[f"{stage}_theirs"]
        print(f"  {stage}ode  ours {a:.3f} s/s | diffusers {b:.3f} s/s | ratio {a / b:.3f}")


if __name__ == "__main__":
    main()
