"""Figures for papers: Pareto fronts, sweeps, per-op breakdowns, timelines, rooflines.

The only module that imports matplotlib (Agg backend: files, never windows). Every function
takes data (a results/ops DataFrame, a summary dict, a list of timeline events), writes one
file (.png, .pdf or .svg by the path's suffix) and returns its path. Sized for a paper
column pair (7 in wide) with fonts that stay readable when scaled down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dlmsim.config import check_writable
from dlmsim.errors import InputError
from dlmsim.explore.spec import metric_label

FORMATS = (".png", ".pdf", ".svg")
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
         "savefig.dpi": 200, "figure.dpi": 100}
KIND_COLORS = {"gemm": "#1f77b4", "sfu": "#ff7f0e", "gather": "#2ca02c"}
BOUND_COLORS = {"compute": "#1f77b4", "memory": "#d62728", "sfu": "#ff7f0e"}
UNIT_ORDER = ["dma_in", "array", "sfu", "dma_out"]
UNIT_NAMES = {"dma_in": "DMA in", "array": "array", "sfu": "SFU", "dma_out": "DMA out"}


def check_figure_path(path) -> Path:
    """A figure path with a known suffix in a directory that can be written (else an
    InputError): checked before the work that draws it."""
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise InputError(f"plot file {p}: use one of {', '.join(FORMATS)}")
    return check_writable(p)


def _save(fig, path: Path) -> Path:
    try:
        fig.savefig(path, bbox_inches="tight")
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return path


def _log_if_wide(ax, axis: str, values, ratio: float = 10) -> None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.max() / v.min() > ratio:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        _plain_log_labels(ax, axis, v.max() / v.min())


def _plain_log_labels(ax, axis: str, span: float) -> None:
    """Log-axis labels as plain numbers (300, 1000, 2e+04), minor ones only on short axes."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if span < 30:
        a.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    else:
        a.set_minor_formatter(NullFormatter())


def _need_numbers(df: pd.DataFrame, col: str) -> None:
    """An axis column must exist and hold numbers (a text column would draw nothing)."""
    if col not in df:
        raise InputError(f"no column '{col}' in the results; columns: "
                         f"{', '.join(map(str, df.columns))}")
    v = df[col]
    if pd.api.types.is_bool_dtype(v) or not (
            pd.api.types.is_numeric_dtype(v) or pd.to_numeric(v, errors="coerce").notna().any()):
        numeric = [str(c) for c in df.columns if pd.api.types.is_numeric_dtype(df[c])
                   and not pd.api.types.is_bool_dtype(df[c])]
        raise InputError(f"column '{col}' holds no numbers to plot; numeric columns: "
                         f"{', '.join(numeric)}")


def pareto_front_2d(x, y, senses=("minimize", "minimize")) -> np.ndarray:
    """Mask of the points not dominated in (x, y)."""
    v = np.column_stack([np.asarray(x, float), np.asarray(y, float)])
    for j, s in enumerate(senses):
        if s == "maximize":
            v[:, j] = -v[:, j]
    ok = np.all(np.isfinite(v), axis=1)
    keep = ok.copy()
    for i in np.flatnonzero(ok):
        dom = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1) & ok
        keep[i] = not dom.any()
    return keep


def color_column(df: pd.DataFrame) -> str | None:
    """What to colour points by: the base arch if a sweep varies it (temporal against
    spatial designs), else bit widths if they vary, else dataflow, else the first swept
    parameter with 2 to 10 values, else None."""
    for c in ("base", "bits", "dataflow"):
        if c in df and df[c].nunique(dropna=True) > 1:
            return c
    for c in df.columns:
        if "." in str(c) and 1 < df[c].nunique(dropna=True) <= 10:
            return c
    return None


