"""Optuna search over a spec: multi-objective by default, resumable, shareable by workers.

- Sampler (`auto`): TPE (multi-objective TPE for several objectives) up to 1000 trials,
  NSGA-II beyond, where its generations pay off; constraints go to the sampler through
  `Trial.set_constraint` (values <= 0 when met).
- A point that does not fit is simulated anyway and completed with a positive constraint
  value, so the sampler learns where the edge is; a point that cannot be built or
  simulated is a FAIL trial. Every trial carries its metrics, `feasible` and `reason` as
  user attributes.
- Storage: any URL of `dlmsim.explore.storage`; the default is an SQLite file in the results
  directory. A study records its spec's hash: reusing a study with another spec is refused.
- `--trials N` is the study's total: a resumed or shared search runs until exactly N trials
  have finished, over all workers. Before each trial a worker counts the finished trials
  and the live running ones; a trial started past the total (a race between workers) is
  dropped as surplus before it simulates anything.
- Workers share one study through the storage: `workers=N` starts N processes here; more
  machines join by running the same command with the same `--storage` and study name.
  Each process gets its own seed (from its host, pid and clock, stored on its trials)
  unless a seed is given: then worker i uses seed + i, so one process is reproducible.
- A point is simulated once per study: a worker looks a proposed point up among every
  trial in the storage (not only its own), and first waits for each live lower-numbered
  trial that simulates the same point or has not named its point yet (trial numbers are
  given out atomically by every storage, so they order the claims without a lock).
- Interrupted trials: each trial names its process (`workers.owner`). On start and while
  waiting, a search fails RUNNING trials whose process on this machine is gone; RDB
  storages also fail trials whose heartbeat stopped (other machines); a RUNNING trial that
  never got an owner (killed while being sampled) is failed after `UNOWNED_S`.
- Ctrl-C stops a worker at once inside a simulation, otherwise after the storage call it
  lands in (`interrupts`): Optuna and SQLAlchemy cannot take a KeyboardInterrupt midway.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from dlmsim.errors import InputError, reason
from dlmsim.explore.evaluate import evaluate_point, jsonable, judge, objective_values
from dlmsim.explore.interrupts import deferred
from dlmsim.explore.spec import Categorical, FloatRange, IntRange, Problem
from dlmsim.explore.storage import log, open_storage
from dlmsim.explore.workers import alive, owner, run_processes

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
RUNNING = optuna.trial.TrialState.RUNNING
SEED_LIMIT = 2**32  # numpy's seed range
UNOWNED_S = 120  # a RUNNING trial without an owner this old was killed while sampled
WAIT_S = 600  # give up waiting for trials of other processes after this long without news
POLL_S = 0.5


class Infeasible(Exception):
    """Raised in the objective for a point that could not be evaluated (FAIL trial)."""


class Surplus(Exception):
    """Raised in the objective for a trial started past the study's total (not counted)."""


def default_storage(out_dir: Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


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


def process_seed(i: int = 0) -> int:
    """A seed of its own for each process and worker (host, pid, boot, clock)."""
    blob = f"{owner()}/{time.time_ns()}/{i}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big")


def worker_seeds(seed: int | None, workers: int) -> list[int]:
    if seed is None:
        return [process_seed(i) for i in range(workers)]
    if not 0 <= seed < SEED_LIMIT:
        raise InputError(f"--seed {seed}: a seed is an integer from 0 to {SEED_LIMIT - 1}")
    return [(seed + i) % SEED_LIMIT for i in range(workers)]


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


def open_study(problem: Problem, storage, study_name: str, url: str, sampler=None):
    """Create or load the study; refuse one made for another spec (hash stored on it)."""
    directions = [o.sense for o in problem.spec.objectives]
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                    directions=directions, load_if_exists=True)
    except Exception as e:  # noqa: BLE001 (storage backends raise their own types)
        raise InputError(f"cannot open study {study_name}: {reason(e)}") from None
    mine = problem.spec_hash()
    attrs = study.user_attrs
    theirs = attrs.get("spec_hash")
    if theirs is None and study.get_trials(deepcopy=False):
        theirs = "unrecorded"  # trials of a dlmsim before spec hashes: cannot tell
    hint = ("give another --study name" if study_name != study_name_for(problem)
            else "give --study NAME for a new study")
    if theirs == "unrecorded":
        raise InputError(f"study {study_name} in {url} holds trials made before dlmsim "
                         f"recorded spec hashes; {hint}")
    if theirs is not None and theirs != mine:
        old = attrs.get("spec", {}).get("name", "?")
        raise InputError(f"study {study_name} in {url} holds trials of another spec ({old}, "
                         f"hash {theirs}; this spec's is {mine}); {hint}")
    if [d.name.lower() for d in study.directions] != directions:
        raise InputError(f"study {study_name} optimises other objectives; {hint}")
    if theirs is None:
        study.set_user_attr("spec_hash", mine)
        study.set_user_attr("spec", problem.spec.model_dump(mode="json"))
    return study


