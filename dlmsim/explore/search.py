"""Optuna search over a spec: multi-objective by default, resumable, shareable by workers.

- Sampler (`auto`): TPE (multi-objective TPE for several objectives) up to 1000 trials,
  NSGA-II beyond, where its generations pay off; constraints go to the sampler through
  `Trial.set_constraint` (values <= 0 when met).
- A point that does not fit is simulated anyway and completed with a positive constraint
  value, so the sampler learns where the edge is; a point that cannot be built or
  simulated is a FAIL trial. Every trial carries its metrics, `feasible` and `reason` as
  user attributes.
- Storage: any Optuna storage URL. The default is an SQLite file in the results directory,
  so a search stopped at any point and started again keeps every finished trial (a trial
  running when the process was killed is marked failed by the heartbeat and not counted).
  `journal:PATH` (or a path ending in .log/.journal) selects a journal file.
- `--trials N` is the study's total: a resumed or shared search runs until N trials have
  finished, over all workers (each worker checks after each trial; N can be exceeded by at
  most workers - 1).
- Workers share one study through the storage: `workers=N` starts N processes here; more
  machines join by running the same command with the same `--storage` and study name.
- The same point proposed twice is evaluated once per process: the second trial copies the
  stored metrics (a categorical space makes samplers repeat themselves).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from dlmsim.errors import InputError, reason
from dlmsim.explore.evaluate import evaluate_point, judge, objective_values
from dlmsim.explore.spec import Categorical, FloatRange, IntRange, Problem

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)


class Infeasible(Exception):
    """Raised in the objective for a point that could not be evaluated (FAIL trial)."""


def default_storage(out_dir: Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


def open_storage(url: str, heartbeat: bool = True):
    """An Optuna storage for a URL; one-line InputError when it cannot be opened."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        if url.startswith("journal:") or url.endswith((".log", ".journal")):
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            path = url.removeprefix("journal:").removeprefix("///")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(path))
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        if heartbeat:
            kwargs.update(heartbeat_interval=10, grace_period=30)
        return _rdb_storage(url, kwargs)
    # Drivers and servers fail in many ways (import, connection, auth, schema): one line.
    except Exception as e:  # noqa: BLE001
        msg = reason(e)
        if isinstance(e, ModuleNotFoundError | ImportError):
            msg = f"missing database driver ({msg})"
        raise InputError(f"cannot open storage {url}: {msg}") from None


