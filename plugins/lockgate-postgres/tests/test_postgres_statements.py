"""How many statements one promotion sends to PostgreSQL: a count, not a time.

A promote on the ``postgres`` stores is a series of round trips, and its latency beside
SQLite's is mostly their number (docs/performance.md, "Promotion on PostgreSQL, one
runner and many"). Every statement psycopg sends is counted here (``Cursor.execute`` and
``executemany``, whether the connection is pooled, a lock's own, or in pipeline mode)
over one ``promote --to staging --rev`` of a component between two retained revisions,
in a project opened once (each promotion a session of its own, as ``lockgate_kit``
makes it), after two switches that warm it up. Opening a connection and checking an idle
one are left out (:data:`_TIMING`): how often they happen depends on the machine's load.
The ceiling is what a promotion sends now: a change that adds a statement to every
switch fails here, and whoever lowers the count lowers the ceiling.
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

MAX_STATEMENTS = 9
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
status decided by the store from the one it finds, ``MoveWithEvents``)."""

LOCK_STATEMENTS = 3
"""Of those, the switch's locks: ``operation`` shared and the component's lock taken in
one round trip of two statements (the try-locks with the owner rows, then the epochs
read again) and released in one (6 statements, 4 round trips and 2 server sessions when
each lock was taken on its own)."""


_TIMING = frozenset(
    {"db.py:_configure", "db.py:_check", "locks.py:_connection", "locks.py:_new_connection"}
)
"""Where the statements whose number depends on timing are sent from, not counted: a
new connection's session set-up, and the liveness check of a pooled or spare lock
connection idle for 2 s or more (which a loaded machine makes happen)."""


@contextmanager
def counting() -> Iterator[collections.Counter[str]]:
    """Every statement psycopg sends meanwhile, by where in lockgate it was sent from."""
    sent: collections.Counter[str] = collections.Counter()
    originals = {name: getattr(psycopg.Cursor, name) for name in ("execute", "executemany")}

    def counted(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: psycopg.Cursor[Any], *args: Any, **kwargs: Any) -> Any:
            frames = [
                f"{Path(f.filename).name}:{f.name}"
                for f in traceback.extract_stack()[:-1]
                if "lockgate" in f.filename and "psycopg" not in Path(f.filename).name
            ]
            if frames and frames[-1] in _TIMING:
                return call(self, *args, **kwargs)
            sent[f"{name} from {' < '.join(reversed(frames[-3:]))}"] += 1
            query = str(args[0] if args else kwargs.get("query"))
            if "FROM heads" in query and "FOR UPDATE" in query:
                sent["(chain head locked)"] += 1
            return call(self, *args, **kwargs)

        return wrapper

    for name, call in originals.items():
        setattr(psycopg.Cursor, name, counted(name, call))
    try:
        yield sent
    finally:
        for name, call in originals.items():
            setattr(psycopg.Cursor, name, call)


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
    with counting() as sent:
        switching()
    heads = sent.pop("(chain head locked)", 0)
    total = sum(sent.values())
    where = "\n".join(f"{n} {site}" for site, n in sent.most_common())
    assert 0 < total <= MAX_STATEMENTS, f"{total} statements (at most {MAX_STATEMENTS}):\n{where}"
    # One write transaction holds the audit chain's head: the switch's record, with the
    # gate's validate event in it (MoveWithEvents), not a transaction of its own.
    assert heads == 1, where
    locks = {site: n for site, n in sent.items() if " from locks.py:" in site}
    assert sum(locks.values()) == LOCK_STATEMENTS, where
    assert all("locks.py:lock_set" in site for site in locks), where  # one call, one set
