"""`dlmsim lower`: write a design's Allo program (and optionally run it with Allo)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import typer

from dlmsim.cli.common import app, err, out

# Lowered programs are for functional checks and HLS projects of one block; a full-length
# block makes Allo's compose step take minutes and gigabytes (allo.md), so the default caps
# the length. LLaDA's generation settings need seq_len >= gen_len: the cap is >= 128.
DEFAULT_MAX_SEQ_LEN = 128


@app.command()
def lower(
    arch: str = typer.Option(..., "--arch", "-a", help="Bundled arch name or arch YAML."),
    workload: str = typer.Option(..., "--workload", "-w",
                                 help="Bundled model name or model YAML."),
    scope: str = typer.Option("block", help="block (one DDiT block / BERT layer) or forward "
                              "(the block stack)."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Directory to write (default results/lowered/"
                                       "<arch>-<workload>-<scope>)."),
    run: str = typer.Option("none", "--run", help="none, llvm, vhls or csyn (each implies "
                            "the steps before it)."),
    allo_python: str | None = typer.Option(None, "--allo-python",
                                           help="Python with Allo installed (>= 3.12)."),
    seq_len: int | None = typer.Option(
        None, "--seq-len", "-l", help=f"Sequence length (default: the model's, at most "
        f"{DEFAULT_MAX_SEQ_LEN}: Allo's compose time and memory grow with the shapes)."),
    batch: int = typer.Option(1, "--batch", "-b", help="Batch size."),
    seed: int = typer.Option(0, help="Seed of the test vectors."),
):
    """Lower a design to a self-contained Allo program with test vectors and a driver."""
    from dlmsim.arch import load_arch
    from dlmsim.config import resolve
    from dlmsim.errors import InputError
    from dlmsim.lower import lower as do_lower
    from dlmsim.lower.runner import check_python, run_driver, steps_for
    from dlmsim.workloads import load_workload

    steps = steps_for(run)
    a = load_arch(arch)
    if seq_len is None:
        full = load_workload(workload).run_param("seq_len")
        if full is None:
            raise InputError(f"{workload}: dlmsim lower builds the sequence models' blocks "
                             "(MDLM, SEDD, Diffusion-LM, LLaDA); this workload has none")
        seq_len = min(full, DEFAULT_MAX_SEQ_LEN)
        if seq_len < full:
            err.print(f"note: lowering at seq_len {seq_len} (the model runs {full}); "
                      "pass --seq-len to change it", highlight=False)
    t = load_workload(workload, seq_len=seq_len, batch=batch)
    if steps:
        if allo_python is None:
            if importlib.util.find_spec("allo") is None:
                raise InputError(f"--run {run} needs Allo, which this Python "
                                 f"({sys.version.split()[0]}) cannot import; pass "
                                 "--allo-python PATH to an interpreter with Allo (>= 3.12)")
            allo_python = sys.executable
        check_python(allo_python)
    dest = output or Path("results") / "lowered" / f"{a.name}-{t.model}-{scope}"
    with err.status(f"lowering {t.model} onto {a.name} ..."):
        res = do_lower(a, t, dest, scope=scope,
                       arch_source=str(resolve("arch", arch, "arch")),
                       workload_source=str(resolve("workloads", workload, "workload")),
                       seed=seed)
    for w in res.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False)
    p = res.manifest["program"]
    out.print(f"wrote {dest}: top {p['top']}, {len(p['gemms'])} GEMMs on one "
              f"{p['array']['rows']}x{p['array']['cols']} array, "
              f"{len(p['sfu_functions'])} SFU functions; predicted "
              f"{res.manifest['prediction']['cycles']:.0f} cycles", highlight=False)
    for name, n in res.files.items():
        out.print(f"  {name}: {n} lines", highlight=False)
    if not steps:
        return
    failed = False
    for row in run_driver(dest, allo_python, steps):
        if row["ok"]:
            out.print(f"{row['step']}: ok (log {row['log']})", highlight=False)
        else:
            failed = True
            err.print(f"error: {row['step']} failed: {row['error']} (log {row['log']})",
                      markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)
