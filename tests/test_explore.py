"""Sweep specs, grid sweeps, Optuna search (resume, workers, seeds), Pareto export."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from conftest import TINY_RUN, tiny, write_spec

import dlmsim
from dlmsim.config import bundled_dir
from dlmsim.errors import InputError
from dlmsim.explore import front, load_spec, read_table, run_sweep, spec_from_data
from dlmsim.explore.pareto import compare, hypervolume, pareto_mask, write_front

DLMSIM = [sys.executable, "-m", "dlmsim"]  # the CLI of the running interpreter


# ---------------------------------------------------------------------------------- specs
@pytest.mark.parametrize("path", sorted(bundled_dir("sweeps").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_bundled_specs_load(path):
    problem = load_spec(path)
    assert problem.name == path.stem
    assert len(problem.grid()) >= 8
    assert problem.arch_data(problem.grid()[0])["version"] == 1


def test_grid_ranges_and_alias():
    p = spec_from_data(tiny(parameters={
        "array.cols": {"type": "int", "low": 16, "high": 64, "step": 16},
        "buffer.kib": {"type": "int", "low": 256, "high": 2048, "log": True},
        "clock_mhz": {"type": "float", "low": 200, "high": 300, "step": 50},
        "array.dataflow": ["os", "ws"],
    }))
    g = p.grid()
    assert len(g) == 4 * 4 * 3 * 2
    assert sorted({x["buffer.kib"] for x in g}) == [256, 512, 1024, 2048]
    assert sorted({x["clock_mhz"] for x in g}) == [200.0, 250.0, 300.0]
    assert p.arch_data({"array.dataflow": "ws"})["array"]["policy"] == "ws"


@pytest.mark.parametrize("params, match", [
    ({"array.rowz": [8, 16]}, "array.rows"),                          # nearest valid key
    ({"arry.rows": [8]}, "array"),
    ({"array.rows": {"type": "int", "low": 64, "high": 8}}, "empty range"),
    ({"array.rows": []}, "empty list"),
    ({"array.rows": [8, 8]}, "repeated"),
    ({"buffer.kib": {"type": "float", "low": 0, "high": 10, "log": True}}, "low > 0"),
    ({"bits.weights": [3, 8]}, "bits.weights: value 3"),
    ({"array.policy": ["os"], "array.dataflow": ["ws"]}, "same arch key"),
])
def test_bad_parameters_name_the_problem(params, match):
    with pytest.raises(InputError, match=match):
        spec_from_data(tiny(parameters=params))


def test_bad_objectives_and_constraints():
    with pytest.raises(InputError, match="latency_run_s"):
        spec_from_data(tiny(objectives=["latency_run"]))
    with pytest.raises(InputError, match="min 2 > max 1"):
        spec_from_data(tiny(constraints={"min": {"latency_run_s": 2}, "max":
                                         {"latency_run_s": 1}}))
    with pytest.raises(InputError, match="unknown resource"):
        spec_from_data(tiny(constraints={"max_frac": {"dps": 0.5}}))
    with pytest.raises(InputError, match="needs step or num"):
        spec_from_data(tiny(parameters={"clock_mhz": {"type": "float", "low": 200,
                                                      "high": 300}})).grid()


# --------------------------------------------------------------------------------- sweeps
def test_sweep_table_resume_and_front(tmp_path, monkeypatch):
    p = spec_from_data(tiny())
    df = run_sweep(p, tmp_path, jobs=2)
    assert len(df) == 8 and list(df["index"]) == list(range(8))
    for c in ("array.rows", "array.cols", "bits.weights", "latency_run_s", "dsp_used",
              "tokens_per_s", "bram36_frac", "feasible", "reason"):
        assert c in df.columns
    assert df["feasible"].all() and (df["reason"] == "").all()
    assert (df["latency_run_s"] > 0).all()
    # Re-running evaluates nothing: every point is in the table already.
    import dlmsim.explore.sweep as sw

    def boom(*a, **k):
        raise AssertionError("re-evaluated a finished point")

    monkeypatch.setattr(sw, "evaluate_point", boom)
    again = run_sweep(p, tmp_path, jobs=1)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), df.reset_index(drop=True))
    # Without its database (an older run's directory), the table's points are adopted.
    (tmp_path / "sweep.db").unlink()
    adopted = run_sweep(p, tmp_path, jobs=1)
    pd.testing.assert_frame_equal(adopted[df.columns].reset_index(drop=True),
                                  df.reset_index(drop=True), check_dtype=False)
    # Changed constraints re-judge cached rows without simulating.
    strict = spec_from_data(tiny(constraints={"max_frac": {"dsp": 0.02}}))
    rej = run_sweep(strict, tmp_path, jobs=1)
    assert not rej["feasible"].all()
    assert rej.loc[~rej["feasible"], "reason"].str.contains("DSP").all()


def test_front_exports_ready_arch_files(tmp_path):
    p = spec_from_data(tiny())
    df = run_sweep(p, tmp_path, fmt="csv")
    fr = write_front(p, df, tmp_path)
    assert len(fr) >= 2
    files = sorted((tmp_path / "pareto").glob("*.yaml"))
    assert len(files) == len(fr)
    trace = dlmsim.load_workload("mdlm-tiny", batch=1, seq_len=64, steps=8)
    row = fr.iloc[0]
    arch = dlmsim.load_arch(files[0])
    assert (arch.array.rows, arch.array.cols) == (row["array.rows"], row["array.cols"])
    r = dlmsim.simulate(arch, trace)
    assert r.seconds == pytest.approx(row["latency_run_s"], rel=1e-9)
    assert (tmp_path / "pareto" / "pareto.csv").is_file()


def test_infeasible_points_keep_their_reason(tmp_path):
    p = spec_from_data(tiny(parameters={"array.rows": [16, 512], "array.cols": [32],
                                        "buffer.kib": [1, 1024]}))
    df = run_sweep(p, tmp_path)
    bad = df[~df["feasible"]]
    assert len(bad) == 3
    assert bad["reason"].str.contains("does not fit|buffer.kib").all()
    too_big = df[(df["array.rows"] == 512) & (df["buffer.kib"] == 1024)].iloc[0]
    assert "DSP" in too_big["reason"] and too_big["latency_run_s"] > 0  # simulated anyway


def test_points_whose_weights_do_not_fit_dram_are_infeasible(tmp_path):
    """Issue 10.2: the sweep records the same reason `simulate` exits with (one check):
    LLaDA-8B at W4 (3.73 GiB) or W8 (7.47 GiB) does not fit a ZCU102's 3 GiB."""
    llada = {"name": "llada-8b", "steps": 4}
    p = spec_from_data(tiny(workloads=[llada], parameters={"bits.weights": [4, 8]}))
    df = run_sweep(p, tmp_path)
    assert not df["feasible"].any()
    reasons = sorted(df["reason"])
    assert reasons[0].endswith("cannot run llada-8b: DRAM footprint 3.79 GiB (weights "
                               "3.73 GiB + activations 0.0302 GiB + state 0.0302 GiB) "
                               "exceeds ps_ddr's 3 GiB usable of 4 GiB, 1 GiB reserved")
    assert "weights 7.47 GiB" in reasons[1]


