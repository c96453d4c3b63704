"""`dlmsim sweep` and `dlmsim search`: grid sweeps and Optuna searches over a spec."""

from __future__ import annotations

import math
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dlmsim.cli.common import app, err, fail, out


class TableFmt(str, Enum):
    parquet = "parquet"
    csv = "csv"


class SamplerName(str, Enum):
    auto = "auto"
    nsga2 = "nsga2"
    tpe = "tpe"
    random = "random"


_SHORT = {"dsp": "DSP", "bram36": "BRAM36", "uram": "URAM", "lut": "LUT", "ff": "FF"}


def unit_of(col: str) -> str:
    """The short unit printed after a number of this column."""
    from dlmsim.explore.spec import _PARAM_UNITS, ALIASES

    m = col.rpartition("/")[2]
    if m == "tokens_per_s":
        return "tokens/s"
    if m == "tokens_per_j":
        return "tokens/J"
    if m.endswith("_used") and m[:-5] in _SHORT:
        return _SHORT[m[:-5]]
    if m.endswith("_frac") or m.startswith("util_") or m == "accuracy_top1":
        return "%"
    if m in _PARAM_UNITS or ALIASES.get(m) in _PARAM_UNITS:
        return _PARAM_UNITS.get(m) or _PARAM_UNITS[ALIASES[m]]
    for suf, u in (("_sqnr_db", "dB"), ("_kl", "nats"), ("_cosine", ""), ("_s", "s"),
                   ("_cycles", "cycles"), ("_bytes_per_run", "B"), ("_mhz", "MHz"),
                   ("_w", "W"), ("_j", "J")):
        if m.endswith(suf):
            return u
    return ""


def cell(col: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool | str):
        return str(v)
    u = unit_of(col)
    if u == "%":
        return f"{100 * float(v):.1f} %"
    x = float(v)
    txt = f"{int(x)}" if x.is_integer() and abs(x) < 1e7 else f"{x:.4g}"
    if col.rpartition("/")[2] in ("bits.weights", "bits.activations") and txt.isdigit():
        return f"{txt} bits"
    return f"{txt} {u}".strip()


def front_table(problem, fr, title: str) -> Table:
    cols = ["arch"] + list(problem.spec.parameters) + [o.column for o in
                                                        problem.spec.objectives]
    for extra in ("dsp_frac", "bram36_frac"):
        if extra not in cols:
            cols.append(extra)
    cols = [c for c in cols if c in fr.columns]
    t = Table(title=title, header_style="bold")
    for c in cols:
        t.add_column(c, justify="left" if c == "arch" else "right")
    for _, r in fr.iterrows():
        t.add_row(*(str(r[c]) if c == "arch" else cell(c, r[c]) for c in cols))
    return t


@contextmanager
def _resumable(noun: str, url: str):
    """Ctrl-C: one line on what is kept and how to go on, exit code 130 (as a shell gives)."""
    try:
        yield
    except KeyboardInterrupt:
        err.print(f"interrupted: the finished {noun} are kept in {url}; the same command "
                  "resumes", highlight=False)
        raise typer.Exit(130) from None


def _progress(label: str):
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("points" if label == "sweep" else "trials"),
                    TimeElapsedColumn(), console=err, transient=False)


def _finish(problem, df, out_dir: Path, what: str, plots: bool) -> None:
    import yaml

    from dlmsim.config import write_atomic
    from dlmsim.explore.pareto import write_front
    from dlmsim.explore.sweep import all_infeasible_message, summarize

    write_atomic(out_dir / "spec.yaml", yaml.safe_dump(problem.spec.model_dump(mode="json"),
                                                        sort_keys=False))
    err.print(summarize(problem, df, "points" if what == "sweep" else "trials"),
              highlight=False)
    msg = all_infeasible_message(problem, df)
    if msg:
        fail(msg)
    fr = write_front(problem, df, out_dir)
    out.print(front_table(problem, fr, f"{problem.name}: Pareto front ({len(fr)} points, "
                                       f"{what})"))
    written = [out_dir / "pareto"]
    if plots:
        from dlmsim import plots as P

        objs = problem.spec.objectives
        x, y = _plot_axes(problem)
        senses = {o.column: o.sense for o in objs}
        p = P.pareto(df, out_dir / "pareto.png", x=x, y=y,
                     senses=(senses.get(x, "minimize"), senses.get(y, "minimize")),
                     title=f"{problem.name} ({what})")
        written.append(p)
        if what == "sweep":
            written.append(P.sweep(df, out_dir / "sweep.png", y=objs[0].column,
                                   params=list(problem.spec.parameters), sense=objs[0].sense,
                                   title=problem.name))
    err.print("wrote " + ", ".join(str(w) for w in written), highlight=False)


def _plot_axes(problem) -> tuple[str, str]:
    cols = [o.column for o in problem.spec.objectives]
    res = [c for c in cols if c.endswith(("_used", "_frac"))]
    perf = [c for c in cols if c not in res]
    if res and perf:
        return res[0], perf[0]
    if len(cols) >= 2:
        return cols[1], cols[0]
    return "dsp_used", cols[0]


def _start(out_dir: Path) -> Path:
    """Check the output directory before any work, clean what killed runs left there, and
    show the explore notes (a repaired storage, trials failed after a kill) on stderr."""
    import logging

    from dlmsim.config import check_writable
    from dlmsim.explore.workers import clean_stale_temps

    check_writable(out_dir, is_dir=True)
    for d in (out_dir, out_dir / "pareto"):
        clean_stale_temps(d)
    lg = logging.getLogger("dlmsim.explore")
    if not lg.handlers:
        h = logging.StreamHandler()
        h.emit = lambda r: err.print(f"note: {r.getMessage()}", markup=False,  # type: ignore
                                     highlight=False)
        lg.addHandler(h)
        lg.propagate = False
    return out_dir


