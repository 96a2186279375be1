"""A non-finite training loss stops the run in one line naming its step, before any checkpoint or export
holds it; a long tiny DiT run under bf16 autocast on CPU stays finite."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from mmgen.core.errors import MmgenError
from mmgen.core.timeline import ModalitySpec
from mmgen.dit.model import MultimodalDiT
from mmgen.train.dit_module import DiTModule
from mmgen.train.guards import LossWatch, NonFiniteLoss

SPECS = {"audio": ModalitySpec(8, 7.5), "motion": ModalitySpec(4, 7.5)}


class Latents(Dataset):
    """Fixed random latents (2 s windows); item `nan_at` holds a NaN."""

    def __init__(self, n: int, nan_at: int | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        self.items = [{m: torch.randn(15, s.channels, generator=g) for m, s in SPECS.items()} for _ in range(n)]
        if nan_at is not None:
            self.items[nan_at]["audio"][3, 2] = math.nan

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return {"latents": self.items[i]}


def collate(batch: list[dict]) -> dict:
    return {"latents": {m: torch.stack([b["latents"][m] for b in batch]) for m in SPECS}}


def tiny_module(tmp_path, d_model: int = 32, **kwargs) -> DiTModule:
    dit = MultimodalDiT(SPECS, d_model=d_model, depth=1, num_heads=2)
    return DiTModule(dit, warmup_steps=10, export_dir=str(tmp_path / "export"), **kwargs)


def trainer(tmp_path, steps: int, **kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", max_steps=steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, **kwargs,
    )


def test_loss_watch_remembers_the_first_bad_step_without_syncing():
    watch = LossWatch(every=10)
    for step, value in enumerate([1.0, 2.0, math.inf, math.nan, 0.5]):
        watch.observe(torch.tensor(value), step)
    with pytest.raises(NonFiniteLoss, match="at step 2;"):
        watch.check()
    clean = LossWatch()
    clean.observe(torch.tensor(0.1), 0)
    clean.check()  # nothing to say
    with pytest.raises(ValueError, match="nan_check_every"):
        LossWatch(every=0)
    assert issubclass(NonFiniteLoss, MmgenError)  # `mmgen fit` reports it as one line, exit 2


def test_a_nan_loss_stops_the_run_naming_the_step_and_leaves_no_nan_checkpoint(tmp_path):
    torch.manual_seed(0)
    module = tiny_module(tmp_path, nan_check_every=1000)  # the checkpoint check catches it, not the periodic one
    ckpts = tmp_path / "ckpt"
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpts, filename="{step}", save_top_k=-1,
                                                     every_n_train_steps=1)
    loader = DataLoader(Latents(8, nan_at=5), batch_size=1, shuffle=False, collate_fn=collate)
    with pytest.raises(NonFiniteLoss, match=r"the training loss became NaN or infinite at step 5; the run stopped"):
        trainer(tmp_path, 8, callbacks=[checkpoint]).fit(module, loader)
    assert sorted(p.name for p in ckpts.iterdir()) == [f"step={k}.ckpt" for k in range(1, 6)]  # steps 1..5 only
    for path in ckpts.iterdir():
        state = torch.load(path, weights_only=True, map_location="cpu")["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert not (tmp_path / "export").exists()


@pytest.mark.slow
def test_1000_steps_of_a_tiny_dit_under_bf16_autocast_stay_finite(tmp_path):
    torch.manual_seed(0)
    module = tiny_module(tmp_path, d_model=16, nan_check_every=100, ema_decay=0.99)
    loader = DataLoader(Latents(16), batch_size=2, shuffle=True, collate_fn=collate, drop_last=True)
    trainer(tmp_path, 1000, precision="bf16-mixed", enable_checkpointing=False).fit(module, loader)
    assert module.global_step == 1000
    module.loss_watch.check()  # no step had a non-finite loss
    exported = MultimodalDiT.from_pretrained(tmp_path / "export")
    assert all(torch.isfinite(p).all() for p in exported.parameters())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = module._loss(collate([Latents(16)[i] for i in range(4)]))
    assert torch.isfinite(loss) and loss < 1.5  # it trained (v-prediction loss starts near 1)
