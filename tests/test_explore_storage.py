"""Storages of searches and sweeps: half-made schemas, drivers, silent servers, journal locks."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import tiny, write_spec

from dlmsim.errors import InputError
from dlmsim.explore import storage
from dlmsim.explore.storage import engine_kwargs, engine_url, open_storage

DLMSIM = [sys.executable, "-m", "dlmsim"]


def _search(*args) -> subprocess.CompletedProcess:
    return subprocess.run(DLMSIM + ["search", *args, "--no-plots"], capture_output=True,
                          text=True, timeout=300, check=False)


def test_half_made_schema_is_repaired(tmp_path):
    """A run killed while creating study.db leaves tables without their columns; Optuna then
    fails every later commit ('exceeding max length'). The empty schema is replaced."""
    db = sqlite3.connect(tmp_path / "study.db")
    db.execute("CREATE TABLE studies (study_id INTEGER NOT NULL PRIMARY KEY)")
    db.commit()
    db.close()
    r = _search("zcu102-mdlm-shape-bits", "--trials", "4", "--seed", "0", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "exceeding max length" not in r.stderr and "Traceback" not in r.stderr
    assert "note: storage" in r.stderr and "replaced a half-made, empty Optuna schema" in r.stderr
    assert "study zcu102-mdlm-shape-bits" in r.stderr and ": 4 trials" in r.stderr
    again = _search("zcu102-mdlm-shape-bits", "--trials", "5", "-o", str(tmp_path))
    assert again.returncode == 0 and ": 5 trials" in again.stderr, again.stderr
    assert "half-made" not in again.stderr


def test_damaged_schema_with_rows_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "study.db")
    db.execute("CREATE TABLE studies (study_id INTEGER NOT NULL PRIMARY KEY)")
    db.execute("INSERT INTO studies VALUES (1)")
    db.commit()
    db.close()
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(InputError, match="Optuna schema is damaged .table studies has no "
                       "column study_name. and it holds 1 rows; move it away"):
        open_storage(url)


def test_not_a_database_is_one_line(tmp_path):
    (tmp_path / "study.db").write_text("hello\n" * 100)
    with pytest.raises(InputError, match="^cannot open storage .*: file is not a database$"):
        open_storage(f"sqlite:///{tmp_path / 'study.db'}")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused(tmp_path, url):
    r = _search(str(write_spec(tmp_path, tiny())), "--storage", url, "-o", str(tmp_path))
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "in-memory database" in r.stderr and "sqlite:///path/study.db" in r.stderr


def test_postgresql_url_gets_psycopg3_and_timeouts():
    url = engine_url("postgresql://u:pw@db.example:5432/studies")
    assert url == "postgresql+psycopg://u:pw@db.example:5432/studies"
    args = engine_kwargs(url)["connect_args"]
    assert args["connect_timeout"] == storage.CONNECT_TIMEOUT_S == 10
    assert args["options"] == "-c statement_timeout=120000"
    mine = engine_kwargs("postgresql+psycopg://u@h/db?connect_timeout=3")["connect_args"]
    assert "connect_timeout" not in mine  # the URL's own value wins
    assert engine_kwargs("sqlite:///x.db") == {"connect_args": {"timeout": 60}}


def test_missing_driver_names_the_module(monkeypatch):
    monkeypatch.setattr(storage, "_importable", lambda m: False)
    with pytest.raises(InputError, match=r"PostgreSQL needs a driver: pip install "
                       r"'dlmsim\[postgres\]' \(psycopg 3\)$"):
        open_storage("postgresql://u@127.0.0.1:1/db")
    monkeypatch.undo()
    with pytest.raises(InputError, match=r"missing database driver: the Python module pg8000 "
                       r"\(pip install pg8000\)$"):
        open_storage("postgresql+pg8000://u@127.0.0.1:1/db")


def test_silent_server_times_out(monkeypatch):
    """A server that accepts the connection and never answers: one line after the connect
    timeout (1 s here, 10 s by default), not a hang of minutes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except TimeoutError:
                pass

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    monkeypatch.setattr(storage, "CONNECT_TIMEOUT_S", 1)
    t0 = time.monotonic()
    try:
        with pytest.raises(InputError, match=r"no answer from the server within 1 s \(connect "
                           r"timeout; add \?connect_timeout=SECONDS to the URL"):
            open_storage(f"postgresql://u@127.0.0.1:{srv.getsockname()[1]}/db")
    finally:
        stop.set()
        th.join()
        for c in held:
            c.close()
        srv.close()
    assert time.monotonic() - t0 < 10
    assert held  # it did connect: the timeout is the server's silence, not a refusal


_HOLD_LOCK = """
import sys, time
from dlmsim.explore.storage import _FlockLock
lock = _FlockLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_journal_lock_dies_with_its_holder(tmp_path, caplog):
    """A process killed while holding the journal lock leaves none behind: the next write
    goes through at once (Optuna's symlink lock made every later run wait ~30 s)."""
    import optuna

    path = tmp_path / "study.log"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    (tmp_path / "study.log.lock").symlink_to(path)  # what Optuna's own lock leaves
    t0 = time.monotonic()
    st = open_storage(f"journal:{path}")
    study = optuna.create_study(study_name="s", storage=st)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert time.monotonic() - t0 < 5
    assert "ignoring" in caplog.text and "study.log.lock" in caplog.text
