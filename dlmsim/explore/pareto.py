"""Pareto fronts, hypervolume, and Pareto points written out as ready arch YAML files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dlmsim.config import replace_dir, temp_dir_for, write_atomic
from dlmsim.explore.spec import Problem


def _as_min(values: np.ndarray, senses: list[str]) -> np.ndarray:
    """Objective values turned so that smaller is better in every column."""
    v = np.asarray(values, dtype=float).copy()
    for j, s in enumerate(senses):
        if s == "maximize":
            v[:, j] = -v[:, j]
    return v


def pareto_mask(values, senses: list[str]) -> np.ndarray:
    """Non-dominated rows of an (n, k) array; duplicates of a Pareto point are all kept."""
    v = _as_min(values, senses)
    n = len(v)
    keep = np.ones(n, dtype=bool)
    finite = np.all(np.isfinite(v), axis=1)
    keep &= finite
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1) & finite
        if dominated.any():
            keep[i] = False
    return keep


def front(df: pd.DataFrame, problem: Problem) -> pd.DataFrame:
    """The feasible Pareto front of a results table, one row per distinct point."""
    cols = [o.column for o in problem.spec.objectives]
    senses = [o.sense for o in problem.spec.objectives]
    ok = df[df["feasible"].astype(bool)] if "feasible" in df else df
    ok = ok.drop_duplicates("point") if "point" in ok else ok
    if ok.empty:
        return ok
    mask = pareto_mask(ok[cols].to_numpy(dtype=float), senses)
    return ok[mask].sort_values(cols).reset_index(drop=True)


def hypervolume(values, senses: list[str], ref) -> float:
    """Hypervolume dominated by `values` up to the reference point `ref` (exact, slicing).

    Values are turned to minimisation; points not strictly better than `ref` in every
    objective add nothing. Exact for any number of objectives; fine for fronts of hundreds.
    """
    v = _as_min(values, senses)
    r = _as_min(np.asarray([ref], dtype=float), senses)[0]
    v = v[np.all(v < r, axis=1)]
    if len(v) == 0:
        return 0.0
    v = v[pareto_mask(v, ["minimize"] * v.shape[1])]
    return _hv(v, r)


def _hv(v: np.ndarray, r: np.ndarray) -> float:
    if v.shape[1] == 1:
        return float(r[0] - v[:, 0].min())
    order = np.argsort(v[:, -1])
    v = v[order]
    total = 0.0
    for i in range(len(v)):
        upper = v[i + 1, -1] if i + 1 < len(v) else r[-1]
        depth = upper - v[i, -1]
        if depth > 0:
            total += depth * _hv(v[: i + 1, :-1], r[:-1])
    return total


def normalised_hv(points, senses, lo, hi) -> float:
    """Hypervolume of points scaled so [lo, hi] per objective maps to [0, 1] (ref 1.1)."""
    p = np.asarray(points, dtype=float)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = (p - lo) / span
    s = [("minimize" if x == "minimize" else "maximize") for x in senses]
    # For maximised objectives, flip so that 0 is the best end as well.
    for j, x in enumerate(s):
        if x == "maximize":
            scaled[:, j] = 1.0 - scaled[:, j]
    return hypervolume(scaled, ["minimize"] * len(s), [1.1] * len(s))


def export_arch(problem: Problem, params: dict[str, Any], name: str, path: Path,
                note: str = "") -> Path:
    """Write one point as a full arch YAML that `dlmsim simulate` loads unchanged."""
    from dlmsim.arch import arch_from_data

    data = problem.arch_data(params)
    data["name"] = name
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    data["description"] = (f"Point of sweep spec '{problem.name}' on base "
                           f"{params.get('base', problem.spec.base)}: {shown}. {note}").strip()
    if not problem.base_data.get("allow_overfull"):
        data.pop("allow_overfull", None)
    arch_from_data(data, str(path))  # must load as written
    order = ["version", "name", "description", "device", "clock_mhz", "array", "bits", "sfu",
             "buffer", "memory"]
    ordered = {k: data[k] for k in order if k in data}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    write_atomic(path, yaml.safe_dump(_plain(ordered), sort_keys=False, width=92))
    return path


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def write_front(problem: Problem, df: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """pareto/: pareto.csv (the front table) and <name>.yaml per point, written as one unit
    (filled in a temp dir, then swapped in), so a kill never leaves a table and arch files
    that disagree. Returns the front table."""
    fr = front(df, problem)
    out_dir = Path(out_dir)
    tmp = temp_dir_for(out_dir / "pareto")
    try:
        names = []
        for i in range(len(fr)):
            params = json.loads(fr.iloc[i]["params"])
            name = f"{problem.name}-p{i:02d}"
            objs = ", ".join(f"{o.column}={_fmt(fr.iloc[i][o.column])}"
                             for o in problem.spec.objectives)
            export_arch(problem, params, name, tmp / f"{name}.yaml", f"Pareto: {objs}.")
            names.append(name)
        fr = fr.assign(arch=names)
        cols = ["arch"] + list(problem.spec.parameters) + [o.column for o in
                                                            problem.spec.objectives]
        rest = [c for c in fr.columns if c not in cols]
        write_atomic(tmp / "pareto.csv", fr[cols + rest].to_csv(index=False))
        replace_dir(tmp, out_dir / "pareto")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (out_dir / "pareto.csv").unlink(missing_ok=True)  # where earlier versions wrote the table
    return fr


def _fmt(x) -> str:
    if isinstance(x, float) and not math.isnan(x):
        return f"{x:.4g}"
    return str(x)


def compare(problem: Problem, grid_df: pd.DataFrame, search_df: pd.DataFrame) -> dict:
    """How close a search got to the exhaustive grid, and with what share of evaluations.

    Hypervolumes are of the feasible fronts, each objective scaled to [0, 1] over the
    grid's feasible points (reference point 1.1 in every objective); `hv_ratio` is the
    search's over the grid's. `gap_<objective>` is the relative distance of the search's
    best value from the grid's best.
    """
    objs = problem.spec.objectives
    cols = [o.column for o in objs]
    senses = [o.sense for o in objs]
    g = grid_df[grid_df["feasible"].astype(bool)]
    s = search_df[search_df["feasible"].astype(bool)]
    lo = g[cols].min().to_numpy(float)
    hi = g[cols].max().to_numpy(float)
    hv_g = normalised_hv(g[cols].to_numpy(float), senses, lo, hi)
    hv_s = normalised_hv(s[cols].to_numpy(float), senses, lo, hi) if len(s) else 0.0
    out = {"grid_points": len(grid_df), "trials": len(search_df),
           "evaluations": int(search_df["point"].nunique()),
           "hv_grid": hv_g, "hv_search": hv_s, "hv_ratio": hv_s / hv_g if hv_g else math.nan}
    out["evaluation_fraction"] = out["evaluations"] / out["grid_points"]
    gf, sf = front(grid_df, problem), front(search_df, problem)
    found = set(sf["point"]) & set(gf["point"]) if len(sf) else set()
    out["front_points_found"] = f"{len(found)}/{len(gf)}"
    for c, sense in zip(cols, senses):
        best_g = g[c].min() if sense == "minimize" else g[c].max()
        best_s = (s[c].min() if sense == "minimize" else s[c].max()) if len(s) else math.nan
        out[f"best_grid_{c}"] = float(best_g)
        out[f"best_search_{c}"] = float(best_s)
        out[f"gap_{c}"] = float(abs(best_s - best_g) / abs(best_g)) if best_g else math.nan
    return out
