"""Grid points in a database, claimed by sweep workers on any number of machines.

Two tables sit beside Optuna's in the storage database (created when missing):

- `dlmsim_points`: one row per point (its id hashes everything its metrics depend on):
  state `todo`, `running` or `done`, the `owner` that claimed it (`workers.owner`), a
  `beat` counter its owner's heartbeat bumps every `HEARTBEAT_S`, `evals` (evaluations
  finished: more than 1 only if a point was taken from a worker that then finished anyway)
  and the metrics `row` as JSON. Points are shared by every sweep whose grid holds them, so
  a re-run with other constraints, or a grid with one more value, evaluates only new points.
- `dlmsim_grids`: which point each index of a sweep's grid is.

A claim is a conditional UPDATE (`... WHERE state = 'todo'`), atomic in SQLite, PostgreSQL
and MySQL: of two workers claiming one point, one changes the row and the other sees no row
changed, so each point is evaluated once. A running point goes back to `todo` when its
owner is known dead (same machine: at once) or when its beat has not moved for `GRACE_S`
of the observer's own clock (other machines: no clocks are compared). A result is stored
only by the point's current owner (`WHERE owner = me`).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from dlmsim.explore.storage import GRACE_S, HEARTBEAT_S, open_engine
from dlmsim.explore.workers import alive

CHUNK = 2000  # rows per INSERT while registering a grid

_meta = sa.MetaData()
POINTS = sa.Table(
    "dlmsim_points", _meta,
    sa.Column("point", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(8), nullable=False, index=True),
    sa.Column("owner", sa.String(300), nullable=False, default=""),
    sa.Column("beat", sa.Integer, nullable=False, default=0),
    sa.Column("evals", sa.Integer, nullable=False, default=0),
    sa.Column("row", sa.Text, nullable=True),
)
GRIDS = sa.Table(
    "dlmsim_grids", _meta,
    sa.Column("sweep", sa.String(300), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("point", sa.String(64), nullable=False, index=True),
)


def open_claims(url: str, tries: int = 6):
    """An engine on the storage with the two tables (retried while another process
    creates them: the losing CREATE fails with 'already exists')."""
    engine = open_engine(url)
    for attempt in range(tries):
        try:
            _meta.create_all(engine)
            return engine
        except sa.exc.SQLAlchemyError:
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _insert_ignore(conn, table: sa.Table, rows: list[dict]) -> None:
    """INSERT rows, skipping those whose key exists (idempotent, safe when racing)."""
    if not rows:
        return
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        mod = __import__(f"sqlalchemy.dialects.{name}", fromlist=["insert"])
        conn.execute(mod.insert(table).on_conflict_do_nothing(), rows)
    elif name in ("mysql", "mariadb"):
        conn.execute(table.insert().prefix_with("IGNORE"), rows)
    else:
        for r in rows:
            with conn.begin_nested():
                try:
                    conn.execute(table.insert(), [r])
                except sa.exc.IntegrityError:
                    pass


def register(engine, sweep: str, points: Iterable[tuple[int, str]], total: int) -> None:
    """Record a sweep's grid (index -> point id) and its points as todo, unless done."""
    with engine.connect() as c:
        have = c.execute(sa.select(sa.func.count()).select_from(GRIDS).where(
            GRIDS.c.sweep == sweep)).scalar()
    if have == total:
        return
    batch: list[tuple[int, str]] = []

    def flush():
        with engine.begin() as c:
            _insert_ignore(c, POINTS, [{"point": p, "state": "todo", "owner": "", "beat": 0,
                                        "evals": 0} for _, p in batch])
            _insert_ignore(c, GRIDS, [{"sweep": sweep, "idx": i, "point": p}
                                      for i, p in batch])
        batch.clear()

    for item in points:
        batch.append(item)
        if len(batch) >= CHUNK:
            flush()
    flush()


def adopt(engine, rows: list[dict]) -> int:
    """Store rows of an older results table as done points (those not yet done)."""
    n = 0
    with engine.begin() as c:
        _insert_ignore(c, POINTS, [{"point": r["point"], "state": "todo", "owner": "",
                                    "beat": 0, "evals": 0} for r in rows])
        for r in rows:
            n += c.execute(sa.update(POINTS).where(POINTS.c.point == r["point"],
                                                   POINTS.c.state == "todo").values(
                state="done", owner="imported", row=json.dumps(r))).rowcount
    return n


