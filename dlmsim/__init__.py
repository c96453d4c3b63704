"""dlmsim: cycle-approximate simulator and design-space explorer for FPGA accelerators of
diffusion language models.

Stable API:
    load_workload(name_or_path, **run_overrides) -> Trace
"""

from dlmsim.errors import InputError
from dlmsim.workloads import Op, Tensor, Trace, load_workload

__all__ = ["InputError", "Op", "Tensor", "Trace", "load_workload"]
__version__ = "0.1.0"
