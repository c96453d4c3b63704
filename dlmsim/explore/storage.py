"""The storages searches and sweeps share, opened so that real deployments fail in one line.

- URLs: any Optuna RDB URL (`sqlite:///f.db`, `postgresql://user:pw@host/db`,
  `mysql+pymysql://...`) or a journal file (`journal:PATH`, or a path ending in .log or
  .journal). A plain `postgresql://` URL uses psycopg 3 when it is installed (the `postgres`
  extra), else psycopg2; a missing driver names the module to install. An in-memory SQLite
  URL is refused: it vanishes with the process and each worker would see its own.
- Timeouts: a server that accepts the connection but never answers fails after
  `CONNECT_TIMEOUT_S`, a statement that hangs after `STATEMENT_TIMEOUT_S` (PostgreSQL and
  MySQL; parameters given in the URL's query win); SQLite waits up to `SQLITE_BUSY_S` for a
  writer's lock.
- A half-made Optuna schema (a run killed while creating a fresh database, or a foreign
  table of the same name) is repaired when its tables hold no rows, and otherwise refused
  with a line that names the table; Optuna would fail on every later commit.
- Journal files are locked with flock(2) on the journal itself: the kernel drops the lock
  when its holder dies, so a run killed mid-write never leaves a stale lock behind (Optuna's
  default symlink lock does, and every later run then waits out a 30 s grace period).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from dlmsim.errors import InputError, reason

CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 120
SQLITE_BUSY_S = 60
HEARTBEAT_S = 10  # RDB trial heartbeat; a trial silent for GRACE_S is failed
GRACE_S = 30

log = logging.getLogger("dlmsim.explore")

# Python module a driver URL needs -> what to install for it.
_DRIVERS = {"psycopg": "pip install 'dlmsim[postgres]' (psycopg 3)",
            "psycopg2": "pip install psycopg2-binary", "pymysql": "pip install PyMySQL",
            "MySQLdb": "pip install mysqlclient", "pg8000": "pip install pg8000"}


def is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith((".log", ".journal"))


def journal_path(url: str) -> Path:
    return Path(url.removeprefix("journal:").removeprefix("///"))


def sqlite_path(url: str) -> Path | None:
    """The file of an `sqlite:///PATH` URL (None for other URLs)."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def engine_url(url: str) -> str:
    """The URL with the driver spelt out where the user left it to SQLAlchemy."""
    if url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url:
        raise InputError(f"storage {url} is an in-memory database: it disappears with the "
                         "process and workers cannot share it; give a file "
                         "(sqlite:///path/study.db) or leave --storage out")
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        for mod in ("psycopg", "psycopg2"):
            if _importable(mod):
                return f"postgresql+{mod}://{rest}"
        raise InputError(f"cannot open storage {url}: PostgreSQL needs a driver: "
                         f"{_DRIVERS['psycopg']}")
    if scheme == "mysql" and not _importable("MySQLdb") and _importable("pymysql"):
        return f"mysql+pymysql://{rest}"
    return url


