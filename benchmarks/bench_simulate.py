"""Wall time of full design points: MDLM-small (B 16, L 1024, T 128) on every bundled arch,
and how it grows with batch, length and steps. Run: python benchmarks/bench_simulate.py

Reports the median of REPEATS runs after one warm-up run (imports, device cache).
"""

from __future__ import annotations

import statistics
import time

import dlmsim
from dlmsim.config import bundled_names

REPEATS = 7


def median_s(arch, trace) -> float:
    """Median wall time of simulate; NaN (with the reason printed) for a design the run's
    DRAM footprint does not fit."""
    try:
        dlmsim.simulate(arch, trace)
    except dlmsim.InputError as e:
        print(f"  ({e})")
        return float("nan")
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        dlmsim.simulate(arch, trace)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    trace = dlmsim.load_workload("mdlm-small", batch=16, seq_len=1024, steps=128)
    print(f"MDLM-small B16 L1024 T128, median of {REPEATS} runs")
    for name in bundled_names("arch"):
        s = median_s(dlmsim.load_arch(name), trace)
        print(f"  {name:18s} {s * 1e3:8.1f} ms per design point")
    arch = dlmsim.load_arch("sda-style-2048-zcu102")
    print("scaling on sda-style-2048-zcu102:")
    for kw in ({"batch": 1}, {"batch": 64}, {"seq_len": 128}, {"seq_len": 4096},
               {"steps": 1000}, {"steps": 10000}):
        t = dlmsim.load_workload("mdlm-small", **{"batch": 16, "seq_len": 1024, "steps": 128,
                                                  **kw})
        print(f"  {kw!s:20s} {median_s(arch, t) * 1e3:8.1f} ms")
    for wl in ("diffusion-lm-e2e", "llada-8b", "mdlm-medium"):
        t = dlmsim.load_workload(wl)
        print(f"  {wl:20s} {median_s(arch, t) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
