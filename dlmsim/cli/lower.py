"""`dlmsim lower`: write a design's Allo program (and optionally run and check it with Allo)."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import typer

from dlmsim.cli.common import app, err, out, workload_overrides

# Lowered programs are for functional checks and HLS projects of one block: the llvm check
# runs every MAC on the CPU, so the default caps the length (a user may pass --seq-len).
DEFAULT_MAX_SEQ_LEN = 128
# Memory the lowering may take (numpy arrays of the reference run, the DRAM images and the
# expected outputs); beyond it the command refuses with its estimate.
MAX_LOWER_GIB = 8.0


@app.command()
def lower(
    arch: str = typer.Option(..., "--arch", "-a", help="Bundled arch name or arch YAML."),
    workload: str = typer.Option(..., "--workload", "-w",
                                 help="Bundled model name, model YAML or trace file."),
    scope: str = typer.Option("block", help="block (one DDiT block / BERT layer) or forward "
                              "(the block stack)."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Directory to write (default results/lowered/"
                                       "<arch>-<workload>-<scope>)."),
    run: str = typer.Option("none", "--run", help="Driver steps to run with Allo: none, "
                            "all, or a comma list of llvm, vhls, csyn."),
    check: bool = typer.Option(False, "--check", help="After vhls: read the HLS C++ back, "
                               "compare it with the arch, estimate its latency."),
    allo_python: str | None = typer.Option(None, "--allo-python",
                                           help="Python with Allo installed (>= 3.12)."),
    seq_len: int | None = typer.Option(
        None, "--seq-len", "-l", help=f"Sequence length (default: the model's, at most "
        f"{DEFAULT_MAX_SEQ_LEN})."),
    batch: int = typer.Option(1, "--batch", "-b", help="Batch size."),
    sets: list[str] | None = typer.Option(None, "--set", metavar="KEY=VALUE",
                                          help="Arch override, dotted.key=value."),
    wsets: list[str] | None = typer.Option(
        None, "--workload-set", metavar="KEY=VALUE",
        help="Workload override, dotted.key=value (run.gen_len=16, model.hidden=256)."),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="Seed of the test vectors."),
):
    """Lower a design to a self-contained Allo program with test vectors and a driver."""
    from dlmsim.arch import load_arch
    from dlmsim.config import check_writable, parse_sets, resolve
    from dlmsim.errors import InputError
    from dlmsim.lower import lower as do_lower
    from dlmsim.lower.runner import check_python, run_driver, steps_for
    from dlmsim.workloads import load_workload
    from dlmsim.workloads.tracefile import is_trace_file

    steps = steps_for(run)
    if check and "vhls" not in steps:
        raise InputError("--check reads the HLS C++ of the vhls step: add vhls to --run")
    a = load_arch(arch, **parse_sets(sets))
    if is_trace_file(workload):
        if seq_len is not None or batch != 1 or wsets:
            raise InputError(f"{workload} is a trace file: --seq-len, --batch and "
                             "--workload-set do not apply (it is lowered as written)")
        t = load_workload(workload)
    else:
        over = workload_overrides(wsets, "--workload-set", seq_len=seq_len, batch=batch)
        probe = load_workload(workload, **{k: v for k, v in over.items() if k != "seq_len"})
        full = probe.run_param("seq_len")
        if full is None:
            raise InputError(f"{workload}: dlmsim lower builds the sequence models' blocks "
                             "(MDLM, SEDD, Diffusion-LM, LLaDA); this workload has none")
        if seq_len is None:
            over["seq_len"] = min(full, DEFAULT_MAX_SEQ_LEN)
            if over["seq_len"] < full:
                err.print(f"note: lowering at seq_len {over['seq_len']} (the model runs "
                          f"{full}); pass --seq-len to change it", highlight=False)
        gen = probe.run_param("gen_len")
        if gen is not None and gen > over["seq_len"] and not any(
                k.endswith("gen_len") for k in over):
            g = over["run.gen_len"] = over["seq_len"]
            block = probe.run_param("block_len")
            if block and g % block and not any(k.endswith("block_len") for k in over):
                over["run.block_len"] = math.gcd(block, g)
            err.print(f"note: gen_len {gen} > seq_len {g}: lowering with gen_len {g}",
                      highlight=False)
        t = load_workload(workload, **over)
    need = _lower_bytes(t, scope)
    if need > MAX_LOWER_GIB * 2**30:
        raise InputError(f"lowering {t.model} ({scope}) needs about {need / 2**30:.1f} GiB "
                         f"of memory (more than {MAX_LOWER_GIB:g} GiB): use --seq-len, "
                         "--batch or --workload-set model.* for a smaller instance")
    if steps:
        if allo_python is None:
            if importlib.util.find_spec("allo") is None:
                raise InputError(f"--run {run} needs Allo, which this Python "
                                 f"({sys.version.split()[0]}) cannot import; pass "
                                 "--allo-python PATH to an interpreter with Allo (>= 3.12)")
            allo_python = sys.executable
        check_python(allo_python)
    dest = output or Path("results") / "lowered" / f"{a.name}-{t.model}-{scope}"
    check_writable(dest, is_dir=True)
    with err.status(f"lowering {t.model} onto {a.name} ..."):
        res = do_lower(a, t, dest, scope=scope,
                       arch_source=str(resolve("arch", arch, "arch")),
                       workload_source=str(resolve("workloads", workload, "workload")),
                       seed=seed)
    for w in res.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False)
    m = res.manifest
    p = m["program"]
    if p["kind"] == "spatial":
        arrays = ", ".join(f"{n} {x['rows']}x{x['cols']}" for n, x in p["arrays"].items())
        out.print(f"wrote {dest}: top {p['top']}, {len(p['processes'])} processes in one "
                  f"dataflow region, {len(p['arrays'])} labelled arrays ({arrays}), "
                  f"{len(p['streams'])} streams; predicted {m['prediction']['cycles']:,.0f} "
                  "cycles", highlight=False)
    else:
        out.print(f"wrote {dest}: kernel accel, {len(p['instrs'])} ops on one "
                  f"{p['array']['rows']}x{p['array']['cols']} array "
                  f"({p['array']['rows']}x{p['array']['pe_cols']} PEs); predicted "
                  f"{m['prediction']['cycles']:,.0f} cycles; output SQNR vs fp32 "
                  f"{m['numerics']['sqnr_vs_fp32_db']:.1f} dB", highlight=False)
    for name, n in res.files.items():
        out.print(f"  {name}: {n} lines", highlight=False)
    if not steps:
        return
    est = p.get("llvm_bytes", 0)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if "llvm" in steps and est > 0.8 * ram:
        raise InputError(f"--run llvm would take about {est / 2**30:.1f} GiB (on the CPU every "
                         f"FIFO of a kernel call is a whole buffer); this machine has "
                         f"{ram / 2**30:.1f} GiB: lower a smaller instance (--seq-len, "
                         "--workload-set model.*) or run vhls alone")
    failed = False
    with err.status(f"running {', '.join(steps)} with {allo_python} ..."):
        rows = run_driver(dest, allo_python, steps)
    for row in rows:
        if row["ok"]:
            out.print(f"{row['step']}: ok (log {row['log']})", highlight=False)
        else:
            failed = True
            err.print(f"error: {row['step']} failed: {row['error']} (log {row['log']})",
                      markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)
    if check:
        from dlmsim.lower.check import check_lowered, format_report

        rep = check_lowered(dest, a)
        out.print(format_report(rep), highlight=False, markup=False)
        if rep["failures"]:
            raise typer.Exit(1)


def _lower_bytes(t, scope: str) -> float:
    """Bytes the lowering holds: float32 weights and codes, every activation of the fp32
    reference run, the DRAM image and one expected copy of every output (x ~4 overall)."""
    from dlmsim.lower.design import scope_ops

    ops = scope_ops(t, scope)
    weights = {x.name: x.numel for op in ops for x in op.inputs if x.role == "weight"}
    acts = sum(x.numel for op in ops for x in op.outputs)
    return 4.0 * (2 * sum(weights.values()) + 4 * acts)
