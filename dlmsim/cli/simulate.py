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


GpuPrecision = Enum("GpuPrecision", {p: p for p in ("fp32", "tf32", "bf16", "fp16", "fp8",
                                                    "int8")}, type=str)


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
    baseline: str | None = typer.Option(
        None, "--baseline", metavar="GPU", help="GPU roofline estimate of the same run "
        "beside the design (a100, h100, rtx4090, jetson-orin): an estimate, not a measurement."),
    gpu_efficiency: float | None = typer.Option(
        None, "--gpu-efficiency", help="Fraction of the GPU roofline achieved (default 0.5).",
        show_default=False),
    gpu_measured_s: float | None = typer.Option(
        None, "--gpu-measured-s", help="A measured GPU run time (s): sets the efficiency to "
        "roofline / measured."),
    gpu_precision: GpuPrecision | None = typer.Option(
        None, "--gpu-precision", help="GPU precision (default: the model's, else bf16)."),
):
    """Simulate a full sampling run of WORKLOAD on ARCH."""
    import dlmsim
    from dlmsim.config import check_writable, parse_sets, write_atomic
    from dlmsim.errors import InputError

    acc = dlmsim.load_arch(arch, **parse_sets(sets))
    trace = dlmsim.load_workload(workload, **workload_overrides(
        wsets, "--workload-set", batch=batch, seq_len=seq_len, steps=steps, cache=cache))
    gpu_opts = {"--gpu-efficiency": gpu_efficiency, "--gpu-measured-s": gpu_measured_s,
                "--gpu-precision": gpu_precision}
    base = None
    if baseline is not None:
        from dlmsim import gpu

        base = gpu.estimate(trace, gpu.load_gpu(baseline),
                            gpu_precision.value if gpu_precision else None, gpu_efficiency,
                            gpu_measured_s)
    elif any(v is not None for v in gpu_opts.values()):
        given = next(k for k, v in gpu_opts.items() if v is not None)
        raise InputError(f"{given} needs --baseline GPU")
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
    summary = res.summary()
    if base is not None:
        summary.update(base.summary(res.seconds, res.power.tokens_per_j))
    if output is not None:
        import pandas as pd

        write_atomic(output / "summary.json", json.dumps(summary, indent=1, default=float))
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
                       clock_mhz=acc.clock_mhz, lanes=[u.name for u in acc.compute_units()])
        err.print(f"wrote {timeline}", highlight=False)
    if fmt == SimFmt.json:
        out.print_json(json.dumps(summary, default=float))
        return
    _print_tables(res, acc, top)
    _print_power(res, acc)
    if base is not None:
        _print_baseline(res, base)


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
    unit = f"{_per_token_unit(res)}s/s"
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
              "dependency: a producer not done; fifo_empty: a stream's producer not done; "
              "fifo_full: the stream's consumer has no room).", highlight=False)
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
    if res.units:
        _print_spatial(res, acc)
    _print_memories(res, acc)
    if not res.resources.fits:
        out.print(f"[bold red]does not fit:[/] {res.resources.describe_over()}")


def _print_spatial(res, acc) -> None:
    """Per unit, per region and per SLR figures of a spatial design."""
    units = res.unit_table()
    t = Table(title=f"units ({len(units)}; busy and critical time per sampling run)",
              header_style="bold")
    for col in ("unit", "kind", "region", "SLR", "busy", "utilisation", "MAC util.",
                "on critical path", "DSP", "BRAM36", "URAM", "LUT"):
        t.add_column(col, justify="left" if col in ("unit", "kind", "region") else "right")
    for r in units.itertuples(index=False):
        t.add_row(r.unit, r.kind, r.region, _slr(r.slr), _secs(r.busy_s), f"{r.util:.1%}",
                  "-" if r.kind != "array" else f"{r.mac_util:.1%}",
                  _secs(r.critical_s), f"{r.dsp:,.0f}", f"{r.bram36:,.1f}", f"{r.uram:,.0f}",
                  f"{r.lut:,.0f}")
    out.print(t)
    regions = res.region_table()
    t = Table(title="dataflow regions (critical stage: the unit busy longest)",
              header_style="bold")
    for col in ("region", "SLR", "units", "on critical path", "share of run",
                "critical stage", "its busy time", "mean utilisation", "DSP", "BRAM36",
                "URAM", "LUT"):
        t.add_column(col, justify="left" if col in ("region", "critical stage") else "right")
    for r in regions.itertuples(index=False):
        t.add_row(r.region, _slr(r.slr), str(r.units), _secs(r.critical_s),
                  f"{r.critical_s / res.seconds:.1%}", r.critical_stage,
                  _secs(r.stage_busy_s), f"{r.util:.1%}", f"{r.dsp:,.0f}",
                  f"{r.bram36:,.0f}", f"{r.uram:,.0f}", f"{r.lut:,.0f}")
    out.print(t)
    rs = res.resources
    if rs.slr_used:
        t = Table(title=f"SLRs of {acc.device} (used / available to the design)",
                  header_style="bold")
        for col in ("SLR", "regions", "DSP", "BRAM36", "URAM", "LUT", "FF"):
            t.add_column(col, justify="left" if col in ("SLR", "regions") else "right")
        for i, (used, avail) in enumerate(zip(rs.slr_used, rs.slr_available)):
            names = ", ".join(r for r, s in rs.placement.items() if s == i) or "-"
            t.add_row(f"SLR{i}", names, *(
                f"{used[k]:,.0f} / {avail[k]:,} ({used[k] / avail[k]:.0%})" if avail[k]
                else f"{used[k]:,.0f} / 0" for k in ("dsp", "bram36", "uram", "lut", "ff")))
        out.print(t)


