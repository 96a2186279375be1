"""Ships the ToyDance checkpoints in the wheel: `checkpoints/<name>` -> `mmgen/checkpoints/<name>`.

Everything else is in pyproject.toml. The checkpoints stay at `checkpoints/` in the repository
(retrain them there): `toydance` (the DiT pipeline) and `toydance_lm` (the codebook-LM baseline,
whose `base: ../toydance` needs its sibling). A source checkout or editable install finds them
there (`mmgen.pipeline.hub.toydance_dir`), an installed wheel inside the package.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = ("toydance", "toydance_lm")


class BuildPyWithCheckpoint(build_py):
    """build_py, then copy the checkpoint folders into the built package (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders
        for name in CHECKPOINTS:
            source = ROOT / "checkpoints" / name
            if not (source / "pipeline.yaml").is_file():
                raise SystemExit(f"{source}: the checkpoint is missing; it ships in the wheel")
            target = Path(self.build_lib) / "mmgen" / "checkpoints" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target)


setup(cmdclass={"build_py": BuildPyWithCheckpoint})
