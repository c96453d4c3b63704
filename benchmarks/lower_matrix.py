"""Every bundled preset x every sequence family, lowered and run under a real Allo.

    python benchmarks/lower_matrix.py --allo-python ~/.cache/dlmsim-allo/venv/bin/python \
        -o results/lower-matrix [--arch A,B] [--workload W,X]

For each case: `dlmsim lower` at a small size (batch 1, 32 tokens; LLaDA with hidden 512,
4 heads, ffn 1376), `run.py llvm` (every op against the emulator) and `run.py vhls` (HLS C++
and the Vitis project) with their wall time and peak memory, then `dlmsim lower --check`'s
reader (structure against the arch, loop-nest estimate against the prediction). Writes
OUT/table.md and prints it. Cases run one after another; expect a few minutes per case on a
busy 2-core machine, most of it in vhls for the large arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRESETS = ["sda-zcu102", "sda-style-2048-zcu102", "int8-zcu102", "int8-u280", "fp32-u280",
           "w4a8-kv260"]
WORKLOADS = ["mdlm-tiny", "diffusion-lm-e2e", "sedd-small", "llada-8b"]
SMALL = {"batch": 1, "seq_len": 32}
LLADA = {**SMALL, "run.gen_len": 32, "model.hidden": 512, "model.heads": 4, "model.ffn": 1376}
# Runs `python run.py STEP` and reports the child's peak resident memory (KiB).
WRAP = ("import resource, subprocess, sys; r = subprocess.run([sys.argv[1], 'run.py', "
        "sys.argv[2]]); print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        " sys.exit(r.returncode)")


TIMEOUT = 3600  # s a step may take (int8-u280's vhls: about 22 min on a busy 2-core machine)


def step(python: str, d: Path, name: str) -> dict:
    """`run.py name` in its own process group, killed whole after TIMEOUT (a crash inside
    Allo's LLVM can leave its symbolizer waiting forever)."""
    t = time.time()
    p = subprocess.Popen([sys.executable, "-c", WRAP, python, name], cwd=d, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        err += f"\ntimed out after {TIMEOUT} s\n"
    (d / f"{name}.log").write_text(out + err)
    peak = next((int(x.split()[1]) for x in out.splitlines() if x.startswith("PEAK")), 0)
    res = d / "results" / f"{name}.json"
    ok = p.returncode == 0 and res.is_file() and json.loads(res.read_text()).get("ok")
    return {"ok": bool(ok), "s": time.time() - t, "peak_mib": peak / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--allo-python", required=True)
    ap.add_argument("-o", "--output", default="results/lower-matrix")
    ap.add_argument("--arch", default=",".join(PRESETS))
    ap.add_argument("--workload", default=",".join(WORKLOADS))
    a = ap.parse_args()
    import dlmsim
    from dlmsim.lower import lower
    from dlmsim.lower.check import check_lowered

    out = Path(a.output)
    rows = [("| case | llvm | vhls | check | C++ lines | estimate / prediction (cycles) | "
             "llvm s / MiB | vhls s / MiB |"), "|---|---|---|---|---|---|---|---|"]
    for arch_name in a.arch.split(","):
        for wl in a.workload.split(","):
            arch = dlmsim.load_arch(arch_name)
            t = dlmsim.load_workload(wl, **(LLADA if wl == "llada-8b" else SMALL))
            d = out / f"{arch_name}--{wl}"
            lower(arch, t, d)
            llvm, vhls = step(a.allo_python, d, "llvm"), step(a.allo_python, d, "vhls")
            chk, lines, est = "-", "-", "-"
            if vhls["ok"]:
                rep = check_lowered(d, arch)
                chk = "pass" if not rep["failures"] else "FAIL: " + "; ".join(rep["failures"])
                lines = f"{rep['lines']:,}"
                e = rep["estimate"]
                est = (f"{e['cycles']:,.0f} / {e['prediction_cycles']:,.0f} "
                       f"({e['ratio']:.2f}x)")
            row = (f"| {arch_name} x {wl} | {'ok' if llvm['ok'] else 'FAIL'} | "
                   f"{'ok' if vhls['ok'] else 'FAIL'} | {chk} | {lines} | {est} | "
                   f"{llvm['s']:.0f} / {llvm['peak_mib']:,.0f} | "
                   f"{vhls['s']:.0f} / {vhls['peak_mib']:,.0f} |")
            rows.append(row)
            print(row, flush=True)
    (out / "table.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