def pareto(df: pd.DataFrame, path, x: str = "dsp_used", y: str = "latency_run_s",
           color: str | None = None, senses: Sequence[str] = ("minimize", "minimize"),
           title: str | None = None) -> Path:
    """y against x for every point (each distinct design once: a search's repeats are
    dropped); feasible points coloured by `color` (default: bit widths or dataflow),
    infeasible ones grey, the feasible Pareto front highlighted. Legend counts are points."""
    path = check_figure_path(path)
    for c in (x, y):
        _need_numbers(df, c)
    color = color or color_column(df)
    if color is not None and color not in df:
        raise InputError(f"no column '{color}' to colour by")
    if "point" in df:  # a search repeats points: draw and count each design once
        df = df.drop_duplicates("point")
    feas = df["feasible"].astype(bool) if "feasible" in df else pd.Series(True, df.index)
    has = np.isfinite(pd.to_numeric(df[x], errors="coerce")) & \
        np.isfinite(pd.to_numeric(df[y], errors="coerce"))
    ok, bad = df[feas & has], df[~feas & has]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        if len(bad):
            ax.scatter(bad[x], bad[y], s=14, marker="x", color="0.65", linewidths=0.8,
                       label=f"infeasible ({_points(len(bad))})", zorder=1)
        if color and len(ok):
            cats = sorted(ok[color].astype(str).unique(), key=_natural)
            cmap = plt.get_cmap("tab10" if len(cats) <= 10 else "tab20")
            for i, cat in enumerate(cats):
                sub = ok[ok[color].astype(str) == cat]
                ax.scatter(sub[x], sub[y], s=24, color=cmap(i % cmap.N), alpha=0.8,
                           marker="os^Dv<P>X*"[i % 10], edgecolors="none", label=f"{cat}",
                           zorder=2)
        elif len(ok):
            ax.scatter(ok[x], ok[y], s=22, color="#1f77b4", alpha=0.85, label="feasible",
                       zorder=2)
        if len(ok):
            m = pareto_front_2d(ok[x], ok[y], senses)
            fr = ok[m].sort_values(x)
            ax.plot(fr[x], fr[y], "-", color="k", lw=1.2, drawstyle="steps-post"
                    if senses[1] == "minimize" and senses[0] == "minimize" else "default",
                    zorder=3)
            ax.scatter(fr[x], fr[y], s=70, facecolors="none", edgecolors="k", linewidths=1.4,
                       label=f"Pareto front ({_points(len(fr))})", zorder=4)
        all_pts = pd.concat([ok, bad])
        _log_if_wide(ax, "x", all_pts[x])
        _log_if_wide(ax, "y", all_pts[y])
        ax.set_xlabel(metric_label(x))
        ax.set_ylabel(metric_label(y))
        if title:
            ax.set_title(title)
        ax.legend(title=metric_label(color) if color else None, loc="best", framealpha=0.9)
        return _save(fig, path)


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def _short(v: str) -> str:
    """'200.0' -> '200', '0.125' -> '0.125', 'os' -> 'os'."""
    try:
        return f"{float(v):g}"
    except ValueError:
        return str(v)