def test_all_infeasible_is_one_line_exit_1(tmp_path):
    spec = write_spec(tmp_path, tiny(constraints={"max_frac": {"dsp": 0.001}}))
    r = subprocess.run(DLMSIM + ["sweep", str(spec), "-o", str(tmp_path / "out"),
                                 "--no-plots"], capture_output=True, text=True, check=False)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no feasible point" in last and "DSP" in last
    assert "Traceback" not in r.stderr


def test_cli_bad_spec_one_line(tmp_path):
    spec = write_spec(tmp_path, tiny(parameters={"array.rowz": [8]}))
    r = subprocess.run(DLMSIM + ["sweep", str(spec)], capture_output=True, text=True, check=False)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "nearest: array.rows" in r.stderr


# -------------------------------------------------------------------------------- pareto
def test_pareto_mask_and_hypervolume():
    v = [[1, 5], [2, 2], [3, 3], [5, 1], [2, 2]]
    assert list(pareto_mask(v, ["minimize", "minimize"])) == [True, True, False, True, True]
    # Staircase up to (6, 6): 5*1 + 4*3 (x 2..5) ... computed by slices: area = 17.
    assert hypervolume(v, ["minimize", "minimize"], [6, 6]) == pytest.approx(
        (6 - 1) * (6 - 5) + (6 - 2) * (5 - 2) + (6 - 5) * (2 - 1))
    assert hypervolume([[1, 1, 1]], ["minimize"] * 3, [2, 3, 4]) == pytest.approx(6)
    assert hypervolume([[2, 5]], ["minimize", "maximize"], [4, 1]) == pytest.approx(8)


