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
session): every write of the store first checks the locks its thread holds
(:meth:`AdvisoryLocks.check_held`) and refuses with ``LockedError`` when one is gone, so
nothing is written without the exclusion the command believes it has.

A switch's locks (``operation`` shared, then its component's) are one *lock set*
(:meth:`AdvisoryLocks.lock_set`, the ``LockSet`` capability) on one connection: one
statement tries every key in order, stopping at the first busy one, and records the
owner rows of those granted; a second, in the same round trip, reads the epochs again,
and a third the holder's first reads, once every lock is held. The holder's intent and
record are written on that connection, and its intent's close is kept for the release,
one round trip that commits it before it releases them all (what rides on a set:
:mod:`lockgate_postgres.riders`). Only the locks before a busy one are held while it is
waited for, as nested ``lock`` calls would hold them: two sets never wait on each other
in a circle.

A lock's connection outlives its lock: released cleanly (its owner row deleted, every
advisory lock of the session unlocked), it is kept as the process's one spare and the
next lock starts on it, after a ``SELECT 1`` that proves it alive (a dead one is
replaced), instead of opening a new connection, which costs more than the rest of
taking the lock. A spare holds no lock, so keeping it changes nothing for the others.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

import psycopg

from lockgate.plugin import LockedError, LockOwner, locked_error, parent_lock
from lockgate_postgres.db import FRESH_SECONDS, Database, Row, is_connection_error
from lockgate_postgres.keys import Key, advisory_key, in_order
from lockgate_postgres.riders import Riders, Write

__all__ = [
    "DURABLE",
    "HELD_BY",
    "SWEEP_EVERY",
    "AdvisoryLocks",
    "advisory_key",
    "release_statement",
]

_HELD = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2"
)
HELD_BY = (
    "SELECT count(DISTINCT pid) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = ANY(%s)"
)
"""How many of the sessions (server pids) given hold an advisory lock still."""
DURABLE = ", (SELECT set_config('synchronous_commit', %s, true)) AS durable"
"""A ``FROM`` item that sets, for the statement's own transaction, the
``synchronous_commit`` given (:attr:`AdvisoryLocks.flush`): a durable write on a lock
connection, whose session commits without waiting for the WAL flush."""
_SPARES = 4


_SWEEP = (
    " OR backend_pid NOT IN (SELECT pg_stat_get_backend_pid(s) "
    "FROM pg_stat_get_backend_idset() AS s) OR epoch < coalesce((SELECT e.epoch "
    "FROM lock_epochs AS e WHERE e.name = split_part(lock_owners.name, '/', 1)), 0)"
)
"""The owner rows no holder will delete: those of sessions that have ended (from the
server's list of sessions, not ``pg_locks``, which holds the lock manager's partitions
while it copies every lock on the server) and those at an epoch a break left behind."""
SWEEP_EVERY = 256
"""A release in so many also sweeps (:data:`_SWEEP`), the first of a process included."""


def release_statement(
    names: Sequence[str], token: str, *, sweep: bool = False
) -> tuple[str, list[object]]:
    """The statement of :func:`_release` for the owner rows of ``names`` and ``token``."""
    where = f"(name = ANY(%s) AND token = %s){_SWEEP if sweep else ''}"
    sql = f"WITH gone AS (DELETE FROM lock_owners WHERE {where}) SELECT pg_advisory_unlock_all()"
    return sql, [list(names), token]


def _release(
    conn: psycopg.Connection[Row],
    token: str,
    keys: Sequence[tuple[Key, bool]],
    kept: Sequence[Write] = (),
    *,
    sweep: bool = False,
) -> bool:
    """Unlock now (a closed session's locks go a moment later, when the server notices),
    in one statement that also deletes this holder's owner rows, found by their token,
    the first column of the table's key after the project (every switch inserts and
    deletes rows of the same names, whose index entries stay until the table is
    vacuumed: a search by name steps over them all); with ``sweep``, the rows no holder
    will delete too (:data:`_SWEEP`, every so many releases: they are rare, and that
    scan is not). Whether the connection came through clean (else it is closed: a
    connection already lost has released them with its session). ``kept``: writes sent
    first, in the same round trip (a pipeline), committed in a transaction of their own
    before the locks go (an explicit ``BEGIN``/``COMMIT`` ends their part of the
    pipeline's implicit transaction)."""
    release, args = release_statement([key.name for key, _ in keys], token, sweep=sweep)
    try:
        if kept:
            with conn.pipeline():
                conn.execute("BEGIN")
                for sql, values in kept:
                    conn.execute(sql, values)
                conn.execute("COMMIT")
                conn.execute(release, args)
        else:
            conn.execute(release, args)
    except psycopg.Error:
        conn.close()
        return False
    return conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