def engine_kwargs(url: str) -> dict[str, Any]:
    """Connection arguments: timeouts (unless the URL sets them) and liveness checks."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    query = set(u.query)
    args: dict[str, Any] = {}
    if u.get_backend_name() == "sqlite":
        args["timeout"] = SQLITE_BUSY_S
        return {"connect_args": args}
    if u.get_backend_name() == "postgresql":
        if "connect_timeout" not in query:
            args["connect_timeout"] = CONNECT_TIMEOUT_S
        if "options" not in query:
            args["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"
    elif u.get_backend_name() == "mysql":
        for k, v in (("connect_timeout", CONNECT_TIMEOUT_S), ("read_timeout",
                     STATEMENT_TIMEOUT_S), ("write_timeout", STATEMENT_TIMEOUT_S)):
            if k not in query:
                args[k] = v
    return {"connect_args": args, "pool_pre_ping": True}


def storage_error(url: str, e: BaseException) -> InputError:
    """One line for whatever a driver or server raised while opening `url`."""
    chain, x = [], e
    while x is not None and len(chain) < 8:
        chain.append(x)
        x = x.__cause__ or x.__context__
    for x in chain:
        if isinstance(x, ModuleNotFoundError) and x.name:
            mod = x.name.split(".")[0]
            how = _DRIVERS.get(mod, f"pip install {mod}")
            return InputError(f"cannot open storage {url}: missing database driver: the "
                              f"Python module {mod} ({how})")
    orig = getattr(e, "orig", None)
    text = reason(orig if orig is not None else e)
    low = text.lower()
    if "timeout expired" in low or "timed out" in low:
        msg = (f"no answer from the server within {CONNECT_TIMEOUT_S} s (connect timeout; "
               "add ?connect_timeout=SECONDS to the URL to wait longer)")
    elif "can't load plugin" in low:
        msg = f"unknown kind of database '{url.partition(':')[0]}'"
    elif "could not parse" in low:
        msg = "not a storage URL (e.g. sqlite:///study.db, postgresql://user@host/db)"
    else:
        msg = text
    return InputError(f"cannot open storage {url}: {msg}")


def open_engine(url: str):
    """A SQLAlchemy engine for an RDB URL (the sweep's claim tables live there)."""
    import sqlalchemy

    path = sqlite_path(url)
    real = engine_url(url)
    try:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sqlalchemy.create_engine(real, **engine_kwargs(real))
        with engine.connect():
            pass
    except Exception as e:  # noqa: BLE001 (drivers raise their own types)
        raise storage_error(url, e) from None
    return engine


def check_schema(engine, url: str) -> None:
    """Repair a half-made Optuna schema that holds nothing; refuse one that holds rows."""
    import sqlalchemy
    from optuna.storages._rdb import models

    tables = models.BaseModel.metadata.tables
    insp = sqlalchemy.inspect(engine)
    have = set(insp.get_table_names()) & set(tables)
    damaged = []
    for name in sorted(have):
        cols = {c["name"] for c in insp.get_columns(name)}
        missing = [c.name for c in tables[name].c if c.name not in cols]
        if missing:
            damaged.append(f"table {name} has no column {missing[0]}")
    if not damaged:
        return
    with engine.connect() as conn:
        rows = sum(conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(
            sqlalchemy.table(n))).scalar() for n in have)
    if rows:
        raise InputError(f"storage {url}: its Optuna schema is damaged ({damaged[0]}) and "
                         f"it holds {rows} rows; move it away or give another --storage")
    with engine.begin() as conn:
        for n in ["alembic_version"] + [t.name for t in reversed(
                models.BaseModel.metadata.sorted_tables)]:
            conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{n}"'))
    log.warning("storage %s: replaced a half-made, empty Optuna schema (%s; a run killed "
                "while creating it)", url, damaged[0])


def open_storage(url: str, heartbeat: bool = True):
    """An Optuna storage for a URL; one-line InputError when it cannot be opened."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if is_journal(url):
        return _journal(url)
    engine = open_engine(url)
    try:
        check_schema(engine, url)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001
        raise storage_error(url, e) from None
    finally:
        engine.dispose()
    real = engine_url(url)
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs(real)}
    if heartbeat:
        kwargs.update(heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    try:
        return _rdb_storage(real, kwargs)
    except Exception as e:  # noqa: BLE001
        raise storage_error(url, e) from None


def _rdb_storage(url: str, kwargs: dict[str, Any], tries: int = 6):
    """RDBStorage, retried while another process (a worker started at the same moment)
    is creating the same fresh database's schema: that race shows as an integrity or
    'no such table' error which disappears once the other process is done."""
    import optuna
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


def _journal(url: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _FlockLock(str(path)) if _FlockLock.usable() else None
        old = Path(f"{path}.lock")
        if lock and (old.exists() or old.is_symlink()):
            log.warning("ignoring %s: an Optuna symlink lock, left by a killed run or another "
                        "program (dlmsim locks the journal itself with flock)", old)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    except OSError as e:
        raise InputError(f"cannot open storage {url}: {e.strerror}: {e.filename}") from None


class _FlockLock:
    """Optuna journal lock (its acquire/release protocol) held with flock(2) on the journal
    file: the lock dies with its holder."""

    def __init__(self, path: str):
        self._path = path
        self._fd: int | None = None

    @staticmethod
    def usable() -> bool:
        try:
            import fcntl  # noqa: F401
        except ImportError:  # Windows: Optuna's own lock
            return False
        return True

    def acquire(self) -> bool:
        import fcntl

        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        import fcntl

        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