_STORAGE_HELP = ("Storage URL shared by every process and machine (sqlite:///f.db, "
                 "postgresql://user:pw@host/db, mysql+pymysql://...{journal})")


@app.command()
def sweep(
    spec: str = typer.Argument(..., help="Bundled spec name (sweeps/) or a spec YAML path."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes."),
    storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP.format(
        journal="") + " (default: sweep.db in the results directory)."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Results directory (default: results/<spec>/sweep)."),
    fmt: TableFmt = typer.Option(TableFmt.parquet, "--format", "-f",
                                 help="Results table format."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the standard plots."),
):
    """Evaluate every point of a spec's grid in parallel; skip points already done.

    Writes results.<fmt> (one row per point: parameters, metrics, feasible, reason),
    pareto/ (pareto.csv and one ready arch file per front point), pareto.png, sweep.png.
    Machines given the same --storage share the grid: each point is evaluated once.
    """
    from dlmsim.explore import load_spec, run_sweep
    from dlmsim.explore.sweep import default_sweep_storage

    problem = load_spec(spec)
    out_dir = _start(output or Path("results") / problem.name / "sweep")
    n = problem.sweep_size()
    with _resumable("points", storage or default_sweep_storage(out_dir)), \
            _progress("sweep") as prog:
        task = prog.add_task("sweep", total=n)
        df = run_sweep(problem, out_dir, jobs=jobs, fmt=fmt.value, storage=storage,
                       progress=lambda d, t: prog.update(task, completed=d, total=t))
    err.print(f"wrote {out_dir / ('results.' + fmt.value)} ({len(df)} points)",
              highlight=False)
    _finish(problem, df, out_dir, "sweep", plots)


@app.command()
def search(
    spec: str = typer.Argument(..., help="Bundled spec name (sweeps/) or a spec YAML path."),
    trials: int | None = typer.Option(None, "--trials", "-n", min=1,
                                      help="Finished trials the study should hold "
                                      "(default: the spec's search.trials)."),
    seed: int | None = typer.Option(None, "--seed", help="Sampler seed, 0 to 2^32-1; worker "
                                    "i uses seed + i (default: the spec's search.seed, else "
                                    "a seed of its own per process)."),
    storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP.format(
        journal=", journal:FILE") + " (default: study.db in the results directory)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1,
                                help="Processes working on the study."),
    sampler: SamplerName | None = typer.Option(None, "--sampler",
                                               help="auto: TPE up to 1000 trials, NSGA-II beyond."),
    study: str | None = typer.Option(None, "--study",
                                     help="Study name (default: <spec>-<spec hash>)."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Results directory (default: results/<spec>/search)."),
    fmt: TableFmt = typer.Option(TableFmt.parquet, "--format", "-f",
                                 help="Results table format."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the Pareto plot."),
    importances: bool = typer.Option(False, "--importances",
                                     help="Also print and write importances.csv: how much "
                                     "each parameter decides reaching the best 10 % of each "
                                     "objective, and the Pareto front (PED-ANOVA)."),
):
    """Optuna search over a spec (resumable; several workers or machines share a study).

    Writes results.<fmt> (one row per finished trial), pareto/ (pareto.csv and one ready
    arch file per front point) and pareto.png into the results directory.
    """
    from dlmsim.explore import load_spec
    from dlmsim.explore.search import default_storage, load_study, run_search, worker_seeds
    from dlmsim.explore.storage import open_storage
    from dlmsim.explore.sweep import results_path, write_table

    problem = load_spec(spec)
    opts = problem.spec.search
    trials = trials or opts.trials
    seed = opts.seed if seed is None else seed
    worker_seeds(seed, workers)  # a bad seed fails here, before any work
    out_dir = _start(output or Path("results") / problem.name / "search")
    url = storage or default_storage(out_dir)
    open_storage(url, heartbeat=False)  # fail before the bar
    with _resumable("trials", url), _progress("search") as prog:
        task = prog.add_task("search", total=trials)
        df, name = run_search(problem, out_dir, trials=trials, seed=seed, storage=url,
                              workers=workers,
                              sampler=(sampler.value if sampler else opts.sampler),
                              study_name=study,
                              progress=lambda d, t: prog.update(task, completed=d, total=t))
    path = results_path(out_dir, fmt.value)
    write_table(df, path)
    evals = df["point"].nunique() if len(df) else 0
    err.print(f"study {name}: {len(df)} trials, {evals} distinct points simulated; "
              f"wrote {path}", highlight=False)
    if df.empty:
        fail(f"study {name} holds no finished trials")
    if importances:
        _importances(problem, load_study(url, name), out_dir)
    _finish(problem, df, out_dir, "search", plots)


def _importances(problem, study, out_dir: Path) -> None:
    from dlmsim.config import write_atomic
    from dlmsim.explore.search import importances

    imp = importances(problem, study)
    cols = [c for c in imp.columns if c != "parameter"]
    t = Table(title=f"{problem.name}: parameter importances (PED-ANOVA: how much each "
              "decides reaching the best 10 % of an objective, or the front; columns sum to "
              "100 %)", header_style="bold")
    t.add_column("parameter")
    for c in cols:
        t.add_column(c, justify="right")
    for _, r in imp.iterrows():
        t.add_row(str(r["parameter"]), *(f"{100 * r[c]:.1f} %" for c in cols))
    out.print(t)
    write_atomic(out_dir / "importances.csv", imp.to_csv(index=False))
    err.print(f"wrote {out_dir / 'importances.csv'}", highlight=False)