class AdvisoryLocks:
    """Named locks of one project as advisory locks (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # The lock connections this process holds, by token: the names of the locks each
        # holds, its server pid and the thread holding them (a write checks its own).
        self._held: dict[str, tuple[tuple[str, ...], int, int]] = {}
        # Released connections kept for the next locks, with when they were released
        # (see the module docstring); a switch holds two locks at once.
        self._spares: list[tuple[psycopg.Connection[Row], float]] = []
        self._spare_guard = threading.Lock()
        self._epochs: dict[str, int] = {}  # the last epoch seen of each parent lock
        self.riders = Riders(self._send)  # what rides on each thread's lock set
        # ``synchronous_commit`` as the server sets it for these sessions: what a durable
        # write on a lock connection (whose own is off) turns on for its transaction.
        self.flush = "on"
        self._releases = 0

    def _sweep(self) -> bool:
        """Whether this release sweeps too (:data:`SWEEP_EVERY`)."""
        self._releases += 1
        return self._releases % SWEEP_EVERY == 1

    def _connection(self) -> psycopg.Connection[Row]:
        """A spare connection when one is still alive, else a new one (one released a
        moment ago needs no proof: a dead one fails the first statement, and the lock
        is then taken again on a new connection)."""
        while True:
            with self._spare_guard:
                if not self._spares:
                    break
                conn, since = self._spares.pop()
            if time.monotonic() - since < FRESH_SECONDS:
                return conn
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()
        with self.db.unreachable_as_fault():
            return self._new_connection()

    def _new_connection(self) -> psycopg.Connection[Row]:
        """A lock connection: its owner rows are committed without waiting for the WAL
        flush (a row is only ever read together with ``pg_locks``, and a server that
        crashes ends every session, and so every lock, anyway), so taking and releasing
        a lock costs round trips, not disk flushes."""
        conn = self.db.take_connection()
        try:
            # A lock set's reads are read after its locks are granted, in the same
            # implicit transaction: each statement's own snapshot, whatever the default.
            row = conn.execute(
                "WITH server AS MATERIALIZED (SELECT current_setting('synchronous_commit') "
                "AS mode) SELECT mode, set_config('synchronous_commit', 'off', false), "
                "set_config('default_transaction_isolation', 'read committed', false) "
                "FROM server"
            ).fetchone()
            self.flush = str(row["mode"]) if row else "on"
        except BaseException:
            conn.close()
            raise
        return conn

    def _keep(self, conn: psycopg.Connection[Row]) -> None:
        """Keep a cleanly released connection as a spare (close it when there are
        enough)."""
        with self._spare_guard:
            if len(self._spares) < _SPARES:
                self._spares.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        """Close the spare connections."""
        with self._spare_guard:
            spares, self._spares = self._spares, []
        for conn, _ in spares:
            conn.close()

    def held_backends(self) -> list[int]:
        """The server pids of the sessions holding this thread's locks (a write checks
        that each still holds one: :meth:`lost_error`; another thread's locks are not
        its writes' business)."""
        thread = threading.get_ident()
        # Over a copy: other threads add and remove theirs meanwhile.
        return [pid for _, pid, holder in list(self._held.values()) if holder == thread]

    def lost_error(self) -> LockedError:
        """The error a write raises when a lock of this thread was lost with its
        connection (the server released it with the session)."""
        thread = threading.get_ident()
        held = [names for names, _, holder in list(self._held.values()) if holder == thread]
        names = ", ".join(sorted({repr(n) for each in held for n in each}))
        return LockedError(
            f"a lock ({names}) of project {self.db.project!r} was lost with its "
            f"connection to {self.db.where}; nothing more was written: run the "
            "command again"
        )

    def check_held(self) -> None:
        """Refuse to go on when a lock this thread holds was lost with its connection
        (the server released it with the session): ``LockedError``, before the write.
        One query on a pooled connection, whatever the number of locks held."""
        pids = self.held_backends()
        if not pids:
            return
        with self.db.conn() as conn:
            row = conn.execute(HELD_BY, (pids,)).fetchone()
        if row is None or int(row["n"]) < len(set(pids)):
            raise self.lost_error()

    def _where(self, name: str) -> str:
        return f"lock {name!r} of project {self.db.project!r} ({self.db.where})"

    @contextlib.contextmanager
    def lock(
        self, name: str, *, owner: LockOwner, lease: float, timeout: float, shared: bool = False
    ) -> Iterator[LockOwner]:
        """See ``StateStore.lock``."""
        granted = owner.stamped(lease)
        token = uuid.uuid4().hex
        conn = self._connection()
        key: Key | None = None
        try:
            with self.db.unreachable_as_fault():
                try:
                    key = self._acquire(conn, name, granted, token, shared=shared, timeout=timeout)
                except psycopg.OperationalError:
                    if conn.closed or conn.broken:  # a spare that died: once more, anew
                        conn.close()
                        conn = self._new_connection()
                        key = self._acquire(
                            conn, name, granted, token, shared=shared, timeout=timeout
                        )
                    else:
                        raise
            self._held[token] = ((name,), conn.info.backend_pid, threading.get_ident())
            yield granted
        finally:
            self._held.pop(token, None)
            try:  # a close kept by the thread's set is committed before this lock goes
                self.riders.send_kept()
            finally:
                if key is not None and _release(conn, token, [(key, shared)], sweep=self._sweep()):
                    self._keep(conn)
                else:
                    conn.close()

    def _acquire(
        self,
        conn: psycopg.Connection[Row],
        name: str,
        granted: LockOwner,
        token: str,
        *,
        shared: bool,
        timeout: float,
    ) -> Key:
        """Take the key at the epoch last seen and, in the same round trip, record the
        owner (only when granted) and read the epoch again; when a break moved it, give
        the stale key back and take the new one."""
        take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        give = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
        parent = parent_lock(name)
        owner = json.dumps(granted.to_dict())
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            key = Key.of(self.db.project, name, self._epochs.get(parent, 0))
            with conn.pipeline():
                taken = conn.execute(
                    "INSERT INTO lock_owners (name, epoch, backend_pid, token, owner) "
                    f"SELECT %s, %s, pg_backend_pid(), %s, %s WHERE {take}(%s::int4, %s::int4) "
                    "RETURNING token",
                    (name, key.epoch, token, owner, key.high, key.low),
                )
                read = conn.execute("SELECT epoch FROM lock_epochs WHERE name = %s", (parent,))
            ok = taken.fetchone() is not None
            row = read.fetchone()
            epoch = int(row["epoch"]) if row else 0
            if ok and epoch == key.epoch:
                return key
            self._epochs[parent] = epoch
            if ok:  # broken meanwhile: give the stale key back, take the new one
                with conn.pipeline():
                    conn.execute(
                        "DELETE FROM lock_owners WHERE name = %s AND token = %s", (name, token)
                    )
                    conn.execute(f"SELECT {give}(%s::int4, %s::int4)", (key.high, key.low))
                continue
            if epoch != key.epoch:
                continue
            if time.monotonic() >= deadline:
                holder = self.holder(name)
                raise locked_error(
                    name, holder, shared=shared, waited=timeout, where=self._where(name)
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    @contextlib.contextmanager
    def lock_set(
        self,
        locks: Sequence[tuple[str, bool]],
        *,
        owner: LockOwner,
        lease: float,
        timeout: float,
        then: tuple[str, Sequence[object]] | None = None,
    ) -> Iterator[LockOwner]:
        """See ``LockSet.lock_set``: every lock on one connection, taken in one round
        trip when none is busy (:meth:`_acquire_set`) and released in one statement.
        ``then``: a statement (and its arguments) of reads made in the round trip that
        grants the last lock, once granted; its row answers the holder's first batch of
        reads (:meth:`Riders.read_ahead`)."""
        granted = owner.stamped(lease)
        if not locks:  # nothing to hold, nothing to ask the server
            yield granted
            return
        token, nested = uuid.uuid4().hex, self.riders.holds_set()
        conn = self._connection()
        held: list[tuple[Key, bool]] = []  # the keys the connection holds, in order
        try:
            with self.db.unreachable_as_fault():
                try:
                    row = self._acquire_set(conn, locks, granted, token, held, then, timeout)
                except psycopg.OperationalError:
                    if conn.closed or conn.broken:  # a spare that died: once more, anew
                        conn.close()
                        held.clear()
                        conn = self._new_connection()
                        row = self._acquire_set(conn, locks, granted, token, held, then, timeout)
                    else:
                        raise
            pid = conn.info.backend_pid
            self._held[token] = (tuple(name for name, _ in locks), pid, threading.get_ident())
            if not nested:  # a set inside another carries nothing: the outer's riders stay
                ahead = (*then, row) if then is not None and row is not None else None
                self.riders.enter(conn, pid, ahead)
            yield granted
        finally:
            self._held.pop(token, None)
            kept: list[Write] = []
            try:
                if nested:  # the outer set's kept writes go before these locks
                    self.riders.send_kept()
                else:
                    kept = self.riders.leave()
            finally:
                self._release_set(conn, token, held, kept)

    def _release_set(
        self,
        conn: psycopg.Connection[Row],
        token: str,
        held: Sequence[tuple[Key, bool]],
        kept: Sequence[Write],
    ) -> None:
        """Release a set's keys with its ``kept`` writes first (:func:`_release`), and
        keep the connection as a spare when it came through clean."""
        # Also after a refusal: the locks taken before the busy one are given back.
        if not conn.closed and _release(conn, token, held, kept, sweep=self._sweep()):
            self._keep(conn)
        else:
            conn.close()
            # The locks went with the connection; the writes are sent all the same
            # (not sent, an intent's close is left to recovery, to the same outcome).
            with contextlib.suppress(Exception):
                self._send(kept)

    def _acquire_set(
        self,
        conn: psycopg.Connection[Row],
        locks: Sequence[tuple[str, bool]],
        granted: LockOwner,
        token: str,
        held: list[tuple[Key, bool]],
        then: tuple[str, Sequence[object]] | None,
        timeout: float,
    ) -> Row | None:
        """Take ``locks`` in order, each key granted appended to ``held``. Each round
        trip tries those not held yet in order, up to the first busy one, recording the
        owner of each granted, then reads the epochs again: keys a break made stale are
        given back, with every key after them, and taken anew; a busy lock is waited for
        (the backoff of :meth:`_acquire`) holding only the locks before it, as nested
        ``lock`` calls would. The row of ``then``, read in the round trip that granted
        the last lock (None without it)."""
        owner = json.dumps(granted.to_dict())
        parents = sorted({parent_lock(name) for name, _ in locks})
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            wanted = [
                (Key.of(self.db.project, name, self._epochs.get(parent_lock(name), 0)), shared)
                for name, shared in locks[len(held) :]
            ]
            # ``then`` is read only if every lock of the set is held by then.
            last = None if then is None else (*then, [n for n, _ in locks], token)
            taken, epochs, row = self._try_in_order(conn, wanted, token, owner, parents, last)
            self._epochs.update(epochs)
            held += wanted[:taken]
            stale = [
                i for i, (key, _) in enumerate(held) if key.epoch != epochs[parent_lock(key.name)]
            ]
            if stale:  # broken meanwhile: give those keys back, and take the new ones
                self._give_back(conn, token, held[stale[0] :])
                del held[stale[0] :]
                continue
            if taken == len(wanted):
                return row
            busy, shared = wanted[taken]
            if busy.epoch != epochs[parent_lock(busy.name)]:
                continue
            if time.monotonic() >= deadline:
                where = self._where(busy.name)
                holder = self.holder(busy.name)
                raise locked_error(busy.name, holder, shared=shared, waited=timeout, where=where)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    @staticmethod
    def _try_in_order(
        conn: psycopg.Connection[Row],
        wanted: Sequence[tuple[Key, bool]],
        token: str,
        owner: str,
        parents: Sequence[str],
        then: tuple[str, Sequence[object], list[str], str] | None = None,
    ) -> tuple[int, dict[str, int], Row | None]:
        """One round trip: try the keys of ``wanted`` in order up to the first busy one
        (:func:`.keys.in_order`) and record an owner row for each granted, in one
        statement; then, in a statement of its own after it, read the epochs of
        ``parents``; then ``then``'s reads (a ``SELECT`` without ``FROM``, its arguments,
        the names of the locks it must hold and the token: read only when it holds them
        all, its owner rows seen in the round trip's own transaction). How many were
        granted, each parent's epoch now, and the row of ``then`` (None when not read)."""
        tries, halves = in_order(wanted)
        rows = ", ".join("(%s::int4, %s::text, %s::bigint)" for _ in wanted)
        values = [v for i, (key, _) in enumerate(wanted, 1) for v in (i, key.name, key.epoch)]
        with conn.pipeline():
            taken = conn.execute(
                f"WITH granted AS MATERIALIZED (SELECT {tries} AS n) "
                "INSERT INTO lock_owners (name, epoch, backend_pid, token, owner) "
                "SELECT v.name, v.epoch, pg_backend_pid(), %s, %s "
                f"FROM (VALUES {rows}) AS v (ord, name, epoch), granted "
                "WHERE v.ord <= granted.n RETURNING name",
                [*halves, token, owner, *values],
            )
            read = conn.execute(
                "SELECT name, epoch FROM lock_epochs WHERE name = ANY(%s)", (list(parents),)
            )
            ahead = None
            if then is not None:
                sql, args, names, holder = then
                ahead = conn.execute(
                    f"{sql} WHERE (SELECT count(*) FROM lock_owners "
                    "WHERE name = ANY(%s) AND token = %s) = %s",
                    [*args, names, holder, len(names)],
                )
        epochs = dict.fromkeys(parents, 0)
        epochs.update((row["name"], int(row["epoch"])) for row in read.fetchall())
        return len(taken.fetchall()), epochs, ahead.fetchone() if ahead is not None else None

    def holding(self) -> tuple[psycopg.Connection[Row], list[int]] | None:
        """The connection of the lock set this thread holds (:meth:`Riders.connection`),
        and the server pids of the thread's other lock connections, whose locks a write
        made on it must still check (:data:`HELD_BY`); None when it holds none."""
        held = self.riders.connection()
        if held is None:
            return None
        conn, own = held
        return conn, [pid for pid in self.held_backends() if pid != own]

    @contextlib.contextmanager
    def on_set(self, conn: psycopg.Connection[Row]) -> Iterator[psycopg.Connection[Row]]:
        """``conn``, the set's connection, for a write: a connection lost meanwhile is
        the lost lock's ``LockedError`` (its locks went with it), not a fault; so is one
        the driver has not seen end yet (the server's answer that it ended the session,
        read while a pipeline is still being closed), or left unusable."""
        try:
            yield conn
        except psycopg.OperationalError as exc:
            if conn.closed or conn.broken or is_connection_error(exc):
                raise self.lost_error() from None
            raise

    def _send(self, writes: Sequence[Write]) -> None:
        """``writes`` in one transaction on a pooled connection."""
        if not writes:
            return
        with self.db.conn() as conn, conn.transaction():
            for sql, args in writes:
                conn.execute(sql, args)

    @staticmethod
    def _give_back(
        conn: psycopg.Connection[Row], token: str, keys: Sequence[tuple[Key, bool]]
    ) -> None:
        """Unlock ``keys`` (each with whether it is shared) and delete their owner rows,
        in one statement."""
        unlocks = ", ".join(
            f"pg_advisory_unlock{'_shared' if shared else ''}(%s::int4, %s::int4)"
            for _, shared in keys
        )
        conn.execute(
            "WITH gone AS (DELETE FROM lock_owners WHERE token = %s AND name = ANY(%s)) "
            f"SELECT {unlocks}",
            [
                token,
                [key.name for key, _ in keys],
                *(h for key, _ in keys for h in (key.high, key.low)),
            ],
        )

    @staticmethod
    def _epoch(conn: psycopg.Connection[Row], name: str) -> int:
        row = conn.execute(
            "SELECT epoch FROM lock_epochs WHERE name = %s", (parent_lock(name),)
        ).fetchone()
        return int(row["epoch"]) if row else 0

    def holder(self, name: str) -> LockOwner | None:
        """See ``StateStore.holder``: whose session holds the key now (``pg_locks``)."""
        with self.db.conn() as conn:
            key = Key.of(self.db.project, name, self._epoch(conn, name))
            pids = [r["pid"] for r in conn.execute(_HELD, (key.high, key.low))]
            if not pids:
                return None
            row = conn.execute(
                "SELECT owner FROM lock_owners WHERE name = %s AND epoch = %s "
                "AND backend_pid = ANY(%s) ORDER BY token LIMIT 1",
                (name, key.epoch, pids),
            ).fetchone()
        return LockOwner.from_dict(json.loads(row["owner"])) if row else LockOwner()

    def break_lock(self, name: str) -> None:
        """See ``StateStore.break_lock``: the epoch moves on, the old owners go (of
        ``operation``: its component locks' owners too, whose keys follow its epoch)."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO lock_epochs (name, epoch) VALUES (%s, 1) ON CONFLICT (project, "
                "name) DO UPDATE SET epoch = lock_epochs.epoch + 1",
                (name,),
            )
            conn.execute(
                "DELETE FROM lock_owners WHERE name = %s OR starts_with(name, %s)",
                (name, name + "/"),
            )
