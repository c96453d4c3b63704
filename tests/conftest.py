"""Shared test helpers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

# Property tests draw the same examples on every run: a failure is reproducible, never flaky.
settings.register_profile("dlmsim", derandomize=True, print_blob=True)
settings.load_profile("dlmsim")


def dlmsim_exe() -> str:
    """The installed `dlmsim` console script next to this interpreter (or on PATH)."""
    exe = Path(sys.executable).with_name("dlmsim")
    return str(exe) if exe.exists() else shutil.which("dlmsim")


@pytest.fixture
def run_dlmsim():
    """Run the real `dlmsim` in a subprocess: (returncode, stdout, stderr) of the call."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([dlmsim_exe(), *args], capture_output=True, text=True,
                              timeout=120, check=False)

    return run


TINY_RUN = {"name": "mdlm-tiny", "batch": 1, "seq_len": 64, "steps": 8}


def tiny(**over) -> dict:
    """A sweep spec small enough for tests: 8 points on mdlm-tiny (B 1, L 64, T 8)."""
    data = {
        "version": 1, "name": "tiny", "base": "sda-style-2048-zcu102",
        "workloads": [TINY_RUN],
        "parameters": {"array.rows": [8, 16], "array.cols": [8, 16],
                       "bits.weights": [4, 8]},
        "objectives": ["latency_run_s", "dsp_used"],
        "constraints": {"fits": True, "max_frac": {"dsp": 0.75}},
    }
    data.update(over)
    return data


def write_spec(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p