def _slr(v) -> str:
    """An SLR index from a table (None or NaN: placed by the tools)."""
    import math

    return "-" if v is None or math.isnan(v) else str(int(v))


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


def _per_token_unit(res) -> str:
    return "image" if "image_size" in res.run else "token"  # a U-Net makes images


def _print_power(res, acc) -> None:
    """Power, energy per forward / step / run, tokens per joule, and the energy breakdown."""
    p = res.power
    dev = acc.dev()
    tok = _per_token_unit(res)
    t = Table(title=f"power and energy (dlmsim.power; {dev.name}'s static power "
              f"{'from a report' if dev.power.confirmed else 'a scaled, unconfirmed figure'})",
              header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("average power", f"{p.average_w:.3g} W")
    t.add_row("  of which static (PL static + platform)",
              f"{dev.power.static_w + dev.power.platform_w:.3g} W")
    t.add_row("peak power (every unit busy, channel saturated)", f"{p.peak_w:.3g} W")
    t.add_row("energy per forward pass", f"{p.by_phase['forward']:.4g} J")
    t.add_row("energy per sampling step (mean)", f"{p.by_phase['step']:.4g} J")
    t.add_row("energy per sampling run", f"{p.energy_j:.4g} J")
    t.add_row(f"energy per {tok}", f"{p.energy_j / max(p.tokens_per_run, 1) * 1e3:.4g} mJ")
    t.add_row(f"{tok}s per joule", f"{p.tokens_per_j:.4g} {tok}s/J")
    out.print(t)
    b = Table(title="energy per sampling run by unit and by op kind", header_style="bold")
    for col in ("unit", "energy", "share", "op kind", "energy ", "share "):
        b.add_column(col, justify="left" if col in ("unit", "op kind") else "right")
    units = sorted(p.by_unit.items(), key=lambda kv: -kv[1])
    kinds = sorted(p.by_kind.items(), key=lambda kv: -kv[1])
    total = p.energy_j or 1.0
    for i in range(max(len(units), len(kinds))):
        u = [units[i][0], f"{units[i][1]:.4g} J", f"{units[i][1] / total:.1%}"] \
            if i < len(units) else ["", "", ""]
        k = [kinds[i][0], f"{kinds[i][1]:.4g} J", f"{kinds[i][1] / total:.1%}"] \
            if i < len(kinds) else ["", "", ""]
        b.add_row(*u, *k)
    out.print(b)
    out.print("static and clock energy are charged to op kinds by their share of run time; "
              "off-chip energy per bit by memory technology (coefficients and sources: "
              "dlmsim.power.COEFFICIENTS).", highlight=False)


def _print_baseline(res, base) -> None:
    tok = _per_token_unit(res)
    g = base.gpu
    how = (f"efficiency {base.efficiency:.3g} from the measured {base.seconds:.4g} s"
           if base.measured else f"at {base.efficiency:.3g} of its roofline")
    t = Table(title=f"GPU baseline: {g.board}, {base.precision}, {how} -- a roofline "
              "estimate from the datasheet, not a measurement", header_style="bold")
    for col in ("", "latency per run", "power", "energy per run", f"{tok}s/J"):
        t.add_column(col, justify="left" if not col else "right")
    p = res.power
    t.add_row(f"{res.arch} (simulated)", _secs(res.seconds), f"{p.average_w:.3g} W",
              f"{p.energy_j:.4g} J", f"{p.tokens_per_j:.4g}")
    t.add_row(f"{g.name} (estimate; power at TDP)", _secs(base.seconds), f"{base.power_w:.3g} W",
              f"{base.energy_j:.4g} J", f"{base.tokens_per_j:.4g}")
    out.print(t)
    speed = base.seconds / res.seconds
    eff = p.tokens_per_j / base.tokens_per_j
    out.print(f"speed: the design is {max(speed, 1 / speed):.3g}x "
              f"{'faster' if speed > 1 else 'slower'} than the {g.name} estimate (GPU time / "
              f"design time = {speed:.3g}); energy efficiency: the design makes {eff:.3g}x "
              f"the {g.name}'s {tok}s per joule. The GPU "
              f"figure is max(FLOPs / peak, bytes / bandwidth) per op over its datasheet "
              f"({base.roofline_s:.4g} s at roofline), energy at its {g.tdp_w:g} W TDP "
              "(an upper bound); dlmsim.gpu states the model.", highlight=False)
