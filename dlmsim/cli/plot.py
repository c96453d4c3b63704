"""`dlmsim plot KIND RESULTS`: figures from sweep/search results or a simulate directory."""

from __future__ import annotations

import io
import math
from enum import Enum
from pathlib import Path

import typer

from dlmsim.cli.common import app, err
from dlmsim.errors import InputError, reason


class Kind(str, Enum):
    pareto = "pareto"
    sweep = "sweep"
    breakdown = "breakdown"
    timeline = "timeline"
    roofline = "roofline"
    compare = "compare"


def _spec_info(results: Path):
    """(objective columns, senses, parameter names, title) from a results directory's
    spec.yaml; the title is the spec's name and which kind of run wrote the directory, as
    `dlmsim sweep` / `search` title their own figures."""
    from dlmsim.config import read_yaml, validate
    from dlmsim.explore.spec import Spec

    d = results if results.is_dir() else results.parent
    f = d / "spec.yaml"
    if not f.is_file():
        return [], [], [], None
    spec = validate(Spec, read_yaml(f), str(f))
    what = f" ({d.name})" if d.name in ("sweep", "search") else ""
    return ([o.column for o in spec.objectives], [o.sense for o in spec.objectives],
            list(spec.parameters), spec.name + what)


def _sim_dir(results: Path, need: str) -> Path:
    if not results.is_dir():
        raise InputError(f"{results}: expected a directory written by `dlmsim simulate -o DIR`")
    f = results / need
    if not f.is_file():
        raise InputError(f"{results}: no {need} (write it with `dlmsim simulate -o DIR`)")
    return f


# Columns of ops.csv the figures compute with: numbers, never negative.
_OPS_NUMBERS = ("count", "cycles", "span_cycles", "run_cycles", "macs", "dram_read_bytes",
                "dram_write_bytes", "energy_j")


def _ops(results: Path):
    """ops.csv of a simulate directory, its numeric columns checked."""
    return _numeric_csv(_sim_dir(results, "ops.csv"), _OPS_NUMBERS)


def _numeric_csv(f: Path, numbers: tuple[str, ...]):
    import pandas as pd

    from dlmsim.config import read_text

    try:
        df = pd.read_csv(io.StringIO(read_text(f)))
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise InputError(f"{f}: not a table dlmsim wrote ({reason(e)})") from None
    if df.empty:
        raise InputError(f"{f}: the table has no rows")
    for c in numbers:
        if c in df:
            v = pd.to_numeric(df[c], errors="coerce")
            if not ((v >= 0) & (v < math.inf)).all():  # NaN fails both
                raise InputError(f"{f}: column {c} must hold non-negative numbers")
            df[c] = v
    return df


def _summary(results: Path) -> dict:
    """summary.json of a simulate directory ({} if absent): a mapping whose clock, PE count
    and bandwidth, where given, are positive numbers."""
    from dlmsim.config import read_json, shown

    f = results / "summary.json"
    if not f.is_file():
        return {}
    s = read_json(f)
    if not isinstance(s, dict):
        raise InputError(f"{f}: expected a mapping of metrics, got {shown(s)}")
    for k in ("clock_mhz", "pes", "bandwidth_bytes_per_cycle"):
        v = s.get(k)
        if v is not None and not (isinstance(v, int | float) and not isinstance(v, bool)
                                  and v > 0):
            raise InputError(f"{f}: {k} must be a positive number, got {v!r}")
    return s


