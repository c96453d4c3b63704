"""Grid sweeps: every point of a spec's grid, by any number of processes and machines.

The points are claimed from a table in a database (`dlmsim.explore.claims`): by default an
SQLite file `sweep.db` in the output directory; `storage=` takes the same RDB URLs as a
search, so N machines pointed at one PostgreSQL finish one grid with each point evaluated
once. Processes here (`jobs`) and elsewhere claim points one at a time; a killed run leaves
its points running, and the next run (or any other worker, once their heartbeat stops)
puts them back. Points already in an older results table are adopted as done.

The table (`results.parquet` or `results.csv` in the output directory) has one row per
point: every parameter, every metric, `feasible` and the `reason` when infeasible. It is
rewritten atomically every couple of seconds while the sweep runs; a re-run evaluates only
points not done yet and re-judges all rows against the spec's current constraints.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from dlmsim.config import config_hash, write_atomic
from dlmsim.errors import InputError
from dlmsim.explore import claims
from dlmsim.explore.evaluate import evaluate_point, jsonable, judge
from dlmsim.explore.interrupts import deferred
from dlmsim.explore.spec import Problem
from dlmsim.explore.storage import is_journal
from dlmsim.explore.workers import owner, run_processes

POLL_S = 0.5

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


def default_sweep_storage(out_dir: Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'sweep.db'}"


def sweep_key(problem: Problem) -> str:
    """The grid's name in the claim table: what its point ids depend on (not objectives,
    constraints or description, so a re-run with new constraints finds its points)."""
    s = problem.spec
    blob = {"base": problem.base_data, "set": s.set, "workloads": [w.model_dump(mode="json")
            for w in s.workloads], "parameters": {k: v.model_dump(mode="json") for k, v in
                                                  s.parameters.items()},
            "accuracy": sorted(problem.accuracy_keys)}
    if problem.bases:
        blob["bases"] = problem.bases
    return f"{problem.name}-{config_hash(blob, n=10)}"


def sweep_worker(problem: Problem, url: str, key: str,
                 on_done: Callable[[], Any] | None = None) -> int:
    """Claim and evaluate points of the sweep until none is left; return how many."""
    engine = claims.open_claims(url)
    me = owner()
    watch = claims.Watch()
    n = 0
    with claims.heartbeat(engine, me), deferred() as intr:
        try:
            while True:
                intr.check()
                got = claims.claim(engine, key, me)
                if got is not None:
                    idx, pid = got
                    with intr.interruptible():
                        row = jsonable(evaluate_point(problem, problem.point(idx)))
                    claims.finish(engine, pid, me, row)
                    n += 1
                    if on_done:
                        on_done()
                    continue
                if not claims.counts(engine, key).get("running"):
                    return n
                watch.reclaim(engine, key, me)  # others' points: wait, or take back
                time.sleep(POLL_S)
        except BaseException:
            claims.release(engine, me)
            raise
        finally:
            engine.dispose()


def run_sweep(problem: Problem, out_dir: Path, jobs: int = 1, fmt: str = "parquet",
              progress: Callable[[int, int], Any] | None = None,
              flush_s: float = 2.0, storage: str | None = None) -> pd.DataFrame:
    """Evaluate every grid point not done yet (here and on other machines sharing
    `storage`); return the whole table, rows ordered by grid index.

    `progress(done, total)` is called as points finish.
    """
    out_dir = Path(out_dir)
    path = results_path(out_dir, fmt)
    total = problem.sweep_size()
    url = storage or default_sweep_storage(out_dir)
    if is_journal(url):
        raise InputError(f"storage {url}: a sweep claims its points in a database table; "
                         "give an RDB URL (sqlite:///FILE, postgresql://...), not a journal")
    engine = claims.open_claims(url)
    key = sweep_key(problem)
    claims.register(engine, key, ((i, problem.point_id(problem.point(i)))
                                  for i in range(total)), total)
    for n in TABLE_NAMES:  # an older table: its points count as done
        if (out_dir / n).is_file():
            old = read_table(out_dir / n)
            if "point" in old and len(old):
                claims.adopt(engine, [_plain_row(r) for r in old.drop_duplicates("point")
                                      .to_dict("records")])
            break
    claims.Watch().reclaim(engine, key, owner())  # points of killed runs here, at once
    last = [time.monotonic()]

    def done() -> int:
        return claims.counts(engine, key).get("done", 0)

    def tick(final: bool = False):
        if progress:
            progress(done(), total)
        if final or time.monotonic() - last[0] > flush_s:
            last[0] = time.monotonic()
            return flush()

    def flush() -> pd.DataFrame:
        df = table(problem, claims.done_rows(engine, key))
        write_table(df, path)
        return df

    try:
        tick()
        if jobs <= 1:
            sweep_worker(problem, url, key, on_done=tick)
        else:
            errors = run_processes(sweep_worker, [(problem, url, key)] * jobs, poll=tick)
            if errors:
                raise InputError(errors[0])
        return tick(final=True)
    except BaseException:
        if done():
            flush()
        raise
    finally:
        engine.dispose()


def table(problem: Problem, rows: list[tuple[int, dict]]) -> pd.DataFrame:
    """The results table from (grid index, stored row): the parameters as this spec names
    them (a point may have been evaluated for another spec), judged by its constraints."""
    out = []
    for idx, row in rows:
        params = problem.point(idx)
        drop = set(json.loads(row.get("params") or "{}")) | {"index", "feasible", "reason"}
        r = {k: v for k, v in row.items() if k not in drop}
        r = {k: (math.nan if v is None and k != "error" else v) for k, v in r.items()}
        out.append({"index": idx, **r, **params, "params": json.dumps(params, sort_keys=True)})
    if not out:
        return pd.DataFrame(columns=["index", "point", "feasible", "reason"])
    df = with_judgement(problem, pd.DataFrame(out))
    return _ordered(problem, df)


def _plain_row(r: dict) -> dict:
    """A row read back from a results table, as stored rows are (JSON values)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else
                v.item() if hasattr(v, "item") else v) for k, v in r.items()}