def _natural(s: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


def sweep(df: pd.DataFrame, path, y: str = "latency_run_s", params: Sequence[str] = (),
          sense: str = "minimize", title: str | None = None) -> Path:
    """One panel per swept parameter: `y` of every feasible point against the parameter's
    value (jittered dots) and the best value reached at each setting (line)."""
    path = check_figure_path(path)
    _need_numbers(df, y)
    params = [p for p in params if p in df and df[p].nunique() > 1] or \
        [p for p in params if p in df]
    if not params:
        raise InputError("no swept parameter columns in the results")
    if "point" in df:  # a search repeats points: draw and count each design once
        df = df.drop_duplicates("point")
    feas = df["feasible"].astype(bool) if "feasible" in df else pd.Series(True, df.index)
    ok = df[feas & np.isfinite(pd.to_numeric(df[y], errors="coerce"))]
    n = len(params)
    ncol = min(n, 3)
    nrow = math.ceil(n / ncol)
    rng = np.random.default_rng(0)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol + 0.8, 2.4 * nrow + 0.6),
                                 sharey=True, squeeze=False)
        for k, p in enumerate(params):
            ax = axes[k // ncol][k % ncol]
            vals = sorted(df[p].astype(str).unique(), key=_natural)
            pos = {v: i for i, v in enumerate(vals)}
            xs = ok[p].astype(str).map(pos).to_numpy(float)
            ax.scatter(xs + rng.uniform(-0.18, 0.18, len(xs)), ok[y], s=8, alpha=0.45,
                       color="#1f77b4", edgecolors="none")
            best = ok.groupby(ok[p].astype(str))[y].agg("min" if sense == "minimize"
                                                         else "max")
            bx = [pos[v] for v in vals if v in best.index]
            by = [best[v] for v in vals if v in best.index]
            ax.plot(bx, by, "o-", color="#d62728", ms=4, lw=1.2, label="best")
            shown = [_short(v) for v in vals]
            ax.set_xticks(range(len(vals)), shown, rotation=0 if len(vals) < 7 else 45)
            ax.set_xlabel(metric_label(p))
            if k % ncol == 0:
                ax.set_ylabel(metric_label(y))
            _log_if_wide(ax, "y", ok[y])
        for k in range(n, nrow * ncol):
            axes[k // ncol][k % ncol].set_visible(False)
        axes[0][0].legend(loc="best")
        drop = len(df) - len(ok)
        head = f"{metric_label(y)} per parameter"
        fig.suptitle((f"{title}: {head}" if title else head) +
                     (f"\n{len(ok)} feasible points; {drop} infeasible not shown"
                      if drop else f"\n{len(ok)} points"), fontsize=11)
        fig.tight_layout()
        return _save(fig, path)


def breakdown(ops_df: pd.DataFrame, path, title: str | None = None,
              clock_mhz: float | None = None, top: int = 18, energy: bool = False) -> Path:
    """Where a sampling run's time (or, with `energy`, its energy: the `energy_j` column)
    goes: a bar stacked by op kind (segments per function) and the `top` ops, coloured by
    kind, labelled with what bounds them."""
    path = check_figure_path(path)
    col = "energy_j" if energy else "run_cycles"
    need = {"name", "kind", "fn", col}
    if not need <= set(ops_df.columns):
        raise InputError(f"ops table lacks {', '.join(sorted(need - set(ops_df.columns)))}")
    df = ops_df.copy()
    total = df[col].sum()
    if energy:
        scale, what = 1.0, "energy per sampling run (J)"
    else:
        scale, unit = (1.0 / (clock_mhz * 1e6), "s") if clock_mhz else (1.0, "cycles")
        what = f"time per sampling run ({unit})"
    df["t"] = df[col] * scale
    with plt.rc_context(STYLE):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.6, 4.8),
                                     gridspec_kw={"width_ratios": [1, 2.6]})
        # (a) stacked by kind, one segment per fn
        by = df.groupby(["kind", "fn"])["t"].sum().reset_index()
        kinds = [k for k in ("gemm", "sfu", "gather") if k in set(by["kind"])] + \
            sorted(set(by["kind"]) - {"gemm", "sfu", "gather"})
        bottom = 0.0
        tt = by["t"].sum() or 1.0
        for i, k in enumerate(kinds):
            sub = by[by["kind"] == k].sort_values("t", ascending=False)
            base_c = np.array(matplotlib.colors.to_rgb(KIND_COLORS.get(k, f"C{i + 3}")))
            for j, r in enumerate(sub.itertuples()):
                shade = base_c + (1 - base_c) * min(0.6, 0.12 * j)
                a1.bar(0, r.t, bottom=bottom, color=shade, edgecolor="white", lw=0.6,
                       width=0.6)
                if r.t / tt > 0.035:
                    a1.text(0, bottom + r.t / 2, f"{r.fn} {100 * r.t / tt:.0f}%",
                            ha="center", va="center", fontsize=7.5)
                bottom += r.t
            share = sub["t"].sum() / tt
            a1.bar(0, 0, color=base_c, label=f"{k} ({100 * share:.0f}%)")
        a1.set_xlim(-0.6, 0.6)
        a1.set_xticks([])
        a1.set_ylabel(what)
        a1.set_title("by op kind")
        a1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=8)
        # (b) top ops
        topd = df.sort_values("t", ascending=False).head(top).iloc[::-1]
        colors = [KIND_COLORS.get(k, "0.5") for k in topd["kind"]]
        a2.barh(range(len(topd)), topd["t"], color=colors)
        a2.set_yticks(range(len(topd)), topd["name"], fontsize=8)
        for i, r in enumerate(topd.itertuples()):
            lab = f" {100 * getattr(r, col) / total:.1f}%" if total else " -"
            if "bound" in df.columns:
                lab += f" {r.bound}"
            a2.text(r.t, i, lab, va="center", fontsize=7.5)
        a2.set_xlabel(what)
        a2.set_xlim(0, topd["t"].max() * 1.3 if len(topd) else 1)
        a2.set_title(f"top {len(topd)} ops (share of run, bound)")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return _save(fig, path)