# ---------------------------------------------------------------------- trial bookkeeping
def _done(t) -> bool:
    """A trial that ran to its end: complete, or failed because its point has no metrics
    (not one interrupted by Ctrl-C or killed, which the next run does again)."""
    a = t.user_attrs.get("dlmsim")
    if a is None:
        return False
    return t.state == optuna.trial.TrialState.COMPLETE or bool(a.get("dead"))


def _finished(study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED) if _done(t))


def _live(t) -> bool:
    """A RUNNING trial that may still finish (its process alive, or on another host)."""
    who = t.user_attrs.get("dlmsim_owner")
    if who is None:
        return _age_s(t) < UNOWNED_S
    return alive(who) is not False


def _age_s(t) -> float:
    return (datetime.now() - t.datetime_start).total_seconds() if t.datetime_start else 0.0


def fail_dead_trials(study) -> int:
    """Fail RUNNING trials that cannot finish (see the module docstring); return how many."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(RUNNING,)):
        if _live(t):
            continue
        try:
            n += bool(study._storage.set_trial_state_values(t._trial_id,
                                                            optuna.trial.TrialState.FAIL))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another process failed or finished it first
    optuna.storages.fail_stale_trials(study)  # heartbeats (RDB storages with heartbeat)
    if n:
        log.warning("study %s: failed %d trial(s) left running by a killed process",
                    study.study_name, n)
    return n


class Known:
    """Metrics of every point the study already holds, read incrementally from storage."""

    def __init__(self, study):
        self.study = study
        self.rows: dict[str, dict] = {}
        self._seen: set[int] = set()
        self.refresh()

    def refresh(self) -> list:
        trials = self.study.get_trials(deepcopy=False)
        for t in trials:
            if t.number in self._seen or not t.state.is_finished():
                continue
            self._seen.add(t.number)
            a = t.user_attrs.get("dlmsim")
            if a is not None and "row" in a:
                self.rows.setdefault(a["point"], a["row"])
        return trials

    def lookup(self, point: str, number: int) -> dict | None:
        """The point's row if the study holds it, after waiting for every live
        lower-numbered trial that is simulating it or has not said its point yet (trial
        numbers order the claims, so of two trials on one point only the first simulates);
        None if this trial should simulate it."""
        waited = time.monotonic()
        while True:
            if point in self.rows:
                return self.rows[point]
            trials = self.refresh()
            if point in self.rows:
                return self.rows[point]
            busy = [t for t in trials if t.state == RUNNING and t.number < number
                    and t.user_attrs.get("dlmsim_point") in (None, point) and _live(t)]
            if not busy or time.monotonic() - waited > WAIT_S:
                return None
            time.sleep(POLL_S)


def worker(problem: Problem, url: str, study_name: str, trials: int, seed: int | None,
           sampler_name: str, callback: Callable[[int], Any] | None = None) -> int:
    """Run trials on the shared study until it holds `trials` finished ones; return how
    many this worker ran."""
    storage = open_storage(url)
    sampler = make_sampler(problem, sampler_name, seed, trials)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    known = Known(study)
    me = owner()

    def objective(trial: optuna.Trial):
        trial.set_user_attr("dlmsim_owner", me)
        params = suggest(trial, problem)
        pid = problem.point_id(params)
        trial.set_user_attr("dlmsim_point", pid)
        before = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        if sum(1 for t in before if _done(t) or (t.state == RUNNING and _live(t))) >= trials:
            raise Surplus
        row = known.lookup(pid, trial.number)
        repeat = row is not None
        if row is None:
            with intr.interruptible():  # `intr`: the deferred() of the trial loop below
                row = jsonable(evaluate_point(problem, params))
            known.rows[pid] = row
        ok, reason, cons = judge(problem, row)
        values = objective_values(problem, row)
        dead = bool(row.get("error")) or any(not math.isfinite(v) for v in values)
        # One attribute (one storage write) with everything the results table needs.
        trial.set_user_attr("dlmsim", {"point": pid, "row": row, "feasible": ok,
                                       "reason": reason, "repeat": repeat, "dead": dead,
                                       "seed": seed})
        for k, v in cons.items():
            trial.set_constraint(k, v)
        if dead:
            raise Infeasible(reason or "no metrics")
        return values

    with deferred() as intr:
        ran, last_news, last_n = 0, time.monotonic(), -1
        while True:
            intr.check()
            trials_now = study.get_trials(deepcopy=False)
            n = sum(1 for t in trials_now if _done(t))
            if n != last_n:
                last_news, last_n = time.monotonic(), n
                if callback:
                    callback(n)
            if n >= trials:
                return ran
            running = sum(1 for t in trials_now if t.state == RUNNING and _live(t))
            if n + running >= trials:  # the rest is being run elsewhere: wait for it
                if time.monotonic() - last_news > WAIT_S:
                    log.warning("study %s: %d of %d trials finished; %d still running elsewhere "
                                "after %d s without news", study_name, n, trials, running, WAIT_S)
                    return ran
                fail_dead_trials(study)
                time.sleep(POLL_S)
                continue
            study.optimize(objective, n_trials=1, catch=(Infeasible, Surplus),
                           gc_after_trial=False)
            ran += 1


def run_search(problem: Problem, out_dir: Path, trials: int, seed: int | None = 0,
               storage: str | None = None, workers: int = 1, sampler: str = "auto",
               study_name: str | None = None,
               progress: Callable[[int, int], Any] | None = None) -> tuple[pd.DataFrame, str]:
    """Run (or resume) the search; return (trials table, study name)."""
    url = storage or default_storage(out_dir)
    study_name = study_name or study_name_for(problem)
    seeds = worker_seeds(seed, workers)
    # Open once here: a bad URL or an incompatible study fails before any worker starts.
    study = open_study(problem, open_storage(url), study_name, url)
    fail_dead_trials(study)
    if progress:
        progress(_finished(study), trials)
    if workers <= 1:
        worker(problem, url, study_name, trials, seeds[0], sampler,
               callback=(lambda n: progress(n, trials)) if progress else None)
    else:
        args = [(problem, url, study_name, trials, s, sampler) for s in seeds]
        errors = run_processes(worker, args, poll=(lambda: progress(_finished(study), trials))
                               if progress else None)
        if errors:
            raise InputError(errors[0])
    fail_dead_trials(study)
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


def load_study(url: str, study_name: str):
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(url))
    except KeyError:
        raise InputError(f"no study {study_name} in {url}") from None


def load_study_table(problem: Problem, url: str, study_name: str) -> pd.DataFrame:
    return trials_table(problem, load_study(url, study_name))


def importances(problem: Problem, study) -> pd.DataFrame:
    """PED-ANOVA importance of each parameter: how much it decides whether a point reaches
    the best 10 % of each objective, and (column `pareto`) the best ranks of all objectives
    together; each column sums to 1.

    Optuna's `PedAnovaImportanceEvaluator` (Watanabe et al., IJCAI 2023: Parzen estimators
    of the top-quantile trials against all trials; pure numpy, deterministic), over the
    distinct points simulated (a repeated point would weigh twice), feasible or not. Its
    authors advise at least 5 points in the top 10 %, i.e. 50 simulated points."""
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    seen, trials = set(), []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        a = t.user_attrs.get("dlmsim") or {}
        if a.get("point") not in seen:
            seen.add(a.get("point"))
            trials.append(t)
    varied = [n for n in problem.spec.parameters if len({str(t.params.get(n)) for t in
                                                         trials}) > 1]
    if len(trials) < 2 or not varied:
        raise InputError(f"study {study.study_name}: importances need at least 2 simulated "
                         f"points that differ (it holds {len(trials)})")
    tmp = optuna.create_study(directions=list(study.directions))
    tmp.add_trials(trials)
    targets = {o.column: (lambda t, i=i, s=(-1 if o.sense == "maximize" else 1):
                          s * t.values[i]) for i, o in enumerate(problem.spec.objectives)}
    if len(targets) > 1:
        targets["pareto"] = None
    cols = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "prefer >= 5 trials above the quantile"
        for name, target in targets.items():
            cols[name] = get_param_importances(tmp, evaluator=PedAnovaImportanceEvaluator(),
                                               params=varied, target=target, normalize=True)
    df = pd.DataFrame(cols).reindex(list(problem.spec.parameters)).fillna(0.0)
    df.index.name = "parameter"
    return df.reset_index()
