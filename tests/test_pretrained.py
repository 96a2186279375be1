import pytest
import torch
import yaml
from torch import nn

from mmgen.core.pretrained import PretrainedMixin
from mmgen.core.timeline import ModalitySpec
from mmgen.modalities.base import DiagonalGaussian, LatentStats


class TinyNet(PretrainedMixin, nn.Module):
    def __init__(self, width: int, spec: ModalitySpec, scale: float = 2.0) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.stats = LatentStats(width)
        self.scale = scale


class TinyChild(TinyNet):
    def __init__(self, width: int = 3, extra: int = 5) -> None:
        super().__init__(width, ModalitySpec(width, 7.5))
        self.extra = extra


def test_save_load_round_trip_is_bit_exact(tmp_path):
    net = TinyNet(4, ModalitySpec(4, 7.5, (2, 2)), scale=3.0)
    net.stats.mean.fill_(0.25)
    net.save_pretrained(tmp_path / "net")
    cfg = yaml.safe_load((tmp_path / "net" / "config.yaml").read_text())
    assert cfg["class_path"] == f"{__name__}.TinyNet"
    assert cfg["init_args"]["scale"] == 3.0
    loaded = TinyNet.from_pretrained(tmp_path / "net")
    assert loaded.scale == 3.0 and loaded.config["spec"] == ModalitySpec(4, 7.5, (2, 2))
    for (k, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert not loaded.training


def test_half_precision_storage_rounds_parameters_only(tmp_path):
    from safetensors.torch import load_file

    net = TinyNet(64, ModalitySpec(64, 7.5))
    net.stats.std.fill_(1.0 + 1e-6)  # not representable in float16: buffers must stay exact
    net.save_pretrained(tmp_path / "half", dtype=torch.float16)
    net.save_pretrained(tmp_path / "full")
    stored = load_file(str(tmp_path / "half" / "model.safetensors"))
    assert stored["proj.weight"].dtype == torch.float16 and stored["stats.std"].dtype == torch.float32
    size = {d: (tmp_path / d / "model.safetensors").stat().st_size for d in ("half", "full")}
    assert size["half"] < 0.6 * size["full"]
    loaded = TinyNet.from_pretrained(tmp_path / "half")
    assert loaded.proj.weight.dtype == torch.float32
    assert torch.equal(loaded.stats.std, net.stats.std)
    err = (loaded.proj.weight - net.proj.weight).abs().max()
    assert 0 < err <= 1e-3 * net.proj.weight.abs().max()  # rounded, to float16's precision


def test_subclass_records_only_its_own_signature(tmp_path):
    child = TinyChild(extra=7)
    assert child.config == {"width": 3, "extra": 7}
    child.save_pretrained(tmp_path / "c")
    assert TinyChild.from_pretrained(tmp_path / "c").extra == 7


def test_loading_refuses_foreign_classes_and_missing_files(tmp_path):
    net = TinyNet(2, ModalitySpec(2, 1.0))
    net.save_pretrained(tmp_path / "n")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        (tmp_path / "n" / "model.safetensors").rename(tmp_path / "w")
        TinyNet.from_pretrained(tmp_path / "n")
    (tmp_path / "w").rename(tmp_path / "n" / "model.safetensors")
    (tmp_path / "n" / "config.yaml").write_text("class_path: os.system\ninit_args: {}\n")
    with pytest.raises(ValueError, match="only classes under 'mmgen.'"):
        TinyNet.from_pretrained(tmp_path / "n")


def test_failed_save_leaves_nothing_behind(tmp_path):
    class Unsaveable(PretrainedMixin, nn.Module):
        def __init__(self, thing: object) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="cannot store"):
        Unsaveable(object()).save_pretrained(tmp_path / "u")
    assert list(tmp_path.iterdir()) == []


