"""The ``postgres`` state store's locks: PostgreSQL session advisory locks.

Lock ``name`` of a project is the advisory lock on a key derived from the project, the
name and the lock's *epoch* (``lock_epochs``), taken with ``pg_try_advisory_lock`` (or
``…_shared``) on a connection of its own that is held for the ``with`` block. The server
releases a session's advisory locks when the session ends, however it ends: a runner
that dies, on any host, never blocks (a host that vanishes is noticed through TCP
keepalives, see :mod:`lockgate_postgres.db`). The holder writes its owner (pid, host,
operation, since, lease) into ``lock_owners`` with its backend pid, and :meth:`holder`
names the owner whose backend holds the key now (``pg_locks``), so a row a dead holder
left is never reported.

:meth:`break_lock` moves the epoch on: the next holder locks a different key, and the
old holder, still running, keeps a lock nobody asks for; its release frees only that.
A taker re-reads the epoch after its lock is granted and retries when it moved, so a
lock is never granted on a key that a break made stale.

A holder whose lock connection drops has lost its lock (the server released it with the
session): every write of the store first checks the locks this process holds
(:meth:`AdvisoryLocks.check_held`) and refuses with ``LockedError`` when one is gone, so
nothing is written without the exclusion the command believes it has.

A lock's connection outlives its lock: released cleanly (its owner row deleted, every
advisory lock of the session unlocked), it is kept as the process's one spare and the
next lock starts on it, after a ``SELECT 1`` that proves it alive (a dead one is
replaced), instead of opening a new connection, which costs more than the rest of
taking the lock. A spare holds no lock, so keeping it changes nothing for the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg

from lockgate.plugin import LockedError, LockOwner, locked_error
from lockgate_postgres.db import Database, Row

__all__ = ["AdvisoryLocks", "advisory_key"]

_HELD = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2"
)


def advisory_key(project: str, name: str, epoch: int) -> tuple[int, int]:
    """The two 31-bit halves of lock ``name``'s key in ``project`` at ``epoch``."""
    digest = hashlib.blake2b(f"lockgate\0{project}\0{name}\0{epoch}".encode()).digest()
    return (
        int.from_bytes(digest[:4], "big") & 0x7FFFFFFF,
        int.from_bytes(digest[4:8], "big") & 0x7FFFFFFF,
    )


def _release(conn: psycopg.Connection[Row], token: str | None) -> bool:
    """Unlock now (a closed session's locks go a moment later, when the server notices);
    whether the connection came through clean (else it is closed: a connection already
    lost has released them with its session)."""
    try:
        if token is not None:
            conn.execute("DELETE FROM lock_owners WHERE token = %s", (token,))
        conn.execute("SELECT pg_advisory_unlock_all()")
    except psycopg.Error:
        conn.close()
        return False
    return conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


