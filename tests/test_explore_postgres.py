"""The README's PostgreSQL recipe on a real server: shared searches and sweeps, a kill -9.

A PostgreSQL server (`pgserver`: Debian's `postgresql` package, which `.ci/run` installs)
is started on 127.0.0.1 in a temporary directory, with the role and database made as the
README says. Then 4 `dlmsim search` processes (two with `--workers 2`) share one study,
one of them is killed with SIGKILL and started again, and 2 `dlmsim sweep` processes share
one grid, one killed and restarted: nothing finished is lost, the study holds exactly the
requested trials, and no point is simulated twice.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pandas as pd
import pgserver
import pytest
from conftest import tiny, write_spec

from dlmsim.explore import read_table

DLMSIM = [sys.executable, "-m", "dlmsim"]
TRIALS = 40
SPACE = {"array.rows": [8, 16, 32], "array.cols": [8, 16, 32, 64], "bits.weights": [4, 8],
         "buffer.kib": [512, 1024]}  # 48 points


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The URL of the dlmsim role's database on a running server, stopped at the end."""
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg 3) is not installed")
    try:
        with pgserver.server(tmp_path_factory.mktemp("pg")) as url:
            yield url
    except pgserver.Unavailable as e:
        pytest.skip(str(e))


def _study(url: str, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=url.replace("postgresql://",
                                                                  "postgresql+psycopg://"))


def _done(url: str) -> dict[int, tuple]:
    """Finished trials of the shared study: number -> (point, simulated or copied)."""
    try:
        study = _study(url, "shared")
    except KeyError:
        return {}
    return {t.number: (t.user_attrs["dlmsim"]["point"], t.user_attrs["dlmsim"]["repeat"])
            for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
            and "dlmsim" in t.user_attrs}


def test_shared_search_and_sweep_survive_a_kill(server, tmp_path):
    url = server
    spec = write_spec(tmp_path, tiny(parameters=SPACE))
    t0 = time.monotonic()

    def search(i: int, workers: int) -> subprocess.Popen:
        return subprocess.Popen(
            DLMSIM + ["search", str(spec), "--trials", str(TRIALS), "--workers", str(workers),
                      "--study", "shared", "--storage", url, "-o", str(tmp_path / f"s{i}"),
                      "--no-plots"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = [search(i, 2 if i < 2 else 1) for i in range(4)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_done(url)) < 8:
        time.sleep(0.3)
    before = _done(url)
    assert len(before) >= 8, procs[0].communicate()[1]
    procs[0].send_signal(signal.SIGKILL)  # the parent of two workers
    procs[0].wait()
    procs[0] = search(0, 2)  # started again, as a user would
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0 and "Traceback" not in err, err
    after = _done(url)
    assert len(after) == TRIALS  # exactly the total, over all processes
    assert all(after[k] == v for k, v in before.items())  # nothing finished is lost
    simulated = [pt for pt, repeat in after.values() if not repeat]
    assert len(simulated) == len(set(simulated)) == len({pt for pt, _ in after.values()})
    study = _study(url, "shared")
    assert not [t for t in study.get_trials() if t.state.name == "RUNNING"]
    for i in range(4):  # every process wrote the whole study's table
        assert len(read_table(tmp_path / f"s{i}")) == TRIALS

    # Two sweep processes on one grid, one killed and started again.
    def sweep(i: int) -> subprocess.Popen:
        return subprocess.Popen(DLMSIM + ["sweep", str(spec), "--storage", url, "-o",
                                          str(tmp_path / f"w{i}"), "--no-plots"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = [sweep(0), sweep(1)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (_points(url)["state"] == "done").sum() < 8:
        time.sleep(0.3)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    procs[0] = sweep(0)
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0 and "Traceback" not in err, err
    pts = _points(url)
    assert len(pts) == 48 and (pts["state"] == "done").all()
    assert (pts["evals"] == 1).all()  # each point evaluated once, over both machines
    a, b = read_table(tmp_path / "w0"), read_table(tmp_path / "w1")
    assert len(a) == len(b) == 48 and set(a["point"]) == set(pts["point"])
    print(f"PostgreSQL search + sweep test: {time.monotonic() - t0:.1f} s")


def _points(url: str) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as c:
            if not sa.inspect(c).has_table("dlmsim_points"):
                return pd.DataFrame(columns=["point", "state", "evals"])
            return pd.read_sql("SELECT point, state, evals FROM dlmsim_points", c)
    finally:
        engine.dispose()
