"""`dlmsim simulate`: latency, utilisation, bounds and resources of one design on one model."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from dlmsim.cli.common import app, err, fmt_num, fmt_seconds, out, workload_overrides


class SimFmt(str, Enum):
    table = "table"
    json = "json"


def _secs(s: float) -> str:
    return fmt_seconds(s, digits=5)


@app.command()
def simulate(
    arch: str = typer.Option(..., "--arch", "-a", help="Bundled arch name or arch YAML path."),
    workload: str = typer.Option(..., "--workload", "-w", help="Model name, model or trace YAML."),
    batch: int | None = typer.Option(None, "--batch", "-b", help="Batch size."),
    seq_len: int | None = typer.Option(None, "--seq-len", "-l", help="Sequence length."),
    steps: int | None = typer.Option(None, "--steps", "-t", help="Sampling steps."),
    cache: bool | None = typer.Option(None, "--cache/--no-cache", help="Sampler cache."),
    sets: list[str] | None = typer.Option(None, "--set", metavar="KEY=VALUE",
                                          help="Arch override, dotted.key=value."),
    wsets: list[str] | None = typer.Option(
        None, "--workload-set", metavar="KEY=VALUE",
        help="Workload override, dotted.key=value (run.gen_len=32)."),
    timeline: Path | None = typer.Option(None, "--timeline", help="Gantt chart of one block."),
    trace_memory: Path | None = typer.Option(
        None, "--trace-memory", help="CSV of every DMA transfer with byte addresses (layout: "
        "dlmsim.memtrace), for a DRAM simulator."),
    fmt: SimFmt = typer.Option(SimFmt.table, "--format", "-f", help="Output format."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Directory for summary.json, ops.csv, "
                                       "timeline.csv, arch.yaml."),
    top: int = typer.Option(15, min=0, help="Per-op rows to show (largest run time first); "
                            "0 = all."),
):
    """Simulate a full sampling run of WORKLOAD on ARCH."""
    import dlmsim
    from dlmsim.config import check_writable, parse_sets, write_atomic

    acc = dlmsim.load_arch(arch, **parse_sets(sets))
    trace = dlmsim.load_workload(workload, **workload_overrides(
        wsets, "--workload-set", batch=batch, seq_len=seq_len, steps=steps, cache=cache))
    # Outputs are checked before the simulation, which a bad path would otherwise waste.
    if output is not None:
        check_writable(output, is_dir=True)
    if timeline is not None:
        from dlmsim.plots import check_figure_path

        check_figure_path(timeline)
    if trace_memory is not None:
        check_writable(trace_memory)
    res = dlmsim.simulate(acc, trace, timeline=bool(timeline or output),
                          memory_trace=trace_memory is not None)
    if trace_memory is not None:
        import pandas as pd

        from dlmsim.memtrace import COLUMNS

        mt = pd.DataFrame(res.memory_trace, columns=list(COLUMNS))
        write_atomic(trace_memory, mt.to_csv(index=False))
        err.print(f"wrote {len(mt)} DMA transfers to {trace_memory}", highlight=False)
    if output is not None:
        import pandas as pd

        write_atomic(output / "summary.json", res.to_json())
        write_atomic(output / "ops.csv", res.ops.to_csv(index=False))
        tl = pd.DataFrame(res.timeline, columns=["unit", "op", "chunk", "start_cycle",
                                                 "end_cycle"])
        write_atomic(output / "timeline.csv", tl.to_csv(index=False))
        write_atomic(output / "arch.yaml", _arch_yaml(acc))
        err.print(f"wrote summary.json, ops.csv, timeline.csv, arch.yaml to {output}",
                  highlight=False)
    if timeline is not None:
        from dlmsim import plots

        # One block when the blocks repeat (they are simulated once), else the whole pass.
        what = "one block" if trace.n_blocks > 1 else "one forward pass"
        plots.timeline(res.timeline, timeline, title=f"{acc.name} / {trace.model}: {what}",
                       clock_mhz=acc.clock_mhz)
        err.print(f"wrote {timeline}", highlight=False)
    if fmt == SimFmt.json:
        out.print_json(json.dumps(res.summary(), default=float))
        return
    _print_tables(res, acc, top)


def _arch_yaml(acc) -> str:
    import yaml

    return yaml.safe_dump(acc.model_dump(mode="json", exclude_none=True), sort_keys=False)


def _stall(r) -> str:
    """The largest stall cause of an op row and its cycles, e.g. "dram 1.2kcyc"."""
    if r.stall_cause == "none":
        return "-"
    return f"{r.stall_cause} {fmt_num(getattr(r, f'stall_{r.stall_cause}_cycles'))}cyc"


def _print_tables(res, acc, top: int) -> None:
    s = res.summary()
    run = ", ".join(f"{k}={v}" for k, v in res.run.items())
    t = Table(title=f"{res.arch} on {acc.device} running {res.workload} ({run})",
              header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    cal = res.calibration_time_factor if res.cycle_factor is not None else None
    if cal:
        clk = f", {res.calibrated_clock_mhz:g} MHz" if res.calibrated_clock_mhz else ""
        t.add_column(f"calibrated (x{res.cycle_factor:.3g} cycles{clk})", justify="right")

    def row(name, value, cal_value=""):
        t.add_row(name, value, *([cal_value] if cal else []))

    row("clock", f"{acc.clock_mhz:g} MHz",
        f"{res.calibrated_clock_mhz:g} MHz" if cal and res.calibrated_clock_mhz else "")
    row("latency per forward pass", _secs(res.forward_s),
        _secs(res.forward_s * cal) if cal else "")
    row("latency per sampling step (mean)", _secs(res.step_s),
        _secs(res.step_s * cal) if cal else "")
    row("latency per sampling run", _secs(res.seconds),
        _secs(res.seconds * cal) if cal else "")
    row("forward passes per run", f"{res.forward_passes:.2f} passes")
    row("sampling steps", f"{res.steps} steps")
    unit = "images/s" if "image_size" in res.run else "tokens/s"  # a U-Net makes images
    row("throughput", f"{res.tokens_per_s:.4g} {unit}",
        f"{res.tokens_per_s / cal:.4g} {unit}" if cal else "")
    row("array utilisation", f"{s['util_array']:.1%}")
    row("SFU utilisation", f"{s['util_sfu']:.1%}")
    row("memory bandwidth utilisation", f"{s['util_memory_bw']:.1%}")
    row("DRAM traffic per run", fmt_num(s["dram_bytes_per_run"]) + "B")
    out.print(t)

    ops = res.ops.copy()
    total = ops.run_cycles.sum()
    ops["share"] = ops.run_cycles / total if total else 0.0
    ops = ops.sort_values("run_cycles", ascending=False)
    shown = ops if top == 0 else ops.head(top)
    per = Table(title=f"per-op cost ({'all' if top == 0 else f'top {len(shown)} of'} "
                f"{len(ops)} rows; cycles at {acc.clock_mhz:g} MHz)", header_style="bold")
    for col in ("op", "phase", "unit", "dataflow", "runs/run", "span each", "roofline each",
                "added each", "DRAM each", "bound", "stall each", "share of run"):
        per.add_column(col, justify="left" if col in ("op", "phase", "unit", "dataflow",
                                                       "bound", "stall each") else "right")
    for r in shown.itertuples(index=False):
        per.add_row(r.name, r.phase, r.unit, r.dataflow or "-", f"{r.count:.4g}",
                    fmt_num(r.span_cycles) + "cyc", fmt_num(r.roofline_cycles) + "cyc",
                    fmt_num(r.cycles) + "cyc",
                    fmt_num(r.dram_read_bytes + r.dram_write_bytes) + "B", r.bound,
                    _stall(r), f"{r.share:.1%}")
    out.print(per)
    out.print("stall: cycles the op's unit waited before its chunks, by the largest cause "
              "(dram: inputs loading; capacity: tile pool full; port: no buffer port free; "
              "dependency: a producer not done).", highlight=False)
    out.print("span: first event to last of the op; added: cycles the op adds to the run "
              "beyond the ops before it (overlap hides the rest); share: of the run.",
              highlight=False)

    bounds = ops.groupby("bound").run_cycles.sum() / total if total else None
    if bounds is not None:
        out.print("time by bound: " + ", ".join(f"{k} {v:.1%}" for k, v in bounds.items()),
                  highlight=False)

    rt = Table(title=f"resources on {acc.device} (buffer in {res.resources.buffer_memory})",
               header_style="bold")
    calr = res.calibrated_resources
    for col in ("resource", "used", "available", "used %") + (("calibrated",) if calr else ()):
        rt.add_column(col, justify="left" if col == "resource" else "right")
    for k, v in res.resources.used.items():
        avail = res.resources.available[k]
        frac = res.resources.fraction[k]
        rt.add_row(k.upper(), f"{v:,.0f}", f"{avail:,}", f"{frac:.1%}" if avail else "-",
                   *([f"{calr.used[k]:,.0f}"] if calr else []))
    out.print(rt)
    _print_memories(res, acc)
    if not res.resources.fits:
        out.print(f"[bold red]does not fit:[/] {res.resources.describe_over()}")


def _print_memories(res, acc) -> None:
    """The board's off-chip memories, and the run's footprint in the one the design uses."""
    from dlmsim.resources import gib

    dev = acc.dev()
    fp = res.dram
    t = Table(title=f"off-chip memory on {dev.board} (the run's footprint against it)",
              header_style="bold")
    for col in ("memory", "kind", "capacity", "reserved", "usable", "peak", "weights",
                "activations", "state", "footprint", "of usable"):
        t.add_column(col, justify="left" if col in ("memory", "kind") else "right")
    for name, mem in dev.memories.items():
        used = fp is not None and fp.memory == name
        figures = ([gib(fp.weights_bytes), gib(fp.activations_bytes), gib(fp.state_bytes),
                    gib(fp.total_bytes), f"{fp.total_bytes / fp.usable_bytes:.1%}"]
                   if used else ["-"] * 5)
        t.add_row(name + (" (used)" if used else ""), mem.kind, f"{mem.capacity_gib:g} GiB",
                  f"{mem.reserved_gib:g} GiB", gib(mem.usable_bytes), f"{mem.peak_gbps:g} GB/s",
                  *figures)
    out.print(t)
