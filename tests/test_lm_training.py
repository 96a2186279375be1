"""LMModule under Lightning: it trains, and exports the weights of its best validation."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from mmgen.lm.model import CodebookLM
from mmgen.lm.quantizer import ResidualVQ
from mmgen.train.lm_module import LMModule


class ValLosses(L.Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def on_validation_end(self, trainer, module) -> None:
        self.seen.append((trainer.global_step, float(trainer.callback_metrics["val/loss"])))

    def on_train_end(self, trainer, module) -> None:  # before the module's on_fit_end exports
        self.last = {k: v.clone() for k, v in module.model.state_dict().items()}


def test_lm_module_trains_and_exports_its_best_validation(tmp_path):
    torch.manual_seed(0)
    rvq = ResidualVQ(dim=4, num_codebooks=2, codebook_size=8, rate_hz=7.5)
    rvq.fit_step(torch.randn(8, 16, 4))
    rvq.save_pretrained(tmp_path / "rvq")
    lm = CodebookLM(2, 8, "delay", rate_hz=7.5, d_model=16, depth=1, num_heads=2,
                    conditions={"motion": {"dim": 3, "rate_hz": 7.5}})  # fmt: skip
    module = LMModule(lm, str(tmp_path / "rvq"), lr=3e-2, warmup_steps=1, export_dir=str(tmp_path / "lm"))
    train = [{"latents": {"audio": torch.randn(12, 4), "motion": torch.randn(12, 3)}} for _ in range(2)] * 2
    held = [{"latents": {"audio": torch.randn(12, 4), "motion": torch.randn(12, 3)}} for _ in range(2)]
    losses = ValLosses()
    trainer = L.Trainer(max_steps=12, val_check_interval=2, check_val_every_n_epoch=None, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[losses])  # fmt: skip
    trainer.fit(module, DataLoader(train, batch_size=2), DataLoader(held, batch_size=2))
    assert len(losses.seen) == 6
    best_step, best_loss = min(losses.seen, key=lambda s: s[1])
    assert module.best is not None and (module.best[1], module.best[0]) == (best_step, best_loss)
    exported = CodebookLM.from_pretrained(tmp_path / "lm").state_dict()
    assert all(torch.equal(exported[k], v) for k, v in module.best[2].items())
    # two training clips are memorised: held-out loss falls, then rises, so the best is not the last
    assert best_step < losses.seen[-1][0] and losses.seen[-1][1] > best_loss, losses.seen
    assert not all(torch.equal(exported[k], v) for k, v in losses.last.items())  # not the last weights