# -------------------------------------------------------------------------------- search
def test_search_same_seed_same_results(tmp_path):
    from dlmsim.explore.search import run_search

    p = spec_from_data(tiny())
    a, _ = run_search(p, tmp_path / "a", trials=10, seed=3)
    b, _ = run_search(p, tmp_path / "b", trials=10, seed=3)
    cols = ["trial", "params", "latency_run_s", "dsp_used", "feasible"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert len(a) == 10
    grid = run_sweep(p, tmp_path / "grid")
    c = compare(p, grid, a)
    assert 0 < c["hv_ratio"] <= 1 + 1e-9 and c["evaluations"] <= 8


def _finished(url: str, study: str) -> dict[int, tuple]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Read only: never create tables in a database the search process is setting up.
    st = optuna.storages.RDBStorage(url, skip_compatibility_check=True,
                                    skip_table_creation=True)
    s = optuna.load_study(study_name=study, storage=st)
    return {t.number: (t.state.name, tuple(sorted(t.params.items())), t.values)
            for t in s.get_trials(deepcopy=False)
            if t.state.name == "COMPLETE" or t.user_attrs.get("dlmsim", {}).get("dead")}


def _finished_if_ready(url: str, study: str, db: Path) -> dict:
    import optuna
    import sqlalchemy

    if not db.exists():
        return {}
    try:
        return _finished(url, study)
    # Tables or study not there yet: the search process is still creating them.
    except (KeyError, sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError):
        return {}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_search_resume_after_kill_keeps_finished_trials(tmp_path, sig):
    spec = write_spec(tmp_path, tiny(parameters={
        "array.rows": [8, 16, 32], "array.cols": [8, 16, 32, 64], "bits.weights": [4, 8],
        "buffer.kib": [512, 1024]}))
    out = tmp_path / "out"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = DLMSIM + ["search", str(spec), "--storage", url, "--study", "s", "-o", str(out),
                    "--no-plots", "--seed", "1"]
    with open(tmp_path / "log", "w") as log:
        # Ctrl-C as a terminal delivers it, even where this test runs with SIGINT ignored
        # (a background job of a non-interactive shell: an ignored signal stays ignored
        # across exec, and Python then installs no handler). A handled one is reset.
        before = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = subprocess.Popen(cmd + ["--trials", "400"], stdout=log, stderr=log,
                                    start_new_session=True)
        finally:
            signal.signal(signal.SIGINT, before)
        try:
            deadline = time.monotonic() + 60
            seen: dict = {}
            while time.monotonic() < deadline and len(seen) < 6:
                time.sleep(0.3)
                seen = _finished_if_ready(url, "s", tmp_path / "study.db")
            assert len(seen) >= 6, (tmp_path / "log").read_text()[-2000:]
        finally:
            os.killpg(proc.pid, sig)  # SIGKILL: no chance to clean up, the worst case
            proc.wait(timeout=30)
    if sig == signal.SIGINT:  # stopped at once and cleanly, wherever the signal landed
        assert proc.returncode == 130, (tmp_path / "log").read_text()[-2000:]
        said = (tmp_path / "log").read_text()
        assert "Traceback" not in said
        assert said.strip().splitlines()[-1] == (f"interrupted: the finished trials are kept "
                                                 f"in {url}; the same command resumes")
    before = _finished(url, "s")
    assert len(before) >= len(seen)
    target = len(before) + 4
    r = subprocess.run(cmd + ["--trials", str(target)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    after = _finished(url, "s")
    for k, v in before.items():
        assert after[k] == v
    assert len(after) == target
    table = read_table(out)
    assert set(table["trial"]) == set(after)


def test_two_workers_share_one_study(tmp_path):
    import optuna

    from dlmsim.explore.search import run_search

    p = spec_from_data(tiny(parameters={"array.rows": [8, 16, 32], "array.cols": [8, 16, 32],
                                        "bits.weights": [4, 8]}))
    url = f"journal:{tmp_path / 'study.log'}"
    df, name = run_search(p, tmp_path, trials=16, seed=0, storage=url, workers=2)
    study = optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))))
    trials = study.get_trials(deepcopy=False)
    assert all(t.state.is_finished() for t in trials)  # nothing left running or lost
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))  # nothing duplicated
    assert 16 <= len(trials) <= 17  # a worker may start one trial past the total
    assert len(df) == len(trials) and sorted(df["trial"]) == sorted(numbers)
    for t in trials:  # each trial's stored metrics belong to its own parameters
        row = t.user_attrs["dlmsim"]["row"]
        assert all(row[k] == v for k, v in t.params.items())


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/none",
                                 "sqlite:////proc/no/such/dir/study.db"])
