"""Speed and figures of reading Allo-emitted HLS C++ back (dlmsim.lower.cpp, .structure,
.latency). Run: python benchmarks/bench_lower_cpp.py [FILE.cpp ...]

Without files it generates Allo's systolic GEMM after schedule_systolic (needs Allo, Python
>= 3.12; the 32 x 64 case takes minutes to compose): 64 x 64 x 64 on 8 x 8 (~3.4k lines)
and 64 x 64 x 128 on 32 x 64 (~105k lines). Reports the median of REPEATS runs of each step
and what the C++ describes.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from dlmsim.lower.cpp import parse
from dlmsim.lower.latency import estimate
from dlmsim.lower.structure import describe

REPEATS = 3
CASES = [(64, 64, 64, 8, 8), (64, 64, 128, 32, 64)]  # M, K, N, rows, cols


def generated() -> list[tuple[str, str]]:
    try:
        import allo
        from allo.ir.types import int8, int32
        from allo.library.systolic import schedule_systolic, systolic
    except ImportError:
        sys.exit("no Allo here: pass Allo-emitted C++ files (python benchmarks/"
                 "bench_lower_cpp.py FILE.cpp ...)")
    out = []
    for m, k, n, r, c in CASES:
        t0 = time.perf_counter()
        s = allo.customize(systolic, instantiate=[int8, int8, int32, m, k, n, r, c])
        schedule_systolic(s)
        text = str(s.build(target="vhls"))
        print(f"generated systolic {m}x{k}x{n} on {r}x{c} in {time.perf_counter() - t0:.1f} s")
        out.append((f"systolic {m}x{k}x{n} on {r}x{c}", text))
    return out


def median_s(text: str, step) -> tuple[float, float]:
    """Median seconds of parse(text) and of step(program) on that fresh parse (a program
    memoises its analyses, so every run starts from a new one)."""
    parse_s, step_s = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        prog = parse(text)
        t1 = time.perf_counter()
        step(prog)
        parse_s.append(t1 - t0)
        step_s.append(time.perf_counter() - t1)
    return statistics.median(parse_s), statistics.median(step_s)


def main() -> None:
    cases = [(p, Path(p).read_text()) for p in sys.argv[1:]] or generated()
    for name, text in cases:
        prog = parse(text)
        t_parse, t_desc = median_s(text, describe)
        t_est = median_s(text, estimate)[1]
        d = describe(prog)
        cycles, _ = estimate(prog)
        meshes = ", ".join(f"{m['rows']} x {m['cols']} {m['pe']} x{m['instances']}"
                           for m in d["meshes"]) or "none"
        print(f"{name}: {prog.lines} lines; parse {t_parse:.2f} s, describe {t_desc:.2f} s, "
              f"estimate {t_est:.2f} s (median of {REPEATS})")
        print(f"  meshes {meshes}; {d['multipliers']['total']} multipliers; on-chip "
              f"{d['storage']['bytes']:.0f} B + FIFOs {d['storage']['fifo_bytes']:.0f} B; "
              f"estimate {cycles:.0f} cycles")


if __name__ == "__main__":
    main()
