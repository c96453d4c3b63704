"""Fault injection: kill -9 searches and sweeps at random moments, restart them, count.

Run: python benchmarks/fault_injection.py [--storages sqlite journal postgresql]
         [--kills 30] [--sweep-kills 10] [--trials 60] [--seed 1]

Per storage, 4 `dlmsim search` processes (the first two with `--workers 2`) share one
study of `--trials` trials; a killer sends SIGKILL to a random one of them every 0.3-2.5 s
(the first kill 20-30 ms after the process starts: during schema creation on a fresh
storage), restarts it 0-0.5 s later, and stops after `--kills` kills; then every process
runs to its end. A poller reads the storage every 0.2 s and remembers each finished trial
it saw. Then, per storage:

- finished: trials the study holds at the end (must equal the requested total),
- lost: finished trials seen by the poller that are gone or changed at the end,
- duplicated: simulations beyond one per distinct point (trials that simulated a point
  another trial had simulated; copies of a stored point are not simulations),
- running: trials left RUNNING at the end, failed: processes that exited with an error
  (anything but 0 or the SIGKILL) and tracebacks printed by any process.

Sweeps: 2 `dlmsim sweep` processes share one grid on each RDB storage, the same killer
with `--sweep-kills` kills; lost: grid points not done at the end; duplicated: evaluations
beyond one per point (the claim table's `evals`). PostgreSQL is a throw-away server from
`tests/pgserver.py` (Debian's postgresql package). Every figure is printed as a table.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

DLMSIM = [sys.executable, "-m", "dlmsim"]
SPEC = {
    "version": 1, "name": "faults", "base": "sda-style-2048-zcu102",
    "workloads": [{"name": "mdlm-tiny", "batch": 1, "seq_len": 64, "steps": 8}],
    "parameters": {"array.rows": [8, 16, 32], "array.cols": [8, 16, 32, 64],
                   "bits.weights": [4, 8], "buffer.kib": [512, 1024]},  # 48 points
    "objectives": ["latency_run_s", "dsp_used"],
    "constraints": {"fits": True, "max_frac": {"dsp": 0.75}},
}


class Fleet:
    """Processes of one command line each, killed and restarted at random."""

    def __init__(self, cmds: list[list[str]], logs: Path):
        self.cmds, self.logs = cmds, logs
        self.procs = [self._start(i) for i in range(len(cmds))]
        self.kills = 0
        self.failed: list[str] = []

    def _start(self, i: int) -> subprocess.Popen:
        log = open(self.logs / f"p{i}.log", "a")  # noqa: SIM115 (the process owns it)
        return subprocess.Popen(self.cmds[i], stdout=log, stderr=log)

    def kill_some(self, n: int, rng: random.Random, appeared=None) -> None:
        """`n` kills; the first 20-30 ms after `appeared()` (the storage exists) is true."""
        deadline = time.monotonic() + 60
        while appeared and not appeared() and time.monotonic() < deadline:
            time.sleep(0.002)
        for k in range(n):
            time.sleep(rng.uniform(0.020, 0.030) if k == 0 else rng.uniform(0.3, 2.5))
            live = [i for i, p in enumerate(self.procs) if p.poll() is None]
            if not live:
                return
            i = rng.choice(live)
            self.procs[i].send_signal(signal.SIGKILL)
            self.procs[i].wait()
            self.kills += 1
            time.sleep(rng.uniform(0, 0.5))
            self.procs[i] = self._start(i)

    def wait(self, timeout_s: float) -> None:
        for p in self.procs:
            try:
                rc = p.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "timeout"
            if rc not in (0, -signal.SIGKILL):
                self.failed.append(f"{p.args[3]} exit {rc}")

    def tracebacks(self) -> int:
        return sum(f.read_text().count("Traceback") for f in self.logs.glob("p*.log"))


def _appeared(url: str):
    """A test that the storage has been created (a file, or a table on the server)."""
    if url.startswith(("journal:", "sqlite:///")):
        path = Path(url.removeprefix("journal:").removeprefix("sqlite:///"))
        return path.exists

    def on_server() -> bool:
        import sqlalchemy as sa

        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as c:
                return bool(sa.inspect(c).get_table_names())
        except sa.exc.SQLAlchemyError:
            return False
        finally:
            engine.dispose()
    return on_server


def _study(url: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        st = JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    else:
        st = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://"),
                                        skip_table_creation=True,
                                        skip_compatibility_check=True)
    return optuna.load_study(study_name="faults", storage=st)


def _finished(url: str) -> dict[int, tuple]:
    try:
        trials = _study(url).get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 (not created yet, or mid-creation)
        return {}
    return {t.number: (t.state.name, t.user_attrs["dlmsim"]["point"],
                       t.user_attrs["dlmsim"]["repeat"], tuple(t.values or ()))
            for t in trials if "dlmsim" in t.user_attrs and (
                t.state.name == "COMPLETE" or t.user_attrs["dlmsim"].get("dead"))}


def search_run(name: str, url: str, spec: Path, tmp: Path, trials: int, kills: int,
               rng: random.Random) -> dict:
    logs = tmp / f"logs-{name}"
    logs.mkdir()
    cmds = [DLMSIM + ["search", str(spec), "--trials", str(trials), "--study", "faults",
                      "--storage", url, "-o", str(tmp / f"{name}-s{i}"), "--no-plots",
                      "--workers", "2" if i < 2 else "1"] for i in range(4)]
    seen: dict[int, tuple] = {}
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            seen.update(_finished(url))
            time.sleep(0.2)

    t0 = time.monotonic()
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    fleet = Fleet(cmds, logs)
    fleet.kill_some(kills, rng, _appeared(url))
    fleet.wait(900)
    stop.set()
    poller.join()
    end = _finished(url)
    study = _study(url)
    simulated = [pt for _, pt, repeat, _ in end.values() if not repeat]
    return {"storage": name, "kills": fleet.kills, "requested": trials,
            "finished": len(end), "lost": sum(1 for k, v in seen.items() if end.get(k) != v),
            "duplicated": len(simulated) - len(set(simulated)),
            "running": sum(1 for t in study.get_trials(deepcopy=False)
                           if t.state.name == "RUNNING"),
            "failed": len(fleet.failed), "tracebacks": fleet.tracebacks(),
            "wall_s": round(time.monotonic() - t0, 1)}


def sweep_run(name: str, url: str, spec: Path, tmp: Path, kills: int,
              rng: random.Random) -> dict:
    import sqlalchemy as sa

    logs = tmp / f"logs-sweep-{name}"
    logs.mkdir()
    cmds = [DLMSIM + ["sweep", str(spec), "--storage", url, "-o", str(tmp / f"{name}-w{i}"),
                      "--no-plots"] for i in range(2)]
    t0 = time.monotonic()
    fleet = Fleet(cmds, logs)
    fleet.kill_some(kills, rng)
    fleet.wait(900)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT state, evals FROM dlmsim_points")).all()
    engine.dispose()
    grid = 1
    for v in SPEC["parameters"].values():
        grid *= len(v)
    return {"storage": name, "kills": fleet.kills, "points": grid,
            "done": sum(1 for s, _ in rows if s == "done"),
            "lost": grid - sum(1 for s, _ in rows if s == "done"),
            "duplicated": sum(max(e - 1, 0) for _, e in rows),
            "failed": len(fleet.failed), "tracebacks": fleet.tracebacks(),
            "wall_s": round(time.monotonic() - t0, 1)}


def _table(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--storages", nargs="+", default=["sqlite", "journal", "postgresql"])
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--sweep-kills", type=int, default=10)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        spec = tmp / "faults.yaml"
        spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
        urls = {"sqlite": f"sqlite:///{tmp / 'study.db'}", "journal": f"journal:{tmp / 'j.log'}"}
        searches, sweeps = [], []
        pg = None
        if "postgresql" in args.storages:
            import pgserver

            (tmp / "pg").mkdir()
            pg = pgserver.server(tmp / "pg")
            urls["postgresql"] = pg.__enter__()
        try:
            for name in args.storages:
                searches.append(search_run(name, urls[name], spec, tmp, args.trials,
                                           args.kills, rng))
                print(_table(searches[-1:]), flush=True)
            for name in [s for s in args.storages if s != "journal"]:
                sweeps.append(sweep_run(name, urls[name], spec, tmp, args.sweep_kills, rng))
                print(_table(sweeps[-1:]), flush=True)
        finally:
            if pg is not None:
                pg.__exit__(None, None, None)
        print("\nsearches (4 processes, two of them with 2 workers):\n" + _table(searches))
        print("\nsweeps (2 processes on one grid):\n" + _table(sweeps))


if __name__ == "__main__":
    main()