def _ordered(problem: Problem, df: pd.DataFrame) -> pd.DataFrame:
    first = ["index", "point"] + list(problem.spec.parameters) + ["feasible", "reason"] + \
        [o.column for o in problem.spec.objectives]
    first = [c for c in dict.fromkeys(first) if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


_NUM = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?")


def summarize(problem: Problem, df: pd.DataFrame, noun: str = "points") -> str:
    """One line: points, feasible, and why the infeasible ones failed (most common first,
    with the range of each number over the points of a cause: 'latency_run_s 93.2 to 410 >
    max 60 (12 points)')."""
    n = len(df)
    ok = int(df["feasible"].sum()) if n else 0
    line = f"{n} {noun}, {ok} feasible"
    if ok < n:
        first = [str(r).split("; ")[0] for r in df.loc[~df["feasible"].astype(bool), "reason"]]
        groups: dict[str, list[str]] = {}
        for r in first:
            groups.setdefault(_reason_kind(r), []).append(r)
        top = sorted(groups.items(), key=lambda kv: -len(kv[1]))[:3]
        line += "; infeasible: " + "; ".join(
            f"{_with_ranges(k, rs)} ({len(rs)} {noun if len(rs) != 1 else noun[:-1]})"
            for k, rs in top)
    return line


def _reason_kind(first: str) -> str:
    """A reason without its numbers, to group points that failed for the same cause."""
    if first.startswith("does not fit"):
        kinds = re.findall(r"([A-Z0-9]+) [0-9.]+ >", first)
        return "does not fit the device (" + ", ".join(kinds) + ")"
    return _NUM.sub("N", first)[:120]


def _with_ranges(kind: str, reasons: list[str]) -> str:
    """The group's template with each number filled in: its value, or 'lo to hi'."""
    if kind.startswith("does not fit") or "N" not in kind:
        return kind
    nums = [_NUM.findall(r) for r in reasons]
    pieces = _NUM.split(reasons[0])
    out = [pieces[0]]
    for j, rest in enumerate(pieces[1:]):
        vals = sorted({x[j] for x in nums if len(x) > j}, key=float)
        out.append(vals[0] if len(vals) == 1 else f"{vals[0]} to {vals[-1]}")
        out.append(rest)
    return "".join(out)[:200]


def all_infeasible_message(problem: Problem, df: pd.DataFrame) -> str | None:
    if len(df) and not df["feasible"].astype(bool).any():
        return (f"{problem.source}: no feasible point among {len(df)}: "
                + summarize(problem, df).split("; infeasible: ", 1)[-1])
    return None
