"""SDA's dataflow question: under `array.policy: auto`, do convolutions pick WS and matmuls OS?

Simulates Stable Diffusion v1.5's U-Net (one 512x512 image, 50 steps, guidance) and MDLM-small
(batch 16, length 1024, 128 steps) with the policy forced to OS, to WS and left to `auto`,
and prints, for `auto`, how many GEMMs of each kind pick each dataflow per forward pass and
their share of the run time. Markdown on stdout (the README's table comes from here):

    python benchmarks/sda_dataflow.py                          # the bundled SDA-like preset
    python benchmarks/sda_dataflow.py --set buffer.bytes_per_cycle=512
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import dlmsim
from dlmsim.config import parse_sets

WORKLOADS = ("sd15-unet", "mdlm-small")


def kind(op) -> str:
    if op.fn == "conv2d":
        kh, kw = op.inputs[1].shape[2:]
        return f"conv {kh}x{kw}"
    return "attention matmul" if op.fn == "matmul" else "linear"


def rows(arch_name: str, sets: dict, workload: str) -> list[str]:
    trace = dlmsim.load_workload(workload)
    ops = {o.name: o for o in trace.ops}
    seconds, auto = {}, None
    for policy in ("os", "ws", "auto"):
        res = dlmsim.simulate(dlmsim.load_arch(arch_name, **{**sets, "array.policy": policy}),
                              trace)
        seconds[policy] = res.seconds
        auto = res
    per = trace.forward_passes
    count = defaultdict(lambda: {"os": 0.0, "ws": 0.0, "cycles": 0.0})
    arr = auto.ops[auto.ops.unit == "array"]
    for r in arr.itertuples(index=False):
        op = ops.get(r.name) or ops[r.name.replace("*", "0")]
        c = count[kind(op)]
        c[r.dataflow] += r.count / (per if r.phase == "forward" else 1)
        c["cycles"] += r.run_cycles
    total = auto.ops.run_cycles.sum()
    out = [(f"| {workload} | OS {seconds['os']:.4g} s, WS {seconds['ws']:.4g} s, "
            f"auto {seconds['auto']:.4g} s | | | |")]
    for k in sorted(count):
        c = count[k]
        out.append(f"| | {k} | {c['os']:.0f} | {c['ws']:.0f} | {c['cycles'] / total:.1%} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sda-zcu102")
    ap.add_argument("--set", action="append", default=[], help="arch override key=value")
    args = ap.parse_args()
    sets = parse_sets(args.set)
    title = args.arch + "".join(f", {k}={v}" for k, v in sets.items())
    print(f"`auto` on {title}: GEMMs per forward pass choosing each dataflow\n")
    print("| workload (latency per run) | GEMM kind | OS | WS | share of run time |")
    print("|---|---|---|---|---|")
    for w in WORKLOADS:
        print("\n".join(rows(args.arch, sets, w)))


if __name__ == "__main__":
    main()
