"""What the server keeps across restarts and shares between its processes: answered
``Idempotency-Key`` requests, jobs, dashboard sign-ins and failed authentications.

All live in one SQLite file, ``.lockgate/server.db`` beside the project's state (the
server's own bookkeeping, whichever state store the project uses; WAL, so the processes
of ``lockgate serve --workers N`` read it at once). Keys and jobs expire after
``server.idempotency_hours`` (24 by default): expired rows are dropped as new ones are
written.

A key belongs to the actor that sent it (a retry with a new token of the same actor
finds it). The first successful answer to a key is kept with a fingerprint of the
request (the action, path parameters, query and body); the same key again with the same
request gets that answer without running anything, with another request 422
``idempotency_mismatch``, and while the first is still running 409 ``conflict``. An
error is not kept: errors change nothing, so a retry after one runs again.

"Still running" holds across processes: the first request claims its key in the file
(a row with status 0 and the :class:`~lockgate.server.owners.Owner` answering it) in the
same transaction that found no answer, so of two requests with one key sent to two
workers at once, one runs and the other gets 409. A claim whose process has died since
is taken over by the next request with that key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lockgate.server.errors import ApiError
from lockgate.server.owners import Owner

__all__ = ["Answer", "IdempotencyKeys", "ServerDb"]

Answer = tuple[int, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL, body TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, scope TEXT NOT NULL, operation TEXT NOT NULL, status TEXT NOT NULL,
    created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    http_status INTEGER, body TEXT, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    key TEXT PRIMARY KEY, credential TEXT NOT NULL, csrf TEXT NOT NULL,
    expires REAL NOT NULL, notice TEXT
);
CREATE TABLE IF NOT EXISTS auth_failures (client TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS auth_failures_client ON auth_failures (client, at);
"""
_OWNED = ("idempotency", "jobs")
"""Tables that name the process answering a row (column ``owner``, added to a file an
older server made)."""


class ServerDb:
    """``.lockgate/server.db``: one connection shared by the server's threads."""

    def __init__(self, path: Path, keep_hours: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.keep = keep_hours * 3600
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        for table in _OWNED:
            columns = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if "owner" not in columns:
                with contextlib.suppress(sqlite3.OperationalError):  # another process did
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN owner TEXT")
        self._read_lock = threading.Lock()
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._reader.execute("PRAGMA busy_timeout=10000")

    @contextmanager
    def cursor(self) -> Iterator[sqlite3.Cursor]:
        """A cursor, in a transaction, holding the connection for this thread."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of one query, on a connection of its own outside any transaction
        (WAL: it never waits for a writer, in this process or another)."""
        with self._read_lock:
            return self._reader.execute(sql, args).fetchall()

    def purge(self, cur: sqlite3.Cursor) -> None:
        """Drop what expired."""
        horizon = time.time() - self.keep
        cur.execute("DELETE FROM idempotency WHERE at < ?", (horizon,))
        cur.execute("DELETE FROM jobs WHERE at < ? AND finished_at IS NOT NULL", (horizon,))

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()


def fingerprint(action: str, params: Any, query: Any, body: bytes) -> str:
    """What makes two requests with one key the same request."""
    head = json.dumps([action, dict(params), dict(query)], sort_keys=True).encode()
    return hashlib.sha256(head + b"\0" + body).hexdigest()


class IdempotencyKeys:
    """Answered keys, and keys being answered, kept in :class:`ServerDb`."""

    def __init__(self, db: ServerDb, owner: Owner) -> None:
        self.db, self.owner = db, owner

    def once(self, scope: str, key: str, print_: str, work: Callable[[], Answer]) -> Answer:
        """The kept answer to ``key`` when there is one, else ``work()``'s (kept when it
        succeeds)."""
        if not key or len(key) > 200 or not key.isprintable():
            raise ApiError("bad_request", "Idempotency-Key must be 1 to 200 printable characters")
        with self.db.cursor() as cur:
            row = cur.execute(
                "SELECT fingerprint, status, body, at, owner FROM idempotency "
                "WHERE scope=? AND key=?",
                (scope, key),
            ).fetchone()
            if row is not None and (row[1] == 0 or row[3] >= time.time() - self.db.keep):
                if row[0] != print_:
                    raise ApiError(
                        "idempotency_mismatch",
                        f"Idempotency-Key {key!r} was used for another request; use a new key",
                    )
                if row[1] != 0:
                    return int(row[1]), json.loads(row[2])
                if self.owner.alive(row[4]):
                    raise ApiError(
                        "conflict",
                        f"a request with Idempotency-Key {key!r} is still running; retry "
                        "when it has been answered",
                    )
            cur.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, 0, '', ?, ?)",
                (scope, key, print_, time.time(), self.owner.id),
            )
        kept = False
        try:
            status, body = work()
            with self.db.cursor() as cur:
                self.db.purge(cur)
                cur.execute(
                    "UPDATE idempotency SET status=?, body=?, at=? "
                    "WHERE scope=? AND key=? AND owner=?",
                    (status, json.dumps(body, default=str), time.time(), scope, key, self.owner.id),
                )
            kept = True
            return status, body
        finally:
            if not kept:
                with self.db.cursor() as cur:
                    cur.execute(
                        "DELETE FROM idempotency WHERE scope=? AND key=? AND owner=? AND status=0",
                        (scope, key, self.owner.id),
                    )