def _rdb_storage(url: str, kwargs: dict[str, Any], tries: int = 6):
    """RDBStorage, retried while another process (a worker started at the same moment)
    is creating the same fresh database's schema: that race shows as an integrity or
    'no such table' error which disappears once the other process is done."""
    import sqlalchemy.exc

    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError,
                optuna.exceptions.StorageInternalError) as e:
            text = f"{e} {e.__cause__}".lower()
            racing = any(s in text for s in ("no such table", "already exists", "unique"))
            if not racing or attempt == tries - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def make_sampler(problem: Problem, name: str, seed: int | None, trials: int):
    n_obj = len(problem.spec.objectives)

    if name == "auto":
        # Measured on zcu102-mdlm-shape-bits (450 points, 3 seeds, README): with 135 trials
        # TPE found the whole Pareto front with every seed, NSGA-II 2 to 6 of its 6 points;
        # NSGA-II needs generations of a large population, i.e. thousands of trials.
        name = "tpe" if n_obj == 1 or trials <= 1000 else "nsga2"
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=10)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    pop = problem.spec.search.population or max(8, min(50, trials // 8))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=pop)


def suggest(trial: optuna.Trial, problem: Problem) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in problem.spec.parameters.items():
        if isinstance(p, Categorical):
            out[name] = trial.suggest_categorical(name, p.values)
        elif isinstance(p, IntRange):
            if p.num and not p.log:
                out[name] = trial.suggest_categorical(name, p.grid())
            else:
                out[name] = trial.suggest_int(name, p.low, p.high, step=p.step or 1,
                                              log=p.log)
        elif isinstance(p, FloatRange):
            if p.num:
                out[name] = trial.suggest_categorical(name, p.grid())
            else:
                out[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
    return out


def study_name_for(problem: Problem) -> str:
    return f"{problem.name}-{problem.spec_hash()}"


def _open_study(problem: Problem, storage, study_name: str, sampler):
    directions = [o.sense for o in problem.spec.objectives]
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                    directions=directions, load_if_exists=True)
    except Exception as e:  # noqa: BLE001 (storage backends raise their own types)
        raise InputError(f"cannot open study {study_name}: {reason(e)}") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise InputError(f"study {study_name} optimises other objectives; give another "
                         "--study name")
    return study


def _done(t) -> bool:
    """A trial that ran to its end: complete, or failed because its point has no metrics
    (not one interrupted by Ctrl-C or killed, which the next run does again)."""
    a = t.user_attrs.get("dlmsim")
    if a is None:
        return False
    return t.state == optuna.trial.TrialState.COMPLETE or bool(a.get("dead"))


def _finished(study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED) if _done(t))


def worker(problem: Problem, url: str, study_name: str, trials: int, seed: int | None,
           sampler_name: str, callback: Callable[[int], Any] | None = None) -> int:
    """Run trials on the shared study until it holds `trials` finished ones."""
    storage = open_storage(url)
    sampler = make_sampler(problem, sampler_name, seed, trials)
    study = _open_study(problem, storage, study_name, sampler)
    cache: dict[str, dict] = {}
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        if _done(t):
            cache[t.user_attrs["dlmsim"]["point"]] = t.user_attrs["dlmsim"]["row"]
    left = trials - _finished(study)
    if left <= 0:
        return 0

    def objective(trial: optuna.Trial):
        params = suggest(trial, problem)
        pid = problem.point_id(params)
        row = cache.get(pid)
        repeat = row is not None
        if row is None:
            row = _jsonable(evaluate_point(problem, params))
            cache[pid] = row
        ok, reason, cons = judge(problem, row)
        values = objective_values(problem, row)
        dead = bool(row.get("error")) or any(not math.isfinite(v) for v in values)
        # One attribute (one storage write) with everything the results table needs.
        trial.set_user_attr("dlmsim", {"point": pid, "row": row, "feasible": ok,
                                       "reason": reason, "repeat": repeat, "dead": dead})
        for k, v in cons.items():
            trial.set_constraint(k, v)
        if dead:
            raise Infeasible(reason or "no metrics")
        return values

    def stop(study, trial):
        n = _finished(study)
        if callback:
            callback(n)
        if n >= trials:
            study.stop()

    study.optimize(objective, n_trials=left, callbacks=[stop], catch=(Infeasible,),
                   gc_after_trial=False)
    return left


def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = None if math.isnan(v) else (1e308 if v > 0 else -1e308)
        out[k] = v
    return out


def _worker_entry(args):
    problem, url, study_name, trials, seed, sampler = args
    try:
        worker(problem, url, study_name, trials, seed, sampler)
        return ""
    except KeyboardInterrupt:
        return ""
    except InputError as e:
        return str(e)


def run_search(problem: Problem, out_dir: Path, trials: int, seed: int | None = 0,
               storage: str | None = None, workers: int = 1, sampler: str = "auto",
               study_name: str | None = None,
               progress: Callable[[int, int], Any] | None = None) -> tuple[pd.DataFrame, str]:
    """Run (or resume) the search; return (trials table, study name)."""
    url = storage or default_storage(out_dir)
    study_name = study_name or study_name_for(problem)
    # Open once here: a bad URL or an incompatible study fails before any worker starts.
    st = open_storage(url, heartbeat=False)
    study = _open_study(problem, st, study_name, None)
    study.set_user_attr("spec", problem.spec.model_dump(mode="json"))
    if progress:
        progress(_finished(study), trials)
    if workers <= 1:
        worker(problem, url, study_name, trials, seed, sampler,
               callback=(lambda n: progress(n, trials)) if progress else None)
    else:
        ctx = mp.get_context("spawn")
        args = [(problem, url, study_name, trials, None if seed is None else seed + i,
                 sampler) for i in range(workers)]
        with ctx.Pool(workers) as pool:
            res = pool.map_async(_worker_entry, args)
            while not res.ready():
                res.wait(0.5)
                if progress:
                    progress(_finished(study), trials)
            errors = [e for e in res.get() if e]
        if errors:
            raise InputError(errors[0])
    df = trials_table(problem, study)
    if progress:
        progress(_finished(study), trials)
    return df, study_name


def trials_table(problem: Problem, study) -> pd.DataFrame:
    """One row per finished trial: number, state, parameters, metrics, feasibility."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        if not _done(t):
            continue
        a = t.user_attrs["dlmsim"]
        r = {k: (math.nan if v is None and k != "error" else v) for k, v in a["row"].items()}
        r.update({"trial": t.number, "state": t.state.name.lower(),
                  "repeat": bool(a.get("repeat", False)),
                  "duration_s": (t.datetime_complete - t.datetime_start).total_seconds()
                  if t.datetime_complete and t.datetime_start else math.nan})
        rows.append(r)
    if not rows:
        return pd.DataFrame(columns=["trial", "state", "point", "feasible", "reason"])
    df = pd.DataFrame(rows).sort_values("trial").reset_index(drop=True)
    from dlmsim.explore.sweep import _ordered, with_judgement

    df = with_judgement(problem, df)
    df = _ordered(problem, df)
    first = ["trial", "state", "repeat"]
    return df[first + [c for c in df.columns if c not in first]]


def load_study_table(problem: Problem, url: str, study_name: str) -> pd.DataFrame:
    st = open_storage(url, heartbeat=False)
    try:
        study = optuna.load_study(study_name=study_name, storage=st)
    except KeyError:
        raise InputError(f"no study {study_name} in {url}") from None
    return trials_table(problem, study)