def counts(engine, sweep: str) -> dict[str, int]:
    """Grid indices per point state."""
    q = sa.select(POINTS.c.state, sa.func.count()).select_from(
        GRIDS.join(POINTS, GRIDS.c.point == POINTS.c.point)).where(
        GRIDS.c.sweep == sweep).group_by(POINTS.c.state)
    with engine.connect() as c:
        return {s: n for s, n in c.execute(q)}


def claim(engine, sweep: str, me: str, window: int = 16) -> tuple[int, str] | None:
    """Claim one todo point of the sweep: (index, point id), or None if none is left."""
    q = sa.select(GRIDS.c.idx, GRIDS.c.point).select_from(
        GRIDS.join(POINTS, GRIDS.c.point == POINTS.c.point)).where(
        GRIDS.c.sweep == sweep, POINTS.c.state == "todo").order_by(GRIDS.c.idx).limit(window)
    while True:
        with engine.connect() as c:
            cand = c.execute(q).all()
        if not cand:
            return None
        random.shuffle(cand)  # workers racing for the first rows spread out
        for idx, point in cand:
            with engine.begin() as c:
                got = c.execute(sa.update(POINTS).where(
                    POINTS.c.point == point, POINTS.c.state == "todo").values(
                    state="running", owner=me, beat=0)).rowcount
            if got == 1:
                return idx, point


def finish(engine, point: str, me: str, row: dict) -> bool:
    """Store a point's metrics if this worker still owns it; count the evaluation."""
    with engine.begin() as c:
        ok = c.execute(sa.update(POINTS).where(
            POINTS.c.point == point, POINTS.c.owner == me, POINTS.c.state == "running").values(
            state="done", row=json.dumps(row), evals=POINTS.c.evals + 1)).rowcount == 1
        if not ok:  # taken back while it ran: counted, not stored twice
            c.execute(sa.update(POINTS).where(POINTS.c.point == point).values(
                evals=POINTS.c.evals + 1))
    return ok


def release(engine, me: str) -> None:
    """Give back every point this worker holds (Ctrl-C, an error)."""
    with engine.begin() as c:
        c.execute(sa.update(POINTS).where(POINTS.c.owner == me, POINTS.c.state == "running")
                  .values(state="todo", owner="", beat=0))


class Watch:
    """Running points of other workers, and since when (own clock) each beat stood still."""

    def __init__(self):
        self.seen: dict[str, tuple[str, int, float]] = {}

    def reclaim(self, engine, sweep: str, me: str) -> int:
        """Put back to todo the points whose owner is dead or silent; return how many."""
        q = sa.select(POINTS.c.point, POINTS.c.owner, POINTS.c.beat).select_from(
            GRIDS.join(POINTS, GRIDS.c.point == POINTS.c.point)).where(
            GRIDS.c.sweep == sweep, POINTS.c.state == "running", POINTS.c.owner != me)
        now = time.monotonic()
        with engine.connect() as c:
            running = c.execute(q).all()
        n = 0
        for point, who, beat in running:
            was = self.seen.get(point)
            if was is None or was[:2] != (who, beat):
                self.seen[point] = was = (who, beat, now)
            if alive(who) is False or (alive(who) is None and now - was[2] > GRACE_S):
                with engine.begin() as c:
                    n += c.execute(sa.update(POINTS).where(
                        POINTS.c.point == point, POINTS.c.state == "running",
                        POINTS.c.owner == who, POINTS.c.beat == beat).values(
                        state="todo", owner="", beat=0)).rowcount
        return n


@contextmanager
def heartbeat(engine, me: str, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Bump the beat of this worker's running points every `every_s` while inside."""
    stop = threading.Event()

    def beat():
        while not stop.wait(every_s):
            try:
                with engine.begin() as c:
                    c.execute(sa.update(POINTS).where(
                        POINTS.c.owner == me, POINTS.c.state == "running").values(
                        beat=POINTS.c.beat + 1))
            except sa.exc.SQLAlchemyError:
                pass  # a lost beat is retried; a dead database stops the sweep elsewhere

    t = threading.Thread(target=beat, daemon=True, name="sweep-heartbeat")
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def done_rows(engine, sweep: str) -> list[tuple[int, dict]]:
    """(grid index, metrics row) of every done point of the sweep, by index."""
    q = sa.select(GRIDS.c.idx, POINTS.c.row).select_from(
        GRIDS.join(POINTS, GRIDS.c.point == POINTS.c.point)).where(
        GRIDS.c.sweep == sweep, POINTS.c.state == "done").order_by(GRIDS.c.idx)
    with engine.connect() as c:
        return [(i, json.loads(r)) for i, r in c.execute(q)]
