"""DiTModule trains on condition features from the latent cache exactly as on raw inputs."""

import numpy as np
import pytest
import torch

from mmgen.conditioning import ConditionEncoder, MelodyConditioner
from mmgen.core.errors import MmgenError
from mmgen.data.cached_features import collate_features, encode_item_features, feature_fingerprint
from mmgen.diffusion.noise_levels import MoNLConfig
from mmgen.dit.model import MultimodalDiT
from mmgen.train.dit_module import DiTModule, stream_given_mask

SPECS = {"audio": {"channels": 4, "rate_hz": 7.5}, "motion": {"channels": 3, "rate_hz": 7.5}}


def melody_module() -> DiTModule:
    torch.manual_seed(0)
    dit = MultimodalDiT(modalities=SPECS, d_model=32, depth=1, num_heads=2, patch_size=2, segment_seconds=0.5,
                        context_dim=16)
    with torch.no_grad():  # AdaLN-Zero / zero cross-attention out: make the condition's path carry signal
        for p in dit.parameters():
            if (p == 0).all():
                p.normal_(std=0.1)
    condition = ConditionEncoder({"melody": MelodyConditioner(16, sample_rate=8000, n_fft=512, hop_length=256)},
                                 context_dim=16)
    monl = MoNLConfig(segment_seconds=0.5, p_drop_text=0.5)
    return DiTModule(dit, condition=condition, monl=monl, ema_decay=None)


def test_cached_features_give_the_same_loss_as_encoding_raw_inputs():
    module = melody_module()
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(8000 * 2).astype(np.float32) * 0.1 for _ in range(3)]
    latents = {"audio": torch.randn(3, 15, 4), "motion": torch.randn(3, 15, 3)}
    cond = module.condition.conditioners["melody"]
    cached = collate_features([{"melody": encode_item_features("melody", cond, {"melody": w}, str(i))}
                               for i, w in enumerate(waves)])
    raw = {"latents": latents, "melody": torch.from_numpy(np.stack(waves))}
    from_cache = {"latents": latents, "features": cached}  # no raw melody: the encoder is not run
    losses = []
    for batch in (raw, from_cache):
        torch.manual_seed(5)
        losses.append(float(module._loss(batch)[0].detach()))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    conds = [module._cond(b, None)[0] for b in (raw, from_cache)]
    torch.testing.assert_close(conds[0].context, conds[1].context)
    shifted = {"melody": {"values": cached["melody"]["values"].roll(7, dims=1), "mask": cached["melody"]["mask"]}}
    moved = module._cond({"latents": latents, "features": shifted}, None)[0]
    assert (moved.context - conds[0].context).abs().max() > 0.1  # the cached values are what the DiT sees


def test_fit_refuses_features_of_another_encoder():
    module = melody_module()

    class Cache:
        features = ("melody",)

        def __init__(self, fp):
            self.fp = fp

        def check_feature_fingerprints(self, expected):
            if expected["melody"] != self.fp:
                raise MmgenError("made by a different encoder")

    class Trainer:
        def __init__(self, fp):
            self.datamodule = type("DM", (), {"cache": Cache(fp)})()

    good = feature_fingerprint(module.condition.conditioners["melody"])
    module._trainer = Trainer(good)
    module.on_fit_start()
    module._trainer = Trainer("something else")
    with pytest.raises(MmgenError, match="different encoder"):
        module.on_fit_start()


def test_a_stream_is_given_only_where_its_modality_is():
    levels = torch.tensor([[0.0, 0.7, 0.0], [0.2, 0.0, 0.0]])  # video latents at 3.75 Hz
    given = stream_given_mask(levels, 3.75, 12, 15.0)  # sync frames at 15 Hz: 4 per latent frame
    expect = torch.tensor([[1] * 4 + [0] * 4 + [1] * 4, [0] * 4 + [1] * 8], dtype=torch.bool)
    assert torch.equal(given, expect)
    # a stream longer than the latents holds the last latent frame's state
    assert stream_given_mask(levels, 3.75, 14, 15.0)[:, 12:].tolist() == [[True, True], [True, True]]
