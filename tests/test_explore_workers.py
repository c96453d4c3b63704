"""Worker processes: they die with their parent; owner tokens; leftovers of dead runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny, write_spec

from dlmsim.explore.workers import alive, clean_stale_temps, owner, pid_alive

DLMSIM = [sys.executable, "-m", "dlmsim"]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(d.name))
    return out


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_owner_tokens():
    me = owner()
    host, _, pid, start = me.rsplit("/", 3)
    assert host == socket.gethostname() and int(pid) == os.getpid() and start
    assert alive(me) is True
    assert alive(me.rsplit("/", 1)[0] + "/1") is False  # same pid, another start: reused
    assert alive(f"{host}/{me.split('/')[1]}/{_dead_pid()}/1") is False
    assert alive("other-host/abc/1/2") is None  # another machine: only its heartbeat tells


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
@pytest.mark.parametrize("cmd", ["search", "sweep"])
def test_workers_die_with_their_parent(tmp_path, cmd):
    """kill -9 of the main process: its workers stop within seconds (they ran on to the end
    and printed BrokenPipeError tracebacks, or for sweeps stayed alive for ever)."""
    spec = write_spec(tmp_path, tiny(parameters={
        "array.rows": [8, 16, 32], "array.cols": [8, 16, 32, 64], "bits.weights": [4, 8],
        "buffer.kib": [256, 512, 1024, 2048]}))
    args = (["search", str(spec), "--workers", "2", "--trials", "500"] if cmd == "search"
            else ["sweep", str(spec), "-j", "2"])
    with open(tmp_path / "log", "w") as log:
        parent = subprocess.Popen(DLMSIM + args + ["-o", str(tmp_path / "out"), "--no-plots"],
                                  stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = [c for c in _children(parent.pid)
                       if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
        assert len(workers) == 2, (tmp_path / "log").read_text()
        time.sleep(2)  # let them get into their trials / points
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(pid_alive(w) for w in workers)
    assert "Traceback" not in (tmp_path / "log").read_text()


def test_stale_temps_of_dead_runs_are_cleaned(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f".results.parquet@{host}@{_dead_pid()}@x1.tmp"
    mine = tmp_path / f".results.parquet@{host}@{os.getpid()}@x2.tmp"
    theirs_new = tmp_path / ".results.parquet@elsewhere@1@x3.tmp"
    theirs_old = tmp_path / ".results.parquet@elsewhere@1@x4.tmp"
    front = tmp_path / f".pareto@{host}@{_dead_pid()}@x5.tmp"
    for f in (dead, mine, theirs_new, theirs_old):
        f.write_text("partial")
    front.mkdir()
    (front / "p00.yaml").write_text("half")
    os.utime(theirs_old, (time.time() - 7200, time.time() - 7200))
    gone = clean_stale_temps(tmp_path)
    assert sorted(gone) == sorted([dead, theirs_old, front])
    assert mine.exists() and theirs_new.exists() and not front.exists()
