"""`mmgen fit|validate|test -c config.yaml`: LightningCLI with mmgen's systems and data modules.

The constructor signature is the config: every `class_path` / `init_args` in a YAML under
`configs/` is a constructor call, composed with repeated `-c` (later files win). Multi-GPU and
multi-node runs are Lightning's own (`--trainer.strategy ddp|fsdp`, `--trainer.devices`,
`--trainer.num_nodes`), launched by torchrun or SLURM.
"""

from __future__ import annotations

import logging

from lightning.pytorch.cli import LightningCLI

log = logging.getLogger(__name__)


class MmgenCLI(LightningCLI):
    def before_fit(self) -> None:
        """Refuse a DiT whose modalities do not match the latent cache it trains on."""
        model = getattr(self.model, "model", None)
        specs = getattr(self.datamodule, "specs", None)
        if model is None or specs is None or not hasattr(model, "specs"):
            return
        for name, spec in model.specs.items():
            if name not in specs:
                raise ValueError(f"the DiT has modality {name!r} but the latent cache has {sorted(specs)}")
            if spec != specs[name]:
                raise ValueError(f"modality {name!r}: the DiT expects {spec}, the latent cache holds {specs[name]}")


def run_lightning(command: str, argv: list[str]) -> int:
    """Run a LightningCLI sub-command (fit / validate / test) with the rest of the command line."""
    MmgenCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=[command, *argv],
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
    return 0
