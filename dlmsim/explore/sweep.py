"""Grid sweeps: every point of a spec's grid, in parallel, resumable, into one table.

The table (`results.parquet` or `results.csv` in the output directory) has one row per
point: every parameter, every metric, `feasible` and the `reason` when infeasible. It is
rewritten atomically every couple of seconds while the sweep runs, so a killed sweep keeps
what it finished; a re-run skips every point whose id (a hash of the point's full arch
config and workloads) is already in the table and re-judges all rows against the spec's
current constraints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from dlmsim.config import write_atomic
from dlmsim.errors import InputError
from dlmsim.explore.evaluate import evaluate_point, judge
from dlmsim.explore.spec import Problem

TABLE_NAMES = ("results.parquet", "results.csv")


def results_path(out_dir: Path, fmt: str = "parquet") -> Path:
    return Path(out_dir) / f"results.{fmt}"


def find_table(path: Path) -> Path:
    """A results table itself, or the table inside a results directory."""
    path = Path(path)
    if path.is_file():
        return path
    for n in TABLE_NAMES:
        if (path / n).is_file():
            return path / n
    if not path.exists():
        raise InputError(f"results not found: {path}")
    raise InputError(f"no results table (results.parquet or results.csv) in {path}")


def read_table(path: Path) -> pd.DataFrame:
    path = find_table(path)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=False,
                           na_values=["", "nan", "NaN"]).fillna({"error": "", "reason": ""})
    except (OSError, ValueError) as e:  # a truncated or foreign file
        raise InputError(f"cannot read results table {path}: {e}") from None


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write atomically; columns mixing numbers and strings (e.g. bits 8 / fp32) as text."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype != object:
            continue
        vals = [v for v in df[c] if v is not None and not (isinstance(v, float) and
                                                           math.isnan(v))]
        kinds = {bool if isinstance(v, bool) else float if isinstance(v, int | float) else str
                 for v in vals}
        if kinds == {float}:
            df[c] = pd.to_numeric(df[c])
        elif kinds == {bool}:
            df[c] = [None if not isinstance(v, bool) else v for v in df[c]]
        elif len(kinds) > 1:
            df[c] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                     for v in df[c]]
    if Path(path).suffix == ".parquet":
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        write_atomic(path, buf.getvalue())
    else:
        write_atomic(path, df.to_csv(index=False))
    if Path(path).name in TABLE_NAMES:  # one table per directory: drop the other format's
        for n in TABLE_NAMES:
            if n != Path(path).name:
                (Path(path).parent / n).unlink(missing_ok=True)


def with_judgement(problem: Problem, df: pd.DataFrame) -> pd.DataFrame:
    """Add (or refresh) `feasible` and `reason` from the spec's constraints."""
    if df.empty:
        return df.assign(feasible=pd.Series(dtype=bool), reason=pd.Series(dtype=str))
    rows = df.to_dict("records")
    verdicts = [judge(problem, _clean(r)) for r in rows]
    out = df.copy()
    out["feasible"] = [v[0] for v in verdicts]
    out["reason"] = [v[1] for v in verdicts]
    return out


def _clean(r: dict) -> dict:
    err = r.get("error")
    if err is None or (isinstance(err, float) and math.isnan(err)):
        r["error"] = ""
    return r


def _eval_many(problem: Problem, items: list[tuple[int, dict]]) -> list[dict]:
    out = []
    for i, p in items:
        row = evaluate_point(problem, p)
        row["index"] = i
        out.append(row)
    return out


def run_sweep(problem: Problem, out_dir: Path, jobs: int = 1, fmt: str = "parquet",
              progress: Callable[[int, int], Any] | None = None,
              flush_s: float = 2.0) -> pd.DataFrame:
    """Evaluate every grid point not already in `out_dir`'s table; return the whole table.

    `progress(done, total)` is called as points finish. Rows are ordered by grid index.
    """
    out_dir = Path(out_dir)
    path = results_path(out_dir, fmt)
    grid = problem.grid()
    if not grid:
        raise InputError(f"{problem.source}: the grid is empty")
    ids = [problem.point_id(p) for p in grid]
    have = pd.DataFrame()
    for n in TABLE_NAMES:
        if (out_dir / n).is_file():
            have = read_table(out_dir / n)
            break
    if not have.empty and "point" in have:
        have = have[have["point"].isin(set(ids))].drop_duplicates("point")
        index_of = {pid: i for i, pid in enumerate(ids)}
        have = have.assign(index=have["point"].map(index_of))
    done = set(have["point"]) if not have.empty else set()
    todo = [(i, p) for i, (p, pid) in enumerate(zip(grid, ids)) if pid not in done]
    rows: list[dict] = have.to_dict("records") if not have.empty else []
    total = len(grid)
    if progress:
        progress(len(rows), total)

    last = time.monotonic()

    def flush(final: bool = False):
        df = pd.DataFrame(rows).sort_values("index").reset_index(drop=True)
        df = with_judgement(problem, df)
        write_table(_ordered(problem, df), path)
        return df

    if todo:
        batch = max(1, min(8, len(todo) // (4 * max(jobs, 1)) or 1))
        chunks = [todo[k:k + batch] for k in range(0, len(todo), batch)]
        if jobs <= 1:
            for ch in chunks:
                rows += _eval_many(problem, ch)
                if progress:
                    progress(len(rows), total)
                if time.monotonic() - last > flush_s:
                    flush()
                    last = time.monotonic()
        else:
            with ProcessPoolExecutor(max_workers=jobs) as ex:
                futs = [ex.submit(_eval_many, problem, ch) for ch in chunks]
                try:
                    for f in as_completed(futs):
                        rows += f.result()
                        if progress:
                            progress(len(rows), total)
                        if time.monotonic() - last > flush_s:
                            flush()
                            last = time.monotonic()
                except BaseException:
                    for f in futs:
                        f.cancel()
                    if rows:
                        flush()
                    raise
    df = flush(final=True)
    return _ordered(problem, df)


def _ordered(problem: Problem, df: pd.DataFrame) -> pd.DataFrame:
    first = ["index", "point"] + list(problem.spec.parameters) + ["feasible", "reason"] + \
        [o.column for o in problem.spec.objectives]
    first = [c for c in dict.fromkeys(first) if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def summarize(problem: Problem, df: pd.DataFrame, noun: str = "points") -> str:
    """One line: points, feasible, and why the infeasible ones failed (most common first)."""
    n = len(df)
    ok = int(df["feasible"].sum()) if n else 0
    line = f"{n} {noun}, {ok} feasible"
    if ok < n:
        reasons = df.loc[~df["feasible"].astype(bool), "reason"].map(_reason_kind)
        top = reasons.value_counts().head(3)
        line += "; infeasible: " + "; ".join(f"{k} ({v} {noun})" for k, v in top.items())
    return line


def _reason_kind(reason: str) -> str:
    """A reason without its numbers, to group points that failed for the same cause."""
    import re

    first = str(reason).split("; ")[0]
    if first.startswith("does not fit"):
        kinds = re.findall(r"([A-Z0-9]+) [0-9.]+ >", first)
        return "does not fit the device (" + ", ".join(kinds) + ")"
    if "of the device > cap" in first:
        return first.split(" ")[0] + " over its cap"
    return re.sub(r"[0-9]+(\.[0-9]+)?", "N", first)[:120]


def all_infeasible_message(problem: Problem, df: pd.DataFrame) -> str | None:
    if len(df) and not df["feasible"].astype(bool).any():
        return (f"{problem.source}: no feasible point among {len(df)}: "
                + summarize(problem, df).split("; infeasible: ", 1)[-1])
    return None
