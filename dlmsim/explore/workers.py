"""Worker processes of searches and sweeps: they die with their parent and say who they are.

- `owner()` names this process (host, boot, pid, start time); searches store it on every
  trial they run and sweeps on every grid point they claim. `alive(token)` tells, on the
  same machine, whether that process still runs: a pid reused by another program or after a
  reboot does not count, and a zombie (killed, not yet reaped) is dead. On another machine
  it returns None (unknown): there the storage's heartbeat decides.
- `run_processes(target, arg_tuples)` spawns one process per tuple. Each one kills itself
  when its parent dies (PR_SET_PDEATHSIG on Linux, plus a watchdog thread that polls the
  parent pid every `WATCH_S`), so a `kill -9` of `dlmsim search --workers N` or `sweep -j N`
  leaves no worker running on, holding memory or writing into a closed pipe, and a
  restarted run never runs beside leftovers.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from dlmsim.errors import InputError

WATCH_S = 1.0  # how often a worker checks that its parent is still there
STALE_TEMP_S = 3600  # a temp file of another host older than this was left by a dead run


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()[:8]
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks after boot) of a process from /proc, if there."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces
    except OSError:
        return None
    return fields[0], fields[19]


@cache
def owner() -> str:
    """'host/boot/pid/start' of this process (cached: one process, one token)."""
    st = _stat(os.getpid())
    return f"{socket.gethostname()}/{_boot_id()}/{os.getpid()}/{st[1] if st else ''}"


def alive(token: str) -> bool | None:
    """Whether the process named by an `owner()` token runs; None if it is on another host."""
    try:
        host, boot, pid_s, start = token.rsplit("/", 3)
        pid = int(pid_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    if boot != _boot_id():
        return False
    return pid_alive(pid, start)


def pid_alive(pid: int, start: str = "") -> bool:
    """Whether process `pid` of this host runs (and started at `start`, when given)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process with that pid: compare start times below
    st = _stat(pid)
    if st is None:
        return not os.path.isdir("/proc")  # no /proc: os.kill said it is there
    return st[0] != "Z" and (not start or st[1] == start)


def _die_with_parent(parent: int) -> None:
    """Make this process end when `parent` does (called first thing in a worker)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch():
        while True:
            if os.getppid() != parent:  # reparented: the parent is gone
                os._exit(1)
            time.sleep(WATCH_S)

    if os.getppid() != parent:  # died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _entry(parent: int, errors, target: Callable, args: tuple) -> None:
    _die_with_parent(parent)
    try:
        target(*args)
    except InputError as e:
        errors.put(str(e))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def run_processes(target: Callable, arg_tuples: Sequence[tuple],
                  poll: Callable[[], Any] | None = None, interval_s: float = 0.5) -> list[str]:
    """Run target(*args) in one spawned process per tuple; call `poll()` every interval
    while they run; return the InputError messages they raised. A worker that crashed
    any other way is reported by its exit code. Ctrl-C or an error here stops them all."""
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    procs = [ctx.Process(target=_entry, args=(os.getpid(), errors, target, a), daemon=True)
             for a in arg_tuples]
    try:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            if poll:
                poll()
            mp.connection.wait([p.sentinel for p in procs if p.is_alive()], interval_s)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
    out = []
    while not errors.empty():
        out.append(errors.get())
    crashed = [p.exitcode for p in procs if p.exitcode not in (0, 1, 130)]
    if crashed and not out:
        out.append(f"a worker process ended with exit code {crashed[0]} (see its output "
                   "above)")
    return out


def clean_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove the temp files and dirs of `dlmsim.config.write_atomic`/`temp_dir_for` that
    dead runs left in `directory` (a pid of this host that is gone, or another host's
    after `STALE_TEMP_S`); return what was removed."""
    import shutil

    out = []
    d = Path(directory)
    if not d.is_dir():
        return out
    for p in d.glob(".*@*@*@*.tmp"):
        try:
            host, pid = p.name[1:].rsplit("@", 3)[1:3]
            age = time.time() - p.lstat().st_mtime
        except (ValueError, OSError):
            continue
        mine = host == socket.gethostname()
        if (mine and pid.isdigit() and not pid_alive(int(pid))) or (not mine and
                                                                    age > STALE_TEMP_S):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            out.append(p)
    return out
