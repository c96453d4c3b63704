"""One big shared array or several specialised ones, at equal DSP budgets on an Alveo U280.

    python benchmarks/temporal_vs_spatial.py [-o table.md]

The temporal int8-u280 (one array of R x 128 PEs and one SFU) against spatial-int8-u280
(six arrays of R rows and 28 + 12 + 12 + 8 + 36 + 32 = 128 columns, an SFU per op, two
regions on SLR0 and SLR1) at R = 16, 32 and 64: the same PEs and DSPs at every R (the
sweep spec sweeps/u280-temporal-vs-spatial.yaml varies the same). MDLM-small (B 16,
L 1024, T 128) and LLaDA-8B at its bundled run. Prints a markdown table: latency per
sampling run, array and SFU utilisation, and DSP / BRAM36 / URAM per SLR (a temporal
design is one region: its whole-device figures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dlmsim

ROWS = (16, 32, 64)
MDLM = {"batch": 16, "seq_len": 1024, "steps": 128}


def _slrs(s: dict) -> str:
    slrs = sorted({k.split("_")[0] for k in s if k.startswith("slr") and k.endswith("_used")})
    if not slrs:
        return (f"device: {s['dsp_used']:,.0f} / {s['bram36_used']:,.0f} / "
                f"{s['uram_used']:,.0f}")
    return "; ".join(f"{x.upper()}: {s[f'{x}_dsp_used']:,.0f} / {s[f'{x}_bram36_used']:,.0f} /"
                     f" {s[f'{x}_uram_used']:,.0f}" for x in slrs
                     if s.get(f"{x}_dsp_used", 0) or s.get(f"{x}_uram_used", 0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path)
    a = ap.parse_args()
    mdlm = dlmsim.load_workload("mdlm-small", **MDLM)
    llada = dlmsim.load_workload("llada-8b")
    rows = [("| design | R | PEs | DSP (device) | MDLM-small: s/run | array / SFU util | "
             "LLaDA-8B: s/run | array / SFU util | DSP / BRAM36 / URAM per SLR |"),
            "|---|---|---|---|---|---|---|---|---|"]
    for r in ROWS:
        for name, sets in (("int8-u280", {"array.rows": r, "array.cols": 128}),
                           ("spatial-int8-u280", {"array.rows": r})):
            arch = dlmsim.load_arch(name, **sets)
            pes = sum(u.pes for u in arch.compute_units())
            m = dlmsim.simulate(arch, mdlm).summary()
            q = dlmsim.simulate(arch, llada).summary()
            rows.append(f"| {name} | {r} | {pes:,} | {m['dsp_used']:,.0f} "
                        f"({100 * m['dsp_frac']:.0f} %) | {m['latency_run_s']:,.1f} | "
                        f"{100 * m['util_array']:.0f} % / {100 * m['util_sfu']:.0f} % | "
                        f"{q['latency_run_s']:,.1f} | {100 * q['util_array']:.0f} % / "
                        f"{100 * q['util_sfu']:.0f} % | {_slrs(m)} |")
            print(rows[-1], flush=True)
    text = "\n".join(rows) + "\n"
    if a.output:
        a.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
