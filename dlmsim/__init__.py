"""dlmsim: cycle-approximate simulator and design-space explorer for FPGA accelerators of
diffusion language models.

Stable API:
    load_workload(name_or_path, **run_overrides) -> Trace
    load_arch(name_or_path, **dotted_overrides) -> Accelerator
    simulate(arch, trace) -> SimResult
"""

from dlmsim.arch import Accelerator, load_arch
from dlmsim.engine import simulate
from dlmsim.errors import InputError
from dlmsim.results import SimResult
from dlmsim.workloads import Op, Tensor, Trace, load_workload

__all__ = ["Accelerator", "InputError", "Op", "SimResult", "Tensor", "Trace", "load_arch",
           "load_workload", "simulate"]
__version__ = "0.1.0"
