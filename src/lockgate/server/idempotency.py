"""What the server keeps across restarts: answered ``Idempotency-Key`` requests and jobs.

Both live in one SQLite file, ``.lockgate/server.db`` beside the project's state (the
server's own bookkeeping, whichever state store the project uses), and expire after
``server.idempotency_hours`` (24 by default): expired rows are dropped as new ones are
written.

A key belongs to the actor that sent it (a retry with a new token of the same actor
finds it). The first successful answer to a key is kept with a fingerprint of the
request (the action, path parameters, query and body); the same key again with the same
request gets that answer without running anything, with another request 422
``idempotency_mismatch``, and while the first is still running 409 ``conflict``. An
error is not kept: errors change nothing, so a retry after one runs again.
"""

from __future__ import annotations

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
"""


class ServerDb:
    """``.lockgate/server.db``: one connection shared by the server's threads."""

    def __init__(self, path: Path, keep_hours: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.keep = keep_hours * 3600
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

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

    def purge(self, cur: sqlite3.Cursor) -> None:
        """Drop what expired."""
        horizon = time.time() - self.keep
        cur.execute("DELETE FROM idempotency WHERE at < ?", (horizon,))
        cur.execute("DELETE FROM jobs WHERE at < ? AND finished_at IS NOT NULL", (horizon,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def fingerprint(action: str, params: Any, query: Any, body: bytes) -> str:
    """What makes two requests with one key the same request."""
    head = json.dumps([action, dict(params), dict(query)], sort_keys=True).encode()
    return hashlib.sha256(head + b"\0" + body).hexdigest()


class IdempotencyKeys:
    """Answered keys, kept in :class:`ServerDb`; keys being answered, in memory."""

    def __init__(self, db: ServerDb) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._running: set[tuple[str, str]] = set()

    def once(self, scope: str, key: str, print_: str, work: Callable[[], Answer]) -> Answer:
        """The kept answer to ``key`` when there is one, else ``work()``'s (kept when it
        succeeds)."""
        if not key or len(key) > 200 or not key.isprintable():
            raise ApiError("bad_request", "Idempotency-Key must be 1 to 200 printable characters")
        with self.db.cursor() as cur:
            row = cur.execute(
                "SELECT fingerprint, status, body, at FROM idempotency WHERE scope=? AND key=?",
                (scope, key),
            ).fetchone()
        if row is not None and row[3] >= time.time() - self.db.keep:
            if row[0] != print_:
                raise ApiError(
                    "idempotency_mismatch",
                    f"Idempotency-Key {key!r} was used for another request; use a new key",
                )
            return int(row[1]), json.loads(row[2])
        with self._lock:
            if (scope, key) in self._running:
                raise ApiError(
                    "conflict",
                    f"a request with Idempotency-Key {key!r} is still running; retry when "
                    "it has been answered",
                )
            self._running.add((scope, key))
        try:
            status, body = work()
            with self.db.cursor() as cur:
                self.db.purge(cur)
                cur.execute(
                    "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?)",
                    (scope, key, print_, status, json.dumps(body, default=str), time.time()),
                )
            return status, body
        finally:
            with self._lock:
                self._running.discard((scope, key))
