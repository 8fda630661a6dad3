"""How many statements and round trips one promotion sends to PostgreSQL: counts, not
times.

A promote on the ``postgres`` stores is a series of round trips, and its latency beside
SQLite's is mostly their number (docs/performance.md, "Promotion on PostgreSQL, one
runner and many"). Every statement psycopg sends is counted here (``Cursor.execute`` and
``executemany``, whether the connection is pooled, a lock's own, or in pipeline mode)
over one ``promote --to staging --rev`` of a component between two retained revisions,
in a project opened once (each promotion a session of its own, as ``lockgate_kit``
makes it), after two switches that warm it up; and the round trips: a statement sent on
its own is one, a pipeline (``Connection.pipeline``, its statements sent together) one
more, its statements none. Opening a connection and checking an idle one are left out
(:data:`_TIMING`): how often they happen depends on the machine's load. The ceilings are
what a promotion sends now: a change that adds a statement or a round trip to every
switch fails here, and whoever lowers a count lowers its ceiling.
"""

from __future__ import annotations

import collections
import json
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
import pytest

MAX_STATEMENTS = 11
"""Statements one promotion sends in a session of its own (47 before planning read each
answer once and the gate's event rode with the switch; 41 before an append, a pointer's
history, an intent's close and a lock's release became one statement each; 33 before a
switch's record wrote its events, history and status in one; 30 before the reads under
the locks became one; 27 before planning's reads and the record's re-reads became one
batch each, ``ReadBatch``, and the pointer's swap went into the record's statement; 15
before the switch's two locks were taken together on one connection, ``LockSet``; 12
before a move was chained after the head its last reads saw, checked in the move's own
statement; 11 before a session's first settling read the open intents with planning's
batch; 10 before the record was made from what the checks read under the locks, its
status decided by the store from the one it finds, ``MoveWithEvents``; 9 before the
checks' reads went with the locks and the intent's close with their release, which adds
its ``BEGIN`` and ``COMMIT`` to the release's pipeline)."""

ROUND_TRIPS = 6
"""Round trips of one promotion: planning's reads, the locks with the checks' reads,
the release's objects (the content store), the intent, the record, and the locks'
release with the intent's close (9 when the checks' reads, the record's re-reads and the
intent's close were each one of their own)."""

LOCK_STATEMENTS = 7
"""Of the statements, the switch's locks: ``operation`` shared and the component's lock
taken in one round trip of three statements (the try-locks with the owner rows, the
epochs read again, the checks' reads once every lock is held) and released in one of
four (the intent's close in a transaction of its own, then the release: 6 statements, 4
round trips and 2 server sessions when each lock was taken on its own)."""


_TIMING = frozenset(
    {"db.py:_configure", "db.py:_check", "locks.py:_connection", "locks.py:_new_connection"}
)
"""Where the statements whose number depends on timing are sent from, not counted: a
new connection's session set-up, and the liveness check of a pooled or spare lock
connection idle for 2 s or more (which a loaded machine makes happen)."""