class AdvisoryLocks:
    """Named locks of one project as advisory locks (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # The lock connections this process holds, by token: a write checks them first.
        self._held: dict[str, tuple[str, psycopg.Connection[Row]]] = {}
        self._spare: psycopg.Connection[Row] | None = None  # see the module docstring
        self._spare_guard = threading.Lock()

    def _connection(self) -> psycopg.Connection[Row]:
        """The spare connection when it is still alive, else a new one."""
        with self._spare_guard:
            conn, self._spare = self._spare, None
        if conn is not None:
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()
        with self.db.unreachable_as_fault():
            return self.db.connect()

    def _keep(self, conn: psycopg.Connection[Row]) -> None:
        """Keep a cleanly released connection as the spare (close it when there is one)."""
        with self._spare_guard:
            if self._spare is None:
                self._spare, conn = conn, None  # type: ignore[assignment]
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close the spare connection."""
        with self._spare_guard:
            conn, self._spare = self._spare, None
        if conn is not None:
            conn.close()

    def check_held(self) -> None:
        """Refuse to go on when a lock this process holds was lost with its connection
        (the server released it with the session): ``LockedError``, before the write."""
        for name, conn in list(self._held.values()):
            try:
                conn.execute("SELECT 1")
            except psycopg.Error:
                raise LockedError(
                    f"the {name!r} lock of project {self.db.project!r} was lost with its "
                    f"connection to {self.db.where}; nothing more was written: run the "
                    "command again"
                ) from None

    def _where(self, name: str) -> str:
        return f"lock {name!r} of project {self.db.project!r} ({self.db.where})"

    @contextlib.contextmanager
    def lock(
        self, name: str, *, owner: LockOwner, lease: float, timeout: float, shared: bool = False
    ) -> Iterator[LockOwner]:
        """See ``StateStore.lock``."""
        conn = self._connection()
        token: str | None = None
        try:
            with self.db.unreachable_as_fault():
                epoch = self._acquire(conn, name, shared=shared, timeout=timeout)
                granted = owner.stamped(lease)
                token = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO lock_owners (name, epoch, backend_pid, token, owner) "
                    "VALUES (%s, %s, pg_backend_pid(), %s, %s)",
                    (name, epoch, token, json.dumps(granted.to_dict())),
                )
                self._forget_dead(conn, name, epoch)
            self._held[token] = (name, conn)
            yield granted
        finally:
            if token is not None:
                self._held.pop(token, None)
            if _release(conn, token):
                self._keep(conn)
            else:
                conn.close()

    def _acquire(
        self, conn: psycopg.Connection[Row], name: str, *, shared: bool, timeout: float
    ) -> int:
        take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        give = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            epoch = self._epoch(conn, name)
            key = advisory_key(self.db.project, name, epoch)
            row = conn.execute(f"SELECT {take}(%s::int4, %s::int4) AS ok", key).fetchone()
            if row and row["ok"]:
                if self._epoch(conn, name) == epoch:
                    return epoch
                conn.execute(f"SELECT {give}(%s::int4, %s::int4)", key)  # broken meanwhile: again
                continue
            if time.monotonic() >= deadline:
                holder = self.holder(name)
                raise locked_error(
                    name, holder, shared=shared, waited=timeout, where=self._where(name)
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    @staticmethod
    def _epoch(conn: psycopg.Connection[Row], name: str) -> int:
        row = conn.execute("SELECT epoch FROM lock_epochs WHERE name = %s", (name,)).fetchone()
        return int(row["epoch"]) if row else 0

    def _forget_dead(self, conn: psycopg.Connection[Row], name: str, epoch: int) -> None:
        """Remove the owners whose sessions hold this lock no more (dead holders')."""
        key = advisory_key(self.db.project, name, epoch)
        conn.execute(
            f"DELETE FROM lock_owners WHERE name = %s AND (epoch <> %s OR backend_pid "
            f"NOT IN ({_HELD}))",
            (name, epoch, *key),
        )

    def holder(self, name: str) -> LockOwner | None:
        """See ``StateStore.holder``: whose session holds the key now (``pg_locks``)."""
        with self.db.conn() as conn:
            epoch = self._epoch(conn, name)
            key = advisory_key(self.db.project, name, epoch)
            pids = [r["pid"] for r in conn.execute(_HELD, key)]
            if not pids:
                return None
            row = conn.execute(
                "SELECT owner FROM lock_owners WHERE name = %s AND epoch = %s "
                "AND backend_pid = ANY(%s) ORDER BY token LIMIT 1",
                (name, epoch, pids),
            ).fetchone()
        return LockOwner.from_dict(json.loads(row["owner"])) if row else LockOwner()

    def break_lock(self, name: str) -> None:
        """See ``StateStore.break_lock``: the epoch moves on, the old owners go."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO lock_epochs (name, epoch) VALUES (%s, 1) ON CONFLICT (project, "
                "name) DO UPDATE SET epoch = lock_epochs.epoch + 1",
                (name,),
            )
            conn.execute("DELETE FROM lock_owners WHERE name = %s", (name,))