def compare(summaries: Sequence[dict[str, Any]], path, labels: Sequence[str] = (),
            title: str | None = None) -> Path:
    """Designs side by side (temporal and spatial, each a `dlmsim simulate` summary): the
    latency per sampling run, utilisation of the arrays (MACs), the SFUs and the memory
    bandwidth, the share of the device's DSP/BRAM/URAM, and the busy share of every compute
    unit (a temporal design's array and SFU; each unit of a spatial one)."""
    path = check_figure_path(path)
    if not summaries:
        raise InputError("nothing to compare: give at least one simulate directory")
    need = ("latency_run_s", "util_array", "util_sfu", "util_memory_bw", "dsp_frac",
            "bram36_frac", "uram_frac")
    for i, s in enumerate(summaries):
        missing = [k for k in need if not isinstance(s.get(k), int | float)]
        if missing:
            raise InputError(f"design {i + 1}: its summary lacks {', '.join(missing)}")
    names = list(labels) or [f"{s.get('arch', '?')} / {s.get('workload', '?')}"
                             for s in summaries]
    n = len(summaries)
    colors = [plt.get_cmap("tab10")(i % 10) for i in range(n)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 2, figsize=(10.0, 4.2 + 0.35 * n))
        a1, a2, a3, a4 = axes.ravel()
        lat = [s["latency_run_s"] for s in summaries]
        a1.barh(range(n), lat, color=colors)
        a1.set_yticks(range(n), names, fontsize=8)
        a1.invert_yaxis()
        for i, v in enumerate(lat):
            a1.text(v, i, f" {v:.4g} s", va="center", fontsize=7.5)
        a1.set_xlabel("latency per sampling run (s)")
        a1.set_xlim(0, max(lat) * 1.35)
        a1.set_title("latency")
        _grouped(a2, summaries, colors, names, ("util_array", "util_sfu", "util_memory_bw"),
                 ("arrays (MACs)", "SFUs (busy)", "memory bw"), "utilisation (fraction)")
        a2.set_title("utilisation")
        _grouped(a3, summaries, colors, names, ("dsp_frac", "bram36_frac", "uram_frac"),
                 ("DSP", "BRAM36", "URAM"), "share of the device (fraction)")
        a3.axhline(1.0, color="0.3", lw=0.8, ls="--")
        a3.set_title("resources")
        # Busy share of each compute unit, designs one after another.
        x, ticks, tick_names = 0, [], []
        for i, s in enumerate(summaries):
            units = {k.removeprefix("util_unit_"): v for k, v in s.items()
                     if k.startswith("util_unit_")} or {"array": s["util_array"],
                                                        "sfu": s["util_sfu"]}
            for u, v in units.items():
                a4.bar(x, v, color=colors[i], width=0.8)
                ticks.append(x)
                tick_names.append(u)
                x += 1
            x += 1
        a4.set_xticks(ticks, tick_names, rotation=90, fontsize=6.5)
        a4.set_ylabel("busy share of the run (fraction)")
        a4.set_title("compute units")
        a4.grid(axis="x", visible=False)
        handles = [matplotlib.patches.Patch(color=c, label=nm) for c, nm in zip(colors, names)]
        fig.legend(handles=handles, loc="lower center", ncol=min(n, 3), fontsize=8,
                   bbox_to_anchor=(0.5, -0.01 - 0.03 * ((n - 1) // 3)))
        fig.suptitle(title or "designs side by side")
        fig.tight_layout(rect=(0, 0.06 + 0.03 * ((n - 1) // 3), 1, 1))
        return _save(fig, path)


def _grouped(ax, summaries, colors, names, keys, key_names, ylabel) -> None:
    n = len(summaries)
    width = 0.8 / n
    for i, s in enumerate(summaries):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(keys))]
        ax.bar(xs, [s[k] for k in keys], width=width, color=colors[i], label=names[i])
    ax.set_xticks(range(len(keys)), key_names)
    ax.set_ylabel(ylabel)
    ax.grid(axis="x", visible=False)


def _events_frame(events) -> pd.DataFrame:
    if isinstance(events, pd.DataFrame):
        df = events.rename(columns={"start": "start_cycle", "end": "end_cycle"})
    else:
        df = pd.DataFrame(list(events), columns=["unit", "op", "chunk", "start_cycle",
                                                 "end_cycle"])
    need = {"unit", "op", "start_cycle", "end_cycle"}
    if not need <= set(df.columns):
        raise InputError(f"timeline lacks columns {', '.join(sorted(need - set(df.columns)))}")
    return df


def _op_group(name: str) -> str:
    """'blocks.1.attn.qkv' -> 'attn.qkv': the op without its block prefix."""
    parts = str(name).split(".")
    if len(parts) > 2 and parts[0] in ("blocks", "layers") and parts[1].isdigit():
        parts = parts[2:]
    return ".".join(parts)


def timeline(events, path, title: str | None = None, clock_mhz: float | None = None,
             max_legend: int = 24, lanes: Sequence[str] = ()) -> Path:
    """Gantt chart of the DMA engines and every compute unit (the array and the SFU of a
    temporal design; each named unit of a spatial one, in the order of `lanes`): one lane
    per unit, one bar per tile event, coloured by op. `events` is SimResult.timeline or a
    frame with unit, op, start_cycle, end_cycle."""
    path = check_figure_path(path)
    df = _events_frame(events)
    if df.empty:
        raise InputError("the timeline has no events (simulate with timeline=True)")
    t0 = df["start_cycle"].min()
    span = df["end_cycle"].max() - t0
    scale, unit = 1.0, "cycles"
    if clock_mhz:
        us = span / clock_mhz
        scale, unit = ((1e-6 / clock_mhz, "s") if us > 1e6 else (1e-3 / clock_mhz, "ms")
                       if us > 1e3 else (1.0 / clock_mhz, "µs"))
    order = ["dma_in", *lanes, "dma_out"] if lanes else UNIT_ORDER
    units = [u for u in order if u in set(df["unit"])] + \
        sorted(set(df["unit"]) - set(order))
    groups = list(dict.fromkeys(df["op"].map(_op_group)))
    cmap = plt.get_cmap("tab20")
    col = {g: cmap(i % 20) for i, g in enumerate(groups)}
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(9.0, 1.0 + 0.55 * len(units)))
        for row, u in enumerate(units):
            sub = df[df["unit"] == u]
            starts = (sub["start_cycle"] - t0).to_numpy() * scale
            widths = (sub["end_cycle"] - sub["start_cycle"]).to_numpy() * scale
            colors = [col[_op_group(o)] for o in sub["op"]]
            ax.broken_barh(list(zip(starts, widths)), (row - 0.38, 0.76), facecolors=colors,
                           edgecolor="none")
        ax.set_yticks(range(len(units)), [UNIT_NAMES.get(u, u) for u in units])
        ax.set_ylim(len(units) - 0.5, -0.5)
        ax.set_xlabel(f"time from segment start ({unit})")
        ax.grid(axis="y", visible=False)
        end = (df["end_cycle"].max() - t0) * scale
        ax.set_xlim(0, end)
        handles = [matplotlib.patches.Patch(color=col[g], label=g)
                   for g in groups[:max_legend]]
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      fontsize=7, ncol=1 + len(handles) // 14, title="op",
                      title_fontsize=8)
        ax.set_title(title or "compute units / DMA timeline")
        return _save(fig, path)


def _device_peaks(summary: dict[str, Any]):
    """(PEs, achieved DRAM bytes per cycle) as the simulation summary states them."""
    return summary.get("pes"), summary.get("bandwidth_bytes_per_cycle")


def roofline(ops_df: pd.DataFrame, summary: dict[str, Any], path, title: str | None = None,
             pes: float | None = None, bw_bytes_per_cycle: float | None = None) -> Path:
    """The device's roofline (peak array throughput, achieved DRAM bandwidth) with every
    GEMM op placed at its arithmetic intensity and attained throughput. Marker area is the
    op's share of the run; colour is what bounds it. Ops whose operands all stay on chip
    sit at the right edge."""
    path = check_figure_path(path)
    clock = float(summary.get("clock_mhz") or 0)
    if not clock:
        raise InputError("summary lacks clock_mhz")
    ip, ib = _device_peaks(summary)
    pes = pes or ip
    bw = bw_bytes_per_cycle or ib
    if not pes or not bw:
        raise InputError("cannot tell the array size and bandwidth from the summary; "
                         "pass pes= and bw_bytes_per_cycle=")
    peak = 2 * pes * clock * 1e6 / 1e9  # Gop/s (one MAC = 2 ops)
    bw_gbs = bw * clock * 1e6 / 1e9  # GB/s
    # Attained throughput over the op's own span (first to last event), not the cycles it
    # adds to the run: overlap hides part of an op, but its work still took the whole span.
    dur = "span_cycles" if "span_cycles" in ops_df else "cycles"
    g = ops_df[(ops_df["macs"] > 0) & (ops_df[dur] > 0)].copy()
    g["bytes"] = g["dram_read_bytes"] + g["dram_write_bytes"]
    g["ops"] = 2 * g["macs"]
    g["perf"] = g["ops"] / (g[dur] / (clock * 1e6)) / 1e9
    share = ops_df["run_cycles"] / ops_df["run_cycles"].sum()
    g["share"] = share.loc[g.index]
    finite = g["bytes"] > 0
    g["ai"] = np.where(finite, g["ops"] / g["bytes"].where(finite, 1), np.nan)
    ridge = peak / bw_gbs
    ai_hi = max(g["ai"].max() if finite.any() else ridge, ridge) * 8
    ai_lo = min(g["ai"].min() if finite.any() else ridge, ridge) / 8
    g.loc[~finite, "ai"] = ai_hi / 1.6
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        xs = np.geomspace(ai_lo, ai_hi, 200)
        ax.plot(xs, np.minimum(peak, xs * bw_gbs), "k-", lw=1.6, zorder=1)
        ax.text(ridge * 1.1, peak * 1.25, f"peak {peak:.0f} Gop/s ({pes:.0f} PEs)",
                ha="left", fontsize=8.5)
        xb = max(ridge / 6, ai_lo * 2)
        ax.text(xb, xb * bw_gbs / 1.8, f"{bw_gbs:.1f} GB/s achieved", fontsize=8.5,
                ha="left", va="top")
        for b, sub in g.groupby("bound" if "bound" in g else "kind"):
            on = sub[sub["bytes"] > 0]
            off = sub[sub["bytes"] <= 0]
            c = BOUND_COLORS.get(b, "0.4")
            ax.scatter(on["ai"], on["perf"], s=20 + 600 * on["share"], color=c, alpha=0.7,
                       edgecolors="k", linewidths=0.4, label=f"{b}-bound", zorder=3)
            if len(off):
                ax.scatter(off["ai"], off["perf"], s=20 + 600 * off["share"], color=c,
                           alpha=0.7, marker=">", edgecolors="k", linewidths=0.4, zorder=3)
        big = g.sort_values("share", ascending=False).head(4).sort_values("ai")
        offsets = [(-10, -14, "right"), (10, -16, "left"), (-10, -32, "right"), (10, -34, "left")]
        for r, (dx, dy, ha) in zip(big.itertuples(), offsets):
            ax.annotate(_op_group(r.name), (r.ai, r.perf), fontsize=7, xytext=(dx, dy),
                        textcoords="offset points", ha=ha,
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.4"})
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(ai_lo, ai_hi)
        lo_perf = g["perf"].min() if len(g) else peak / 100
        ax.set_ylim(min(lo_perf, peak / 100) / 2, peak * 3)
        ax.set_xlabel("arithmetic intensity (op per DRAM byte; ▶ = no DRAM traffic)")
        ax.set_ylabel("attained throughput (Gop/s)")
        n_other = int((ops_df["macs"] <= 0).sum())
        other_share = float(share[ops_df["macs"] <= 0].sum())
        ax.set_title(title or "roofline: GEMM ops")
        ax.legend(loc="lower right", title=f"marker area: share of run\n{n_other} SFU/gather "
                  f"ops ({100 * other_share:.0f}% of run) not shown", title_fontsize=7.5)
        return _save(fig, path)