@contextmanager
def counting() -> Iterator[tuple[collections.Counter[str], collections.Counter[str]]]:
    """Every statement psycopg sends meanwhile, and every round trip, by where in
    lockgate each was sent from."""
    sent: collections.Counter[str] = collections.Counter()
    trips: collections.Counter[str] = collections.Counter()
    originals = {name: getattr(psycopg.Cursor, name) for name in ("execute", "executemany")}
    pipeline = psycopg.Connection.pipeline

    def site() -> str | None:
        frames = [
            f"{Path(f.filename).name}:{f.name}"
            for f in traceback.extract_stack()[:-2]
            if "lockgate" in f.filename and "psycopg" not in Path(f.filename).name
        ]
        if not frames or frames[-1] in _TIMING:
            return None
        return " < ".join(reversed(frames[-3:]))

    def piped(conn: psycopg.Connection[Any]) -> bool:
        return conn.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF

    def counted(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: psycopg.Cursor[Any], *args: Any, **kwargs: Any) -> Any:
            where = site()
            if where is None:
                return call(self, *args, **kwargs)
            sent[f"{name} from {where}"] += 1
            if not piped(self.connection):
                trips[where] += 1
            query = str(args[0] if args else kwargs.get("query"))
            if "set_config('synchronous_commit', %s, true)" in query:
                sent["(flushed on a lock connection)"] += 1
            if "FROM heads" in query and "FOR UPDATE" in query:
                sent["(chain head locked)"] += 1
            return call(self, *args, **kwargs)

        return wrapper

    def counted_pipeline(self: psycopg.Connection[Any]) -> Any:
        where = site()
        if where is not None and not piped(self):
            trips[f"pipeline from {where}"] += 1
        return pipeline(self)

    for name, call in originals.items():
        setattr(psycopg.Cursor, name, counted(name, call))
    psycopg.Connection.pipeline = counted_pipeline  # type: ignore[method-assign]
    try:
        yield sent, trips
    finally:
        for name, call in originals.items():
            setattr(psycopg.Cursor, name, call)
        psycopg.Connection.pipeline = pipeline  # type: ignore[method-assign]


@pytest.fixture
def switching(lockgate_kit: Any, pg_dsn: str, project_key: str) -> Callable[[], None]:
    """A project on the postgres stores (builtins and lockgate-postgres only) with one
    component staged twice and both revisions promoted into staging once; a function
    promoting it to the other revision."""
    kit = lockgate_kit(
        extra=[metadata.distribution("lockgate-postgres")],
        config="project:\n  name: counted\n"
        "state:\n  store: postgres\ncontent:\n  store: postgres\n"
        "stages:\n  development: {}\n  staging: {}\n  production: {}\n"
        f"plugins:\n  postgres:\n    dsn: {json.dumps(pg_dsn)}\n    project: {project_key}\n",
    )
    revisions = []
    for version in ("A", "B"):
        kit.component("team:etl", {"main.py": f"VERSION = {version!r}\n"})
        revisions.append(kit.stage("team:etl").revision)
    turn = iter(range(1_000))

    def promote() -> None:
        result = kit.promote("team:etl", to="staging", rev=revisions[next(turn) % 2])
        assert result.changed and result.revision is not None

    promote()
    promote()
    return promote


def test_a_promotion_sends_at_most_its_statements(switching: Callable[[], None]) -> None:
    with counting() as (sent, trips):
        switching()
    heads = sent.pop("(chain head locked)", 0)
    # The intent and the record go on the lock set's connection, each committed waiting
    # for the WAL flush (its session does not: its owner rows need not).
    assert sent.pop("(flushed on a lock connection)", 0) == 2, sent
    total = sum(sent.values())
    where = "\n".join(f"{n} {site}" for site, n in sent.most_common())
    assert 0 < total <= MAX_STATEMENTS, f"{total} statements (at most {MAX_STATEMENTS}):\n{where}"
    round_trips = "\n".join(f"{n} {site}" for site, n in trips.most_common())
    assert sum(trips.values()) <= ROUND_TRIPS, f"round trips:\n{round_trips}"
    # The checks under the locks read with the locks, and the intent is closed with
    # their release: the state store's only batch of reads on its own is planning's.
    assert sum(n for s, n in trips.items() if "state.py:read_batch" in s) == 1, round_trips
    assert not any("close_intent" in s for s in trips), round_trips
    # One write transaction holds the audit chain's head: the switch's record, with the
    # gate's validate event in it (MoveWithEvents), not a transaction of its own.
    assert heads == 1, where
    locks = {site: n for site, n in sent.items() if " from locks.py:" in site}
    assert sum(locks.values()) == LOCK_STATEMENTS, where
    assert all("locks.py:lock_set" in site for site in locks), where  # one call, one set
