"""mmgen's own numba cache: chosen before numba loads, filled under a lock (numba#10128)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BEATS = (
    "import numpy as np\n"
    "from mmgen.metrics.beats import music_beats\n"
    "y = np.zeros(4 * 22050, dtype=np.float32); y[::11025] = 1.0\n"
    "b = music_beats(y, 22050)\n"
    "assert len(b) >= 4 and abs(np.median(np.diff(b)) - 0.5) < 0.03, b\n"
    "print('ok')\n"
)


def run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def test_import_mmgen_points_numba_at_its_own_cache_unless_one_is_set(tmp_path):
    code = "import mmgen, os, numba.core.config as c; print(os.environ['NUMBA_CACHE_DIR']); print(c.CACHE_DIR)"
    out = run(code, clean_env(XDG_CACHE_HOME=str(tmp_path))).stdout.split()
    assert out[0] == out[1] and out[0].startswith(str(tmp_path / "mmgen" / "numba-"))
    assert "librosa-" in out[0] and "site-packages" not in out[0]
    out = run(code, clean_env(NUMBA_CACHE_DIR=str(tmp_path / "mine"))).stdout.split()
    assert out == [str(tmp_path / "mine")] * 2


@pytest.mark.slow
def test_processes_filling_a_cold_cache_together_leave_one_every_process_can_load(tmp_path):
    """Two processes track beats on a cold cache at the same time (the race that corrupted
    librosa's cache and segfaulted every later process); then a third loads what they left."""
    env = clean_env(NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", BEATS], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    assert (tmp_path / "cache" / ".mmgen-compile.lock").exists()
    assert list((tmp_path / "cache").rglob("*.nbi")), "nothing was cached"
    third = run(BEATS, env)
    assert third.returncode == 0 and third.stdout.strip() == "ok", third.stderr[-2000:]