def test_unreachable_storage_is_one_line(tmp_path, url):
    spec = write_spec(tmp_path, tiny())
    r = subprocess.run(DLMSIM + ["search", str(spec), "--storage", url, "-o",
                                 str(tmp_path)], capture_output=True, text=True, check=False)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith(f"error: cannot open storage {url}")


def test_accuracy_objective(tmp_path, monkeypatch):
    import dlmsim.explore.evaluate as ev

    monkeypatch.setattr(ev, "_accuracy", lambda w, wb, ab: {"top1": 1.0 - 1.0 / wb,
                                                            "kl": 0.1})
    p = spec_from_data(tiny(objectives=["latency_run_s", "accuracy_top1"]))
    assert p.spec.objectives[1].sense == "maximize"
    df = run_sweep(p, tmp_path)
    assert set(df["accuracy_top1"]) == {0.75, 0.875}
    fr = front(df, p)
    assert set(fr["bits.weights"]) >= {8}


# ------------------------------------------------------------------ faults and sharing
def test_study_reused_with_another_spec_is_refused(tmp_path):
    from dlmsim.explore.search import run_search

    url = f"journal:{tmp_path / 'study.log'}"
    run_search(spec_from_data(tiny()), tmp_path, trials=3, seed=0, storage=url,
               study_name="s")
    for other in (tiny(parameters={"array.rows": [8, 32], "array.cols": [8, 16],
                                   "bits.weights": [4, 8]}),
                  tiny(workloads=[{**TINY_RUN, "batch": 2}])):
        with pytest.raises(InputError, match="study s in journal:.* holds trials of another "
                           "spec .tiny, hash [0-9a-f]{8}; this spec's is [0-9a-f]{8}.; give "
                           "another --study name"):
            run_search(spec_from_data(other), tmp_path, trials=6, storage=url, study_name="s")
    again, _ = run_search(spec_from_data(tiny(description="edited")), tmp_path, trials=4,
                          storage=url, study_name="s")  # the description is not the spec
    assert len(again) == 4


def test_workers_share_points_and_stop_at_the_total(tmp_path):
    """2 processes, random sampler, 8 points, 30 trials: exactly 30 finish (not 31), each
    point is simulated once across both processes, and each process drew its own seed."""
    from dlmsim.explore.search import run_search

    p = spec_from_data(tiny())
    url = f"sqlite:///{tmp_path / 'study.db'}"
    df, name = run_search(p, tmp_path, trials=30, seed=None, storage=url, workers=2,
                          sampler="random")
    assert len(df) == 30
    simulated = df[~df["repeat"]]
    assert simulated["point"].is_unique and set(simulated["point"]) == set(df["point"])
    study = optuna.load_study(study_name=name, storage=url)
    seeds = {t.user_attrs["dlmsim"]["seed"] for t in study.get_trials() if "dlmsim" in
             t.user_attrs}
    assert len(seeds) == 2
    assert all(t.state.name != "RUNNING" for t in study.get_trials())


def test_trials_left_running_by_a_kill_are_failed_on_resume(tmp_path):
    """Journal storages have no heartbeat: a trial of a killed process stayed RUNNING for
    ever. Its owner is gone, so the next run fails it and runs the point again."""
    from dlmsim.explore.search import open_study, run_search
    from dlmsim.explore.storage import open_storage

    p = spec_from_data(tiny())
    url = f"journal:{tmp_path / 'study.log'}"
    study = open_study(p, open_storage(url), "s", url)
    code = "from dlmsim.explore.workers import owner; print(owner())"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()
    killed = study.ask()
    killed.set_user_attr("dlmsim_owner", dead)
    df, _ = run_search(p, tmp_path, trials=3, seed=0, storage=url, study_name="s")
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[killed.number] == "FAIL" and "RUNNING" not in states.values()
    assert len(df) == 3 and killed.number not in set(df["trial"])


