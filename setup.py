"""Ships the ToyDance checkpoint in the wheel: `checkpoints/toydance` -> `mmgen/checkpoints/toydance`.

Everything else is in pyproject.toml. The checkpoint stays at `checkpoints/toydance` in the
repository (retrain it there); a source checkout or editable install finds it there
(`mmgen.pipeline.hub.toydance_dir`), an installed wheel finds it inside the package.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CHECKPOINT = ROOT / "checkpoints" / "toydance"


class BuildPyWithCheckpoint(build_py):
    """build_py, then copy the checkpoint folder into the built package (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folder
        if not (CHECKPOINT / "pipeline.yaml").is_file():
            raise SystemExit(f"{CHECKPOINT}: the ToyDance checkpoint is missing; it ships in the wheel")
        target = Path(self.build_lib) / "mmgen" / "checkpoints" / "toydance"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(CHECKPOINT, target)


setup(cmdclass={"build_py": BuildPyWithCheckpoint})