@app.command()
def plot(
    kind: Kind = typer.Argument(..., help="pareto | sweep (sweep/search results); breakdown "
                                "| timeline | roofline (a `dlmsim simulate -o` directory); "
                                "compare (several of those)."),
    results: list[Path] = typer.Argument(..., help="Results directory or table (compare: "
                                         "two or more `dlmsim simulate -o` directories)."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Figure file: .png, .pdf or .svg "
                                       "(default: RESULTS/<kind>.png)."),
    x: str | None = typer.Option(None, "--x", help="pareto: x metric (default: the resource "
                                 "objective, else dsp_used)."),
    y: str | None = typer.Option(None, "--y", help="pareto/sweep: y metric (default: the "
                                 "first objective)."),
    color: str | None = typer.Option(None, "--color", help="pareto: colour points by this "
                                     "column (default: bits, else dataflow)."),
    title: str | None = typer.Option(None, "--title", help="Figure title."),
    energy: bool = typer.Option(False, "--energy", help="breakdown: energy per run (J) "
                                "instead of time."),
):
    """Draw a figure: Pareto front, sweep panels, per-op breakdown, timeline, roofline, or
    designs side by side (compare)."""
    from dlmsim import plots as P

    for r in results:
        if not r.exists():
            raise InputError(f"results not found: {r}")
    if kind == Kind.compare:
        sums = []
        for r in results:
            _sim_dir(r, "summary.json")
            sums.append(_summary(r))
        if len(sums) < 2:
            raise InputError("plot compare needs two or more simulate directories")
        out = output or results[0] / "compare.png"
        path = P.compare(sums, out, labels=[f"{s.get('arch')} / {s.get('workload')}"
                                            for s in sums], title=title)
        err.print(f"wrote {path}", highlight=False)
        return
    if len(results) != 1:
        raise InputError(f"plot {kind.value} takes one results directory or table "
                         f"({len(results)} given)")
    results = results[0]
    if energy and kind != Kind.breakdown:
        raise InputError("--energy applies to plot breakdown only")
    base = results if results.is_dir() else results.parent
    out = output or base / (f"{kind.value}{'-energy' if energy else ''}.png")
    if kind in (Kind.pareto, Kind.sweep):
        from dlmsim.explore.sweep import read_table

        df = read_table(results)
        cols, senses, params, spec_title = _spec_info(results)
        title = title or spec_title
        from dlmsim.explore.spec import MAXIMIZE

        sense_of = {c: ("maximize" if c.rpartition("/")[2] in MAXIMIZE else "minimize")
                    for c in df.columns}
        sense_of.update(zip(cols, senses))
        if kind == Kind.pareto:
            res = [c for c in cols if c.endswith(("_used", "_frac"))]
            perf = [c for c in cols if c not in res]
            yy = y or (perf[0] if perf else cols[0] if cols else "latency_run_s")
            xx = x or (res[0] if res else cols[1] if len(cols) > 1 and cols[1] != yy
                       else "dsp_used")
            path = P.pareto(df, out, x=xx, y=yy, color=color,
                            senses=(sense_of.get(xx, "minimize"), sense_of.get(yy, "minimize")),
                            title=title)
        else:
            yy = y or (cols[0] if cols else "latency_run_s")
            if not params:
                skip = {"index", "trial", "point"}
                params = [c for c in df.columns if "." in c and c not in skip]
            path = P.sweep(df, out, y=yy, params=params, sense=sense_of.get(yy, "minimize"),
                           title=title)
    elif kind == Kind.breakdown:
        ops = _ops(results)
        s = _summary(results)
        if energy and "energy_j" not in ops:
            raise InputError(f"{results}: ops.csv has no energy_j column (written by an older "
                             "dlmsim; run `dlmsim simulate -o DIR` again)")
        path = P.breakdown(ops, out, title=title or _sim_title(s, "energy" if energy else ""),
                           clock_mhz=s.get("clock_mhz"), energy=energy)
    elif kind == Kind.timeline:
        ev = _numeric_csv(_sim_dir(results, "timeline.csv"), ("start_cycle", "end_cycle"))
        s = _summary(results)
        path = P.timeline(ev, out, title=title or _sim_title(s, "timeline of one block"),
                          clock_mhz=s.get("clock_mhz"), lanes=_lanes(results))
    else:
        ops = _ops(results)
        s = _summary(results)
        if not s:
            raise InputError(f"{results}: no summary.json")
        path = P.roofline(ops, s, out, title=title or _sim_title(s, "roofline"))
    err.print(f"wrote {path}", highlight=False)


def _lanes(results: Path) -> list[str]:
    """The compute units of the design a simulate directory's arch.yaml holds, in its
    order (the timeline's lanes); [] without one."""
    f = results / "arch.yaml"
    if not f.is_file():
        return []
    from dlmsim.arch import arch_from_data
    from dlmsim.config import read_yaml

    return [u.name for u in arch_from_data(read_yaml(f), str(f)).compute_units()]


def _sim_title(s: dict, what: str = "") -> str | None:
    if not s:
        return what or None
    head = f"{s.get('workload', '')} on {s.get('arch', '')}"
    return f"{head}: {what}" if what else head
