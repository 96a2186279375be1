"""The codebook language-model baseline (MusicGen): residual VQ tokens, interleaving patterns, a
conditioned causal transformer LM, sampling. See docs/musicgen.md."""
