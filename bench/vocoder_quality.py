"""Griffin-Lim vs the trained vocoder on held-out ToyDance clips.

Two paths per clip (24 clips x 8 s, validation seeds 20000+ and 30000+, never the demo's):
  * true mel -> waveform (the decoder alone), and
  * waveform -> mel VAE -> mel -> waveform (the round trip generated music goes through),
each decoded by Griffin-Lim (32 iterations, as the checkpoint did before) and by the pipeline's
vocoder; scored against the true waveform by the multi-resolution STFT distance (spectral
convergence + log magnitude, the training loss's form) and the multi-scale log-mel L1 distance.

    python bench/vocoder_quality.py --audio checkpoints/toydance/audio --clips 12
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from mmgen.data.toydance import generate_clip
from mmgen.modalities.audio_codec import MelAudioCodec
from mmgen.modalities.audio_losses import MultiResolutionSTFTLoss, MultiScaleMelLoss
from mmgen.modalities.media import AudioModality


@torch.no_grad()
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, default=Path("checkpoints/toydance/audio"), help="AudioModality folder with vocoder/")
    parser.add_argument("--clips", type=int, default=12, help="clips per validation set")
    args = parser.parse_args()
    modality = AudioModality.from_pretrained(args.audio).eval()
    if modality.vocoder is None:
        parser.error(f"{args.audio}: no vocoder/ folder to compare with Griffin-Lim")
    spec = modality.codec.spec
    decoders = {"Griffin-Lim (32 it.)": MelAudioCodec(spec, None, 32), "vocoder": MelAudioCodec(spec, modality.vocoder, 32)}
    stft, mel = MultiResolutionSTFTLoss(), MultiScaleMelLoss(spec.sample_rate)
    scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for first in (20000, 30000):
        for i in range(args.clips):
            clip = generate_clip(first + i, seconds=8.0, tempo_position=i / max(1, args.clips - 1), render_video=False)
            wave = torch.as_tensor(clip.audio, dtype=torch.float32)[None]  # [1, S]
            true_mel = decoders["vocoder"].encode(wave, clip.sample_rate)
            vae_mel = modality.vae.decode(modality.vae.encode(true_mel)[0], true_mel.shape[-1])  # posterior mean
            for path, features in (("true mel", true_mel), ("VAE round trip", vae_mel)):
                for name, codec in decoders.items():
                    out = codec.decode(features, num_samples=wave.shape[-1], generator=torch.Generator().manual_seed(i))
                    n = min(out.shape[-1], wave.shape[-1])
                    scores.setdefault((path, name), []).append(
                        (float(stft(out[..., :n], wave[..., :n])), float(mel(out[..., :n], wave[..., :n])))
                    )
    print(f"{2 * args.clips} held-out clips x 8 s; lower is better")
    print("| path | decoder | multi-resolution STFT distance | multi-scale mel distance |\n|---|---|---|---|")
    for (path, name), v in scores.items():
        a = np.asarray(v)
        print(f"| {path} | {name} | {a[:, 0].mean():.3f} ± {a[:, 0].std():.3f} | {a[:, 1].mean():.3f} ± {a[:, 1].std():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