def test_latent_stats_fit_normalizes_to_unit_variance():
    z = torch.randn(64, 10, 3) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -1.0, 0.0])
    stats = LatentStats(3).fit([z[:32], z[32:]])
    flat = z.reshape(-1, 3)
    assert torch.allclose(stats.mean, flat.mean(0), atol=1e-5)
    assert torch.allclose(stats.std, flat.std(0), atol=1e-4)
    n = stats.normalize(z)
    assert torch.allclose(n.reshape(-1, 3).std(0), torch.ones(3), atol=1e-4)
    assert torch.allclose(stats.denormalize(n), z, atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        stats.fit([torch.zeros(4, 2)])


def test_gaussian_kl_matches_closed_form():
    mean, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.7]])
    q = DiagonalGaussian(mean, logvar)
    var = logvar.exp()
    expected = 0.5 * (mean**2 + var - 1 - logvar).sum()
    assert torch.allclose(q.kl(), expected.reshape(1))
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, var.sqrt()), torch.distributions.Normal(0.0, 1.0)
    ).sum()
    assert torch.allclose(q.kl(), ref.reshape(1), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    s = DiagonalGaussian(torch.zeros(20000), torch.full((20000,), 2 * torch.tensor(3.0).log())).sample(g)
    assert abs(s.std().item() - 3.0) < 0.1


def test_fingerprint_tracks_config_and_weights(tmp_path):
    net = TinyNet(3, ModalitySpec(3, 7.5))
    same = TinyNet(3, ModalitySpec(3, 7.5))
    same.load_state_dict(net.state_dict())
    assert net.fingerprint() == same.fingerprint()
    net.save_pretrained(tmp_path / "n")
    assert TinyNet.from_pretrained(tmp_path / "n").fingerprint() == net.fingerprint()
    with torch.no_grad():
        same.proj.weight[0, 0] += 1e-6
    assert same.fingerprint() != net.fingerprint()
    other_cfg = TinyNet(3, ModalitySpec(3, 7.5), scale=5.0)
    other_cfg.load_state_dict(net.state_dict())
    assert other_cfg.fingerprint() != net.fingerprint()


def test_load_weights_casts_and_names_the_file_on_a_shape_change(tmp_path):
    from mmgen.core.pretrained import load_weights

    net = TinyNet(4, ModalitySpec(4, 7.5))
    net.save_pretrained(tmp_path / "net", dtype=torch.float16)
    other = TinyNet(4, ModalitySpec(4, 15.0))  # a different rate, the same parameters
    load_weights(other, tmp_path / "net")
    assert other.proj.weight.dtype == torch.float32
    assert torch.allclose(other.proj.weight, net.proj.weight, atol=1e-3)
    with pytest.raises(ValueError, match=r"model\.safetensors: shapes differ.*proj\.weight"):
        load_weights(TinyNet(5, ModalitySpec(5, 7.5)), tmp_path / "net")


def test_dit_module_fine_tunes_from_pretrained_weights_after_a_rate_change(tmp_path):
    from mmgen.dit.model import MultimodalDiT
    from mmgen.train.dit_module import DiTModule

    def dit(video_rate: float) -> MultimodalDiT:
        torch.manual_seed(int(video_rate))
        specs = {"audio": {"channels": 4, "rate_hz": 7.5}, "video": {"channels": 3, "rate_hz": video_rate, "spatial": [2, 2]}}
        return MultimodalDiT(modalities=specs, d_model=32, depth=1, num_heads=2, patch_size=2, segment_seconds=0.5)

    trained = dit(3.75)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    trained.save_pretrained(tmp_path / "dit")
    module = DiTModule(dit(7.5), init_weights=str(tmp_path / "dit"))
    for (name, a), b, e in zip(trained.state_dict().items(), module.model.state_dict().values(), module.ema.ema.state_dict().values()):
        assert torch.equal(a, b) and torch.equal(a, e), name
    assert module.model.specs["video"].rate_hz == 7.5


def test_folders_saved_with_the_old_module_paths_still_load(tmp_path):
    """Before the December 2026 regrouping, ModalitySpec lived in `mmgen.timeline`; such folders load."""
    from mmgen.dit.model import MultimodalDiT

    dit = MultimodalDiT({"audio": ModalitySpec(4, 7.5)}, d_model=16, depth=1, num_heads=2)
    dit.save_pretrained(tmp_path / "dit")
    config = tmp_path / "dit" / "config.yaml"
    text = config.read_text()
    assert "mmgen.core.timeline.ModalitySpec" in text
    config.write_text(text.replace("mmgen.core.timeline.ModalitySpec", "mmgen.timeline.ModalitySpec"))
    loaded = MultimodalDiT.from_pretrained(tmp_path / "dit")
    assert loaded.specs == dit.specs
    for (name, a), b in zip(dit.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="unknown class_path"):
        config.write_text(text.replace("mmgen.core.timeline.ModalitySpec", "mmgen.nowhere.ModalitySpec"))
        MultimodalDiT.from_pretrained(tmp_path / "dit")


def test_dit_module_rebuilds_video_projections_and_starts_from_a_trained_condition(tmp_path):
    """A patch-size change rebuilds the video in/out projections whose shape changed (named in
    init_new; in_proj's bias keeps its shape and its trained value); the condition encoder's
    projections come from condition_init_weights, not from their init."""
    from mmgen.conditioning import ConditionEncoder, MelodyConditioner
    from mmgen.dit.model import MultimodalDiT
    from mmgen.train.dit_module import DiTModule

    def dit(patch: int) -> MultimodalDiT:
        torch.manual_seed(patch)
        specs = {"audio": {"channels": 4, "rate_hz": 7.5}, "video": {"channels": 3, "rate_hz": 7.5, "spatial": [4, 4]}}
        return MultimodalDiT(modalities=specs, d_model=32, depth=1, num_heads=2, patch_size=patch, segment_seconds=0.5)

    def condition() -> ConditionEncoder:
        return ConditionEncoder({"melody": MelodyConditioner(8, target="aligned")}, aligned_dim=8, aligned_rate_hz=15.0)

    trained, trained_condition = dit(4), condition()
    with torch.no_grad():
        for p in [*trained.parameters(), *trained_condition.parameters()]:
            p.add_(1.0)
    trained.save_pretrained(tmp_path / "dit")
    trained_condition.save_pretrained(tmp_path / "condition")
    with pytest.raises(ValueError, match="shapes differ"):
        DiTModule(dit(2), init_weights=str(tmp_path / "dit"))
    fresh = dit(2)
    module = DiTModule(dit(2), condition=condition(), init_weights=str(tmp_path / "dit"),
                       init_new=["in_proj.video.", "out_proj.video."], condition_init_weights=str(tmp_path / "condition"))  # fmt: skip
    rebuilt = {"in_proj.video.weight", "out_proj.video.weight", "out_proj.video.bias"}
    assert all(fresh.state_dict()[k].shape != trained.state_dict()[k].shape for k in rebuilt)
    for name, value in module.model.state_dict().items():
        want = fresh.state_dict()[name] if name in rebuilt else trained.state_dict()[name]
        assert torch.equal(value, want), name
    for (name, a), b in zip(trained_condition.state_dict().items(), module.condition.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="no condition encoder"):
        DiTModule(dit(2), condition_init_weights=str(tmp_path / "condition"))
