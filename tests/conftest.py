"""Shared test helpers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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