def test_front_is_written_as_one_unit(tmp_path, monkeypatch):
    """A kill while the front is written leaves the previous front whole (its table and its
    arch files agree), never a table whose arch files are gone."""
    import dlmsim.explore.pareto as pa
    from dlmsim.explore.workers import clean_stale_temps

    p = spec_from_data(tiny())
    df = run_sweep(p, tmp_path / "s")
    write_front(p, df, tmp_path)
    before = sorted(f.name for f in (tmp_path / "pareto").iterdir())
    calls = []

    def dies(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands for the kill
        return real(*a, **k)

    real = pa.export_arch
    monkeypatch.setattr(pa, "export_arch", dies)
    with pytest.raises(KeyboardInterrupt):
        write_front(spec_from_data(tiny(objectives=["latency_run_s", "lut_used"])), df,
                    tmp_path)
    assert sorted(f.name for f in (tmp_path / "pareto").iterdir()) == before
    table = pd.read_csv(tmp_path / "pareto" / "pareto.csv")
    assert sorted(table["arch"] + ".yaml") == [n for n in before if n.endswith(".yaml")]
    assert not clean_stale_temps(tmp_path)  # nothing left behind, even by the interruption
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []


@pytest.mark.parametrize("cmd", ["search", "sweep"])
def test_unwritable_output_fails_before_any_work(tmp_path, cmd):
    spec = write_spec(tmp_path, tiny())
    (tmp_path / "file").write_text("x")
    for out, msg in ((tmp_path / "file", "it is a file, not a directory"),
                     (tmp_path / "file" / "sub", "is a file, not a directory")):
        t0 = time.monotonic()
        r = subprocess.run(DLMSIM + [cmd, str(spec), "-o", str(out)], capture_output=True,
                           text=True, check=False)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr
        assert time.monotonic() - t0 < 20
    assert not list(tmp_path.glob("**/*.db"))


# ------------------------------------------------------------------------ spec checks
def test_huge_grid_is_counted_not_built(tmp_path):
    """10^12 values of one parameter: the spec loads at once, a sweep is refused in one
    line, a search samples the space without a grid."""
    from dlmsim.explore.search import run_search

    big = {"array.switch_cycles": {"type": "int", "low": 0, "high": 10**12},
           "array.rows": [8, 16]}
    t0 = time.monotonic()
    p = spec_from_data(tiny(parameters=big))
    assert p.grid_size() == 2 * (10**12 + 1)
    assert p.point(2 * 10**12 + 1) == {"array.switch_cycles": 10**12, "array.rows": 16}
    assert time.monotonic() - t0 < 5
    with pytest.raises(InputError, match="the grid has 2,000,000,000,002 points; a sweep "
                       "evaluates every one .at most 1,000,000.: narrow the ranges or run "
                       "`dlmsim search`"):
        run_sweep(p, tmp_path)
    df, _ = run_search(p, tmp_path, trials=3, seed=0)
    assert len(df) == 3


@pytest.mark.parametrize("over, match", [
    ({"constraints": {"max": {"latency_run_s": float("nan")}}},
     "constraints.max.latency_run_s: .*finite"),
    ({"name": "../../escape"}, "name: '../../escape': a name is letters, digits"),
    ({"set": {"device": "nosuch"}}, "set.device: value 'nosuch': unknown device 'nosuch'"),
    ({"parameters": {"device": ["zcu102", "nosuch"]}},
     "parameters.device: value 'nosuch': unknown device"),
    ({"parameters": {"run.batch": [1, 0]}}, "parameters.run.batch: value 0"),
    ({"search": {"seed": -1}}, "search.seed"),
])
def test_spec_errors_are_one_line(over, match):
    with pytest.raises(InputError, match=match):
        spec_from_data(tiny(**over))


def test_run_parameters_sweep_beside_arch_keys(tmp_path):
    p = spec_from_data(tiny(parameters={"array.rows": [8, 16], "run.batch": [1, 2],
                                        "run.seq_len": [32, 64]}))
    df = run_sweep(p, tmp_path)
    assert len(df) == 8 and df["point"].is_unique
    one = df[(df["array.rows"] == 8) & (df["run.seq_len"] == 64)].set_index("run.batch")
    # The same design on twice the batch: more time per run, more tokens per run.
    assert one.loc[2, "latency_run_s"] > one.loc[1, "latency_run_s"]
    trace = dlmsim.load_workload("mdlm-tiny", batch=2, seq_len=32, steps=8)
    arch = dlmsim.load_arch("sda-style-2048-zcu102", **{"array.rows": 16})
    row = df[(df["array.rows"] == 16) & (df["run.batch"] == 2) & (df["run.seq_len"] == 32)]
    assert row["latency_run_s"].item() == pytest.approx(dlmsim.simulate(arch, trace).seconds)


def test_infeasible_reasons_print_numbers():
    from dlmsim.explore.sweep import summarize

    p = spec_from_data(tiny(constraints={"max": {"latency_run_s": 1e-9}}))
    rows = pd.DataFrame([{"feasible": False, "reason": "latency_run_s 0.25 > max 1e-09"},
                         {"feasible": False, "reason": "latency_run_s 1.5 > max 1e-09"},
                         {"feasible": True, "reason": ""}])
    line = summarize(p, rows)
    assert line == "3 points, 1 feasible; infeasible: latency_run_s 0.25 to 1.5 > max " \
        "1e-09 (2 points)"


def test_importances_of_a_search(tmp_path):
    r = subprocess.run(DLMSIM + ["search", str(write_spec(tmp_path, tiny())), "--trials",
                                 "14", "--seed", "0", "-o", str(tmp_path / "o"),
                                 "--no-plots", "--importances"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "parameter importances (PED-ANOVA" in r.stdout
    imp = pd.read_csv(tmp_path / "o" / "importances.csv")
    assert list(imp["parameter"]) == ["array.rows", "array.cols", "bits.weights"]
    for c in ("latency_run_s", "dsp_used", "pareto"):
        assert imp[c].sum() == pytest.approx(1.0) and (imp[c] >= 0).all()


# ------------------------------------------------------------------ sweeps on storages
def _points(url: str) -> pd.DataFrame:
    import sqlalchemy as sa

    with sa.create_engine(url).connect() as c:
        return pd.read_sql("SELECT point, state, evals FROM dlmsim_points", c)


def test_two_sweep_processes_share_one_grid(tmp_path):
    spec = write_spec(tmp_path, tiny(parameters={"array.rows": [8, 16, 32],
                                                 "array.cols": [8, 16, 32, 64],
                                                 "bits.weights": [4, 8]}))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = [subprocess.Popen(DLMSIM + ["sweep", str(spec), "--storage", url, "-o",
                                        str(tmp_path / f"m{i}"), "--no-plots"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for pr in procs:
        _, e = pr.communicate(timeout=300)
        assert pr.returncode == 0, e
    pts = _points(url)
    assert len(pts) == 24 and (pts["state"] == "done").all() and (pts["evals"] == 1).all()
    a, b = (read_table(tmp_path / f"m{i}") for i in range(2))
    assert len(a) == len(b) == 24
    pd.testing.assert_frame_equal(a[["point", "latency_run_s"]], b[["point", "latency_run_s"]])


def test_sweep_resumes_after_kill_without_losing_or_repeating(tmp_path):
    spec = write_spec(tmp_path, tiny(parameters={"array.rows": [8, 16, 32],
                                                 "array.cols": [8, 16, 32, 64],
                                                 "bits.weights": [4, 8],
                                                 "buffer.kib": [512, 1024]}))
    out = tmp_path / "out"
    url = f"sqlite:///{out / 'sweep.db'}"
    cmd = DLMSIM + ["sweep", str(spec), "-j", "2", "-o", str(out), "--no-plots"]
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.3)
            with contextlib.suppress(Exception):  # the database is still being made
                if (_points(url)["state"] == "done").sum() >= 6:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    mid = _points(url)
    assert 6 <= (mid["state"] == "done").sum() < 48, (tmp_path / "log").read_text()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    pts = _points(url)
    assert len(pts) == 48 and (pts["state"] == "done").all() and (pts["evals"] == 1).all()
    assert len(read_table(out)) == 48


def test_readme_example_spec_has_feasible_points():
    """The README's example spec loads, and a mid-size design meets its constraints (its
    old 60 s cap on the geometric mean with Diffusion-LM was met by no point)."""
    import re

    from dlmsim.explore import evaluate_point, judge

    text = (bundled_dir("sweeps").parent / "README.md").read_text()
    block = re.search(r"```yaml\n(version: 1\nname: my-sweep\n.*?)```", text,
                      re.DOTALL).group(1)
    p = spec_from_data(yaml.safe_load(block), "README")
    assert p.grid_size() == 3 * 8 * 5 * 5 * 3
    ok, reason, _ = judge(p, evaluate_point(p, {"array.rows": 32, "array.cols": 64,
                                                "buffer.kib": 2048, "clock_mhz": 250.0,
                                                "array.dataflow": "auto"}))
    assert ok, reason


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_seed_out_of_range_is_one_line(tmp_path, seed):
    r = subprocess.run(DLMSIM + ["search", str(write_spec(tmp_path, tiny())), "--seed", seed,
                                 "-o", str(tmp_path / "o")], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 1 and r.stderr == f"error: --seed {seed}: a seed is an integer " \
        "from 0 to 4294967295\n"
    assert not (tmp_path / "o").exists()  # refused before anything was made


# ----------------------------------------------------------------------- spatial designs
def test_a_spec_compares_temporal_and_spatial_bases_at_equal_dsp(tmp_path):
    """`base` as a parameter: each point starts from the arch it names. The temporal
    int8-u280 at R x 128 PEs and spatial-int8-u280 at R rows (28 + 12 + 12 + 8 + 36 + 32 =
    128 columns over its six arrays) have the same DSPs at every R; the table says which
    design each point is, and the sweep evaluates each once."""
    p = spec_from_data(tiny(base="int8-u280", set={"array.cols": 128},
                            parameters={"base": ["int8-u280", "spatial-int8-u280"],
                                        "array.rows": [16, 32]},
                            constraints={"fits": True}))
    assert p.grid_size() == 4
    df = run_sweep(p, tmp_path / "out")
    assert (df["error"] == "").all()
    by = df.set_index(["base", "array.rows"])
    for rows in (16, 32):
        assert by.loc[("int8-u280", rows), "dsp_used"] == \
            by.loc[("spatial-int8-u280", rows), "dsp_used"]
    assert set(df["design"]) == {"temporal", "spatial"}
    assert dict(zip(df["base"], df["units"])) == {"int8-u280": 2, "spatial-int8-u280": 16}


def test_a_spec_varies_unit_sizes_and_which_ops_share_a_unit(tmp_path):
    """On a spatial base: one array's columns, and whether attn_out also takes mlp2's
    GEMMs (the first unit whose pattern matches an op runs it)."""
    from dlmsim.explore import evaluate_point

    p = spec_from_data(tiny(base="spatial-int8-u280", parameters={
        "units.qkv.cols": [16, 28],
        "units.attn_out.ops": ["*.attn_out auto", "*.attn_out *.mlp2"]}))
    rows = {(pt["units.qkv.cols"], pt["units.attn_out.ops"]): evaluate_point(p, pt)
            for pt in p.grid()}
    assert all(r["error"] == "" for r in rows.values())
    assert rows[(16, "*.attn_out auto")]["dsp_used"] < rows[(28, "*.attn_out auto")]["dsp_used"]
    assert rows[(28, "*.attn_out *.mlp2")]["latency_run_s"] != \
        rows[(28, "*.attn_out auto")]["latency_run_s"]


@pytest.mark.parametrize(("params", "match"), [
    ({"base": ["int8-u280", "no-such-arch"]}, r"parameters.base: unknown arch 'no-such-arch'"),
    ({"base": ["int8-u280", "spatial-int8-u280"], "units.qkv.cols": [16]},
     r"\(base int8-u280\): parameters: unknown key 'units.qkv.cols'"),
    ({"base": {"type": "int", "low": 1, "high": 2}},
     "parameters.base: a list of arch names or paths"),
])
def test_bad_base_parameters(params, match):
    with pytest.raises(InputError, match=match):
        spec_from_data(tiny(parameters=params))


def test_a_point_that_does_not_fit_its_slr_is_infeasible_with_the_reason():
    """A region pinned to SLR0 whose arrays need more DSPs than SLR0 has (3008): the
    whole device (9024) would hold them, the placement does not."""
    from dlmsim.explore import evaluate_point, judge

    p = spec_from_data(tiny(base="spatial-int8-u280", parameters={"units.qkv.rows": [200]}))
    row = evaluate_point(p, {"units.qkv.rows": 200})
    ok, reason, values = judge(p, row)
    assert not ok and "region attention does not fit SLR0: DSP" in reason
    assert row["dsp_frac"] < 1 and values["fits"] > 0
