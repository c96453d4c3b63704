"""Every bundled preset x MDLM-small / Diffusion-LM E2E / LLaDA-8B: average and peak power,
energy per run, tokens per joule, and the A100 and RTX 4090 roofline estimates of the same
run with both ratios; then every power coefficient with its source, once.

    python benchmarks/presets_table.py is the latency table; this is its energy twin:
    python benchmarks/power_table.py [-o table.md] [--gpu-efficiency 0.5]

Workloads run at their bundled run parameters. A design that cannot run (weights beyond the
board's DRAM) shows the reason in a numbered note. GPU figures are roofline estimates at the
stated efficiency with power at TDP (dlmsim.gpu), not measurements.
"""

from __future__ import annotations

import argparse
import sys

import dlmsim
from dlmsim import gpu, power
from dlmsim.arch import load_device
from dlmsim.config import bundled_dir, bundled_names

WORKLOADS = ("mdlm-small", "diffusion-lm-e2e", "llada-8b")
GPUS = ("a100", "rtx4090")


def rows(efficiency: float) -> tuple[list[list[str]], list[str]]:
    notes: list[str] = []
    out = []
    base = {(w, g): gpu.estimate(dlmsim.load_workload(w), gpu.load_gpu(g),
                                 efficiency=efficiency) for w in WORKLOADS for g in GPUS}
    for name in bundled_names("arch"):
        arch = dlmsim.load_arch(name)
        for w in WORKLOADS:
            try:
                r = dlmsim.simulate(arch, dlmsim.load_workload(w))
            except dlmsim.InputError as e:
                reason = str(e).split(": ", 1)[-1]
                if reason not in notes:
                    notes.append(reason)
                out.append([name, w, f"infeasible [{notes.index(reason) + 1}]"] + [""] * 8)
                continue
            p = r.power
            cells = [name, w, f"{r.seconds:.4g} s", f"{p.average_w:.3g} W",
                     f"{p.peak_w:.3g} W", f"{p.energy_j:.4g} J", f"{p.tokens_per_j:.3g}"]
            for g in GPUS:
                b = base[(w, g)]
                cells.append(f"{b.seconds:.3g} s, {b.tokens_per_j:.3g}/J")
                cells.append(f"{b.seconds / r.seconds:.3g}x / {p.tokens_per_j / b.tokens_per_j:.3g}x")
            out.append(cells)
    return out, notes


def sources() -> list[list[str]]:
    out = [[c.name, f"{c.value:g} {c.unit}", "yes" if c.confirmed else "(u)", c.source]
           for c in power.COEFFICIENTS.values()]
    for path in sorted((bundled_dir("arch") / "devices").glob("*.yaml")):
        d = load_device(path.stem)
        out.append([f"{d.name} static + platform",
                    f"{d.power.static_w:g} W + {d.power.platform_w:g} W",
                    "yes" if d.power.confirmed else "(u)", d.power.source])
    for g in gpu.gpu_names():
        x = gpu.load_gpu(g)
        out.append([f"GPU {g}", ", ".join(f"{k} {v:g}" for k, v in x.peak_tflops.items())
                    + f" TFLOP/s; {x.memory.bandwidth_gbps:g} GB/s; {x.tdp_w:g} W", "datasheet",
                    x.source])
    out.append(["GPU efficiency", f"{gpu.DEFAULT_EFFICIENCY:g} of the roofline", "(u)",
                "an assumption (dlmsim.gpu); --gpu-measured-s replaces it"])
    return out


def _md(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in body]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", help="write the Markdown here instead of stdout")
    ap.add_argument("--gpu-efficiency", type=float, default=gpu.DEFAULT_EFFICIENCY)
    a = ap.parse_args()
    body, notes = rows(a.gpu_efficiency)
    head = ["preset", "workload", "latency/run", "power", "peak", "energy/run", "tokens/J"]
    for g in GPUS:
        head += [f"{g} (est.)", f"{g}: speed / tokens/J ratio"]
    lead = (f"GPU estimates at {a.gpu_efficiency:g} of the roofline, power at TDP; ratio: "
            "GPU time / FPGA time, FPGA tokens/J / GPU tokens/J.")
    text = [lead, "", _md(head, body)]
    if notes:
        text += [""] + [f"[{i + 1}] {n}" for i, n in enumerate(notes)]
    text += ["", _md(["coefficient", "value", "confirmed", "source"], sources())]
    md = "\n".join(text) + "\n"
    if a.output:
        from dlmsim.config import write_atomic

        write_atomic(a.output, md)
    else:
        sys.stdout.write(md)


if __name__ == "__main__":
    main()
