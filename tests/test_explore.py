"""Sweep specs, grid sweeps, Optuna search (resume, workers, seeds), Pareto export."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import dlmsim
from dlmsim.config import bundled_dir
from dlmsim.errors import InputError
from dlmsim.explore import front, load_spec, read_table, run_sweep, spec_from_data
from dlmsim.explore.pareto import compare, hypervolume, pareto_mask, write_front

DLMSIM = [sys.executable, "-m", "dlmsim"]  # the CLI of the running interpreter
TINY_RUN = {"name": "mdlm-tiny", "batch": 1, "seq_len": 64, "steps": 8}


def tiny(**over) -> dict:
    """A spec small enough for tests: 8 points on mdlm-tiny (B 1, L 64, T 8)."""
    data = {
        "version": 1, "name": "tiny", "base": "sda-style-2048-zcu102",
        "workloads": [TINY_RUN],
        "parameters": {"array.rows": [8, 16], "array.cols": [8, 16],
                       "bits.weights": [4, 8]},
        "objectives": ["latency_run_s", "dsp_used"],
        "constraints": {"fits": True, "max_frac": {"dsp": 0.75}},
    }
    data.update(over)
    return data


def write_spec(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


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
        proc = subprocess.Popen(cmd + ["--trials", "400"], stdout=log, stderr=log,
                                start_new_session=True)
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
