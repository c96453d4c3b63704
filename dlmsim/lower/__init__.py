"""Lowering a design to a self-contained Allo program (`dlmsim lower`).

`lower(arch, trace, out_dir)` writes kernels.py (the accelerator), run.py (its driver),
vectors.npz, manifest.json and README.md (see dlmsim.lower.lowering). Nothing here imports
allo: the program runs in the user's Allo environment (Python >= 3.12), optionally started
by `run_driver` with that interpreter.
"""

from dlmsim.lower.lowering import Lowered, lower
from dlmsim.lower.manifest import MANIFEST_VERSION, read_manifest, write_manifest
from dlmsim.lower.runner import run_driver

__all__ = ["MANIFEST_VERSION", "Lowered", "lower", "read_manifest", "run_driver",
           "write_manifest"]
