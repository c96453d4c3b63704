"""`dlmsim hls-report`: clock, latency, loops and resources of a Vivado/Vitis HLS report."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from dlmsim.cli.common import app, fmt_seconds, out

_UNITS = {"DSP": "DSP slices", "BRAM18": "BRAM 18 Kb blocks", "URAM": "URAM 288 Kb blocks",
          "FF": "flip-flops", "LUT": "LUTs"}


class HlsFmt(str, Enum):
    table = "table"
    json = "json"


@app.command("hls-report")
def hls_report(
    path: Path = typer.Argument(..., help="csynth.xml, csynth.rpt, or a directory holding one "
                                "(e.g. proj/solution1/syn/report)."),
    fmt: HlsFmt = typer.Option(HlsFmt.table, "--format", "-f", help="Output format."),
):
    """Read an HLS synthesis report: clock, latency, interval, loops and resources."""
    from dlmsim.hls_report import RESOURCES, parse_report

    r = parse_report(path)
    if fmt == HlsFmt.json:
        sys.stdout.write(json.dumps(r.to_dict(), indent=1) + "\n")
        return

    def cycles(n: int | None) -> str:
        if n is None:
            return "undef"
        s = r.cycles_to_s(n)
        return f"{n} cycles ({fmt_seconds(s) if s is not None else 'no clock in report'})"

    def clock(ns: float | None) -> str:
        return "n/a" if ns is None else f"{ns:g} ns ({1e3 / ns:.1f} MHz)"

    summary = Table(title=f"{r.top}: {r.tool} {r.version or ''} on {r.part or 'unknown part'} "
                    f"({r.source}); seconds at the estimated clock", header_style="bold")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    for k, v in [
        ("clock target", clock(r.clock_target_ns)),
        ("clock estimated", clock(r.clock_estimated_ns)),
        ("clock uncertainty", "n/a" if r.clock_uncertainty_ns is None
         else f"{r.clock_uncertainty_ns:g} ns"),
        ("latency best", cycles(r.latency_best_cycles)),
        ("latency average", cycles(r.latency_average_cycles)),
        ("latency worst", cycles(r.latency_worst_cycles)),
        ("interval min", cycles(r.interval_min_cycles)),
        ("interval max", cycles(r.interval_max_cycles)),
        ("pipeline type", r.pipeline_type or "n/a"),
    ]:
        summary.add_row(k, v)
    out.print(summary)

    if r.loops:
        loops = Table(title="loops (undef: data-dependent or not reported)", header_style="bold")
        for col in ("loop", "latency min (cycles)", "latency max (cycles)",
                    "iteration latency (cycles)", "II (cycles)", "trips (iterations)",
                    "pipelined"):
            # fold, never truncate: a loop path is only useful whole
            loops.add_column(col, justify="left" if col in ("loop", "pipelined") else "right",
                             overflow="fold")
        for lp in r.loops:
            loops.add_row(lp.path, *(_opt(v) for v in (
                lp.latency_min_cycles, lp.latency_max_cycles, lp.iteration_latency_cycles,
                lp.ii, lp.trip_count)), "yes" if lp.pipelined else "no")
        out.print(loops)

    res = Table(title="resources", header_style="bold")
    for col in ("resource", "used", "available", "used (% of available)"):
        res.add_column(col, justify="left" if col == "resource" else "right")
    util = r.utilisation
    for key in RESOURCES:
        if key in r.resources or key in r.available:
            unit = _UNITS[key]
            res.add_row(key, f"{r.resources.get(key, 0)} {unit}",
                        f"{r.available[key]} {unit}" if key in r.available else "n/a",
                        f"{100 * util[key]:.1f} %" if key in util else "n/a")
    out.print(res)


def _opt(v: int | None) -> str:
    return "undef" if v is None else str(v)


