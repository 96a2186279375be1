"""Per-modality codecs (raw media <-> features) and VAEs (features <-> latents)."""
