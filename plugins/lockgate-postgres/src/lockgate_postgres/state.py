"""State store ``postgres``: what the ``sqlite`` store keeps, in tables many runners and
many projects share.

Every write is one transaction that first locks the project's row in ``heads`` (the
audit chain's head: last seq, hash and time) with ``SELECT … FOR UPDATE``: the writes of
one project are serialised like SQLite's ``BEGIN IMMEDIATE`` (the chain stays one line,
seq contiguous from 1), while other projects' writes go on beside them. Stage pointers
move by compare-and-swap on the pointer's own row: ``UPDATE … WHERE generation =
expected`` (or an insert that must not conflict, for a first move), and a row count that
is not 1 is a ``ConflictError`` that changes nothing. A transaction that fails, or whose
connection is lost, commits nothing.

Queries name no project: row-level security (:mod:`lockgate_postgres.schema`) keeps each
session to the project it was set to, and the column's default fills it in on insert.
The locks are advisory locks (:mod:`lockgate_postgres.locks`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs
import psycopg

from lockgate.plugin import (
    GENESIS,
    Approval,
    Ask,
    AuditEvent,
    ChainedEvent,
    ComponentRecord,
    ComponentStatus,
    ConflictError,
    EnvironmentFault,
    EventFilter,
    Intent,
    LockedError,
    LockOwner,
    Pointer,
    PointerChange,
    RevisionRecord,
    StateCounts,
    StateSnapshot,
    TokenRecord,
    generation_conflict,
    status_conflict,
)
from lockgate_postgres import reads
from lockgate_postgres.bounded import BoundedReads
from lockgate_postgres.chain import Head
from lockgate_postgres.db import Database, Row
from lockgate_postgres.locks import DURABLE, HELD_BY, AdvisoryLocks
from lockgate_postgres.moves import Mark, move
from lockgate_postgres.outbox import PostgresDeliveries
from lockgate_postgres.reads import batch as batch_query

__all__ = ["PostgresStateStore"]

Conn = psycopg.Connection[Row]
_CHAIN_PAGE = 1000
_APPEND_BATCH = 500  # events per statement (one JSON argument, kept to a bounded size)
_TOKEN_FIELDS = [f.name for f in attrs.fields(TokenRecord)]
_TOKEN_COLUMNS = ", ".join(_TOKEN_FIELDS)
_TOKEN_VALUES = ", ".join(f"%({name})s" for name in _TOKEN_FIELDS)


class PostgresStateStore(PostgresDeliveries, BoundedReads):
    """The state store on PostgreSQL, for one project (with the outbox's delivery state,
    ``EventDeliveries``: :mod:`lockgate_postgres.outbox`; its bounded reads:
    :mod:`lockgate_postgres.bounded`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._locks = AdvisoryLocks(db)
        # The chain's head (seq, hash, at) as this store last saw it: by its last batch of
        # reads or its last write. A move is chained after it unlocked and checked in the
        # move's own statement (lockgate_postgres.moves); a wrong one costs a round trip.
        self._head: tuple[int, str, str | None] | None = None
        # Moves in a row whose one statement wrote nothing (mostly: the head they knew had
        # moved on; also a lost race or a lost lock): from the second on, the next goes
        # straight to the locked path, until one finds the head it knew current (other
        # runners write between this one's reads and its moves: the statement would be a
        # wasted round trip).
        self._misses = 0
        try:
            with db.conn() as conn:
                conn.execute(
                    "INSERT INTO heads (hash) VALUES (%s) ON CONFLICT (project) DO NOTHING",
                    (GENESIS,),
                )
        except BaseException:
            db.close()
            raise

    @property
    def project(self) -> str:
        return self.db.project

    def close(self) -> None:
        self._locks.close()
        self.db.close()

    def import_snapshot(self, snapshot: StateSnapshot) -> None:
        """``StateImport``: a whole history into this empty project, all or nothing
        (``lockgate state migrate --to postgres``; :mod:`lockgate_postgres.state_import`)."""
        from lockgate_postgres.state_import import import_snapshot

        import_snapshot(self.db, snapshot)

    @contextlib.contextmanager
    def _write(self) -> Iterator[tuple[Conn, Head]]:
        """One transaction holding the project's chain head (writes queue on it), in
        pipeline mode (statements whose results are not read go with the next ones and
        the commit: two round trips, the head's and the rest's), refused when a lock this
        thread holds was lost with its connection (asked in the head's own query). A
        connection lost once the events were sent: whether the commit was made is asked
        on another (the last event is in the log or not), so a write that was made is
        not reported as one rolled back."""
        self._locks.riders.send_kept()
        pids = self._locks.held_backends()
        self._head = None
        locked: list[int] = []  # the head's seq as locked, once it is
        try:
            with self.db.conn() as conn, conn.pipeline(), conn.transaction():
                head = self._lock_head(conn, pids)
                locked.append(head.seq)
                yield conn, head
        except EnvironmentFault:
            if not locked or head.seq == locked[0] or not self._recorded(head.seq, head.hash):
                raise
        self._head = (head.seq, head.hash, head.at)

    def _lock_head(self, conn: Conn, pids: Sequence[int], flush: str | None = None) -> Head:
        """The chain's head, locked by ``conn``'s transaction, once the sessions ``pids``
        are seen to hold their locks still (asked in the same query; none: no look at
        ``pg_locks``); ``flush``: the ``synchronous_commit`` the transaction commits with
        (a lock connection's, whose session commits without waiting for the flush)."""
        held = f", ({HELD_BY}) AS held" if pids else ""
        durable = DURABLE if flush else ""
        args = [*([list(pids)] if pids else []), *([flush] if flush else [])]
        row = conn.execute(
            f"SELECT seq, hash, at{held} FROM heads{durable} FOR UPDATE OF heads", args
        ).fetchone()
        if row is None:  # the project's head was never written (a raw SQL reset)
            self._locks.check_held()
            conn.execute("INSERT INTO heads (hash) VALUES (%s)", (GENESIS,))
            return Head(conn, 0, GENESIS, None)
        if pids and int(row["held"]) < len(set(pids)):
            raise self._locks.lost_error()
        return Head(conn, int(row["seq"]), row["hash"], row["at"])

    # ------------------------------------------------------------------ locks

    def lock(
        self, name: str, *, owner: LockOwner, lease: float, timeout: float, shared: bool = False
    ) -> contextlib.AbstractContextManager[LockOwner]:
        return self._locks.lock(name, owner=owner, lease=lease, timeout=timeout, shared=shared)

    def lock_set(
        self,
        locks: Sequence[tuple[str, bool]],
        *,
        owner: LockOwner,
        lease: float,
        timeout: float,
        reads: Sequence[Ask] = (),
    ) -> contextlib.AbstractContextManager[LockOwner]:
        """``LockSet``: a switch's locks on one connection, one round trip to take them,
        which also reads ``reads`` once they are granted (this thread's next
        ``read_batch`` of them is answered from it: :meth:`read_batch`)."""
        then = batch_query(reads)[:2] if reads else None
        return self._locks.lock_set(locks, owner=owner, lease=lease, timeout=timeout, then=then)

    def holder(self, name: str) -> LockOwner | None:
        return self._locks.holder(name)

    def break_lock(self, name: str) -> None:
        self._locks.break_lock(name)

    # ------------------------------------------------------------------ reading

    def _rows(self, query: str, args: Sequence[object] | dict[str, object] = ()) -> list[Row]:
        self._locks.riders.send_kept()  # this thread's reads see its own writes
        with self.db.conn() as conn:
            return conn.execute(query, args).fetchall()

    def _read(self, query: reads.Query) -> Any:
        return query.answer(self._rows(query.sql, query.args))

    def read_batch(self, asks: Sequence[Ask]) -> list[Any]:
        """``ReadBatch``: every ask in one statement, one snapshot
        (:func:`lockgate_postgres.reads.batch`); read already when these are the reads
        given to the lock set this thread holds and this is its first call since."""
        if not asks:
            return []
        sql, args, queries = batch_query(asks)
        row = self._locks.riders.read_ahead(sql, args)
        if row is None:
            self._locks.riders.send_kept()
            with self.db.conn() as conn:
                row = conn.execute(sql, args).fetchone()
        assert row is not None  # a SELECT without FROM returns its one row
        head = row["head"]
        self._head = (int(head["seq"]), head["hash"], head["at"]) if head else None
        return [q.answer(row[f"a{i}"]) for i, q in enumerate(queries)]

    def component(self, ref: str) -> ComponentRecord | None:
        return self._read(reads.component(ref))  # type: ignore[no-any-return]

    def components(self, workspace: str | None = None) -> list[ComponentRecord]:
        return self._read(reads.components(workspace))  # type: ignore[no-any-return]

    def revisions(self, ref: str) -> list[RevisionRecord]:
        return self._read(reads.revisions(ref))  # type: ignore[no-any-return]

    def pointer(self, stage: str, component_id: str) -> Pointer | None:
        return self._read(reads.pointer(stage, component_id))  # type: ignore[no-any-return]

    def pointers(self, stage: str | None = None) -> list[Pointer]:
        return self._read(reads.pointers(stage))  # type: ignore[no-any-return]

    def pointer_history(
        self, stage: str | None = None, component_id: str | None = None
    ) -> list[PointerChange]:
        return self._read(reads.pointer_history(stage, component_id))  # type: ignore[no-any-return]

    def live_at(self, stage: str, at: str, component_id: str | None = None) -> list[PointerChange]:
        return self._read(reads.live_at(stage, at, component_id))  # type: ignore[no-any-return]

    def approvals(self, component: str, revision: str | None = None) -> list[Approval]:
        return self._read(reads.approvals(component, revision))  # type: ignore[no-any-return]

    def open_intents(self) -> list[Intent]:
        return self._read(reads.open_intents())  # type: ignore[no-any-return]

    def intents(self) -> list[Intent]:
        """``IntentLog``: every intent, closed ones too (what ``state migrate`` copies)."""
        return self._read(reads.intents("ORDER BY created_at, id"))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ verdicts

    def validation_results(self, revision: str) -> dict[str, str]:
        """``ValidationResults``: the validators' verdicts kept for ``revision``."""
        return self._read(reads.validation_results(revision))  # type: ignore[no-any-return]

    def record_validation_results(self, revision: str, values: Mapping[str, str]) -> None:
        """Keep ``values`` for ``revision`` in one transaction (no chain head: a verdict
        is vouched for by the ``validate`` event the kernel appends before it)."""
        self._locks.riders.send_kept()
        self._locks.check_held()
        with self.db.transaction() as conn:
            conn.cursor().executemany(
                "INSERT INTO validation_results (revision, key, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (project, revision, key) DO UPDATE SET value = EXCLUDED.value",
                [(revision, key, value) for key, value in values.items()],
            )

    def events(self, where: EventFilter | None = None) -> list[AuditEvent]:
        return self._read(reads.events(where))  # type: ignore[no-any-return]

    def chain(self, after: int = 0) -> Iterator[ChainedEvent]:
        """Page by page (the log may be long; no connection is held between pages)."""
        while True:
            rows = self._rows(
                f"SELECT {reads.EVENT}, prev_hash, hash FROM events WHERE seq > %s ORDER BY seq "
                f"LIMIT {_CHAIN_PAGE}",
                (after,),
            )
            for row in rows:
                prev_hash, digest = row.pop("prev_hash"), row.pop("hash")
                yield ChainedEvent(reads.event(row), prev_hash, digest)
            if len(rows) < _CHAIN_PAGE:
                return
            after = rows[-1]["seq"]

    def counts(self) -> StateCounts:
        """Three short reads in one round trip: the components counted by status, type
        and workspace (``component_counts``, kept by triggers on ``components``), the
        events by action and outcome, and the head's seq."""
        self._locks.riders.send_kept()
        with self.db.conn() as conn, conn.pipeline():
            components = conn.execute(
                "SELECT dimension, value, n FROM component_counts WHERE n <> 0"
            )
            events = conn.execute("SELECT action, outcome, n FROM event_counts")
            head = conn.execute("SELECT seq FROM heads")
            grouped: dict[str, dict[str, int]] = {"status": {}, "type": {}, "workspace": {}}
            for row in components.fetchall():
                grouped.setdefault(row["dimension"], {})[row["value"]] = int(row["n"])
            operations: dict[str, dict[str, int]] = {}
            for row in events.fetchall():
                operations.setdefault(row["action"], {})[row["outcome"]] = int(row["n"])
            seq = head.fetchone()
        return StateCounts(
            by_status=grouped["status"],
            by_type=grouped["type"],
            by_workspace=grouped["workspace"],
            operations=operations,
            events=int(seq["seq"]) if seq else 0,
        )

    # ------------------------------------------------------------------ tokens

    def add_token(self, token: TokenRecord, event: AuditEvent) -> None:
        try:
            with self._write() as (conn, head):
                conn.execute(
                    f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES ({_TOKEN_VALUES})",
                    attrs.asdict(token),
                )
                head.append(event)
        except psycopg.errors.UniqueViolation:
            raise ConflictError(f"a token with id {token.id} exists; retry") from None

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        rows = self._rows(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE digest = %s", (digest,))
        return TokenRecord(**rows[0]) if rows else None

    def tokens(self) -> list[TokenRecord]:
        rows = self._rows(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id")
        return [TokenRecord(**r) for r in rows]

    def revoke_token(self, token_id: str, at: str, event: AuditEvent) -> TokenRecord | None:
        with self._write() as (conn, head):
            row = conn.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = %s FOR UPDATE", (token_id,)
            ).fetchone()
            if row is None or row["revoked_at"] is not None:
                return TokenRecord(**row) if row else None
            conn.execute("UPDATE tokens SET revoked_at = %s WHERE id = %s", (at, token_id))
            head.append(event)
            return attrs.evolve(TokenRecord(**row), revoked_at=at)

    # ------------------------------------------------------------------ writing

    def record_revision(
        self, revision: RevisionRecord, component: ComponentRecord, event: AuditEvent
    ) -> int:
        with self._write() as (conn, head):
            revision = attrs.evolve(revision, created_at=head.after(revision.created_at))
            component = attrs.evolve(component, updated_at=head.after(component.updated_at))
            conn.execute(
                "INSERT INTO components (component, workspace, component_id, component_type, "
                "status, latest_revision, updated_at) VALUES (%(component)s, %(workspace)s, "
                "%(component_id)s, %(component_type)s, %(status)s, %(latest_revision)s, "
                "%(updated_at)s) ON CONFLICT (project, component) DO UPDATE SET "
                "component_type = excluded.component_type, status = excluded.status, "
                "latest_revision = excluded.latest_revision, updated_at = excluded.updated_at",
                {**attrs.asdict(component), "status": component.status.value},
            )
            conn.execute(
                "INSERT INTO revisions (component, revision, created_at, actor, stage, files, "
                "size, parent) VALUES (%(component)s, %(revision)s, %(created_at)s, %(actor)s, "
                "%(stage)s, %(files)s, %(size)s, %(parent)s) ON CONFLICT DO NOTHING",
                attrs.asdict(revision),
            )
            return head.append(event)

    def set_status(
        self, ref: str, expected: ComponentStatus, status: ComponentStatus, event: AuditEvent
    ) -> int:
        with self._write() as (conn, head):
            _swap_status(conn, ref, expected, status, head.after(event.at))
            return head.append(event)

    def move_pointer(
        self,
        change: PointerChange,
        *,
        expected_generation: int,
        status: ComponentStatus | None,
        event: AuditEvent,
    ) -> Pointer:
        return self.move_pointer_after(
            (), change, expected_generation=expected_generation, status=status, event=event
        )

    def move_pointer_after(
        self,
        before: Sequence[AuditEvent],
        change: PointerChange,
        *,
        expected_generation: int,
        status: ComponentStatus | None,
        event: AuditEvent,
        status_from: Collection[ComponentStatus] | None = None,
    ) -> Pointer:
        """``MoveWithEvents``: ``before`` appended in the move's own transaction (a
        promotion's gate event: one commit and one hold of the chain head, not two), the
        status set only from one of ``status_from`` (when given).
        Chained after the head last seen, in one statement that checks it is still the
        head (lockgate_postgres.moves); when it is not, after the head locked and read."""
        known, mark = self._head, Mark(status, status_from) if status is not None else None
        if known is not None and self._misses < 2:
            moved = self._move(before, change, expected_generation, mark, event, known)
            if moved is not None:
                return moved
        moved = self._move(before, change, expected_generation, mark, event, guess=known)
        if moved is None:  # a move that lost the race wrote nothing, and says so
            current = self.pointer(change.stage, change.component_id)
            generation = current.generation if current else 0
            raise generation_conflict(change, generation, expected_generation)
        return moved

    def _move(
        self,
        before: Sequence[AuditEvent],
        change: PointerChange,
        expected: int,
        mark: Mark | None,
        event: AuditEvent,
        known: tuple[int, str, str | None] | None = None,
        guess: tuple[int, str, str | None] | None = None,
    ) -> Pointer | None:
        """The move chained after the ``known`` head, one statement (autocommit: a
        transaction by itself), or, without one, after the head locked and read (a
        transaction of two round trips; whether that head is the ``guess`` decides
        whether the next move tries the statement); None when it wrote nothing (the head
        moved on, a lock was lost, or the pointer was not at ``expected``: the locked
        path tells which). Under a lock set, on the set's connection (see
        ``open_intent``), else on a pooled one: when the connection is lost during the
        statement or the commit, whether it committed is asked on another (its last
        event is there or not), so a move that was made is never reported, and then
        undone, as one that was not."""
        self._locks.riders.send_kept()
        self._head, own = None, self._locks.holding()
        flush = self._locks.flush if own else None
        pids = own[1] if own else self._locks.held_backends()
        chained: list[Head] = []  # the head once the events are chained
        try:
            with self._locks.on_set(own[0]) if own else self.db.conn() as conn:
                if known is None:
                    with conn.pipeline(), conn.transaction():
                        head = self._lock_head(conn, pids, flush)
                        if guess is not None and guess[:2] == (head.seq, head.hash):
                            self._misses = 0
                        cursor, change = self._chain_move(
                            head, before, change, expected, mark, event
                        )
                        chained.append(head)  # chained: the record's event, not the head's
                else:
                    chained.append(Head(conn, *known))
                    cursor, change = self._chain_move(
                        chained[0], before, change, expected, mark, event, pids, flush
                    )
                if cursor.fetchone() is None:
                    self._misses += known is not None
                    return None
        except (LockedError, EnvironmentFault):  # the connection lost: was it committed?
            if not chained or not self._recorded(chained[0].seq, chained[0].hash):
                raise
        head = chained[0]
        self._head = (head.seq, head.hash, head.at)
        self._misses = 0 if known is not None else self._misses
        return Pointer.moved(change, expected + 1)

    def _recorded(self, seq: int, digest: str) -> bool:
        """Whether the event chained at ``seq`` with hash ``digest`` is in the log (asked
        on a pooled connection, after the one that wrote it was lost)."""
        row = self._rows("SELECT 1 AS n FROM events WHERE seq = %s AND hash = %s", (seq, digest))
        return bool(row)

    @staticmethod
    def _chain_move(
        head: Head,
        before: Sequence[AuditEvent],
        change: PointerChange,
        expected: int,
        mark: Mark | None,
        event: AuditEvent,
        pids: list[int] | None = None,
        flush: str | None = None,
    ) -> tuple[psycopg.Cursor[Row], PointerChange]:
        """The events chained after ``head`` and the move sent with them (``pids``: the
        head is only believed, see :func:`~lockgate_postgres.moves.move`, which takes
        ``flush`` too); the change as timed."""
        known = None if pids is None else (head.seq, head.hash, pids)
        # The events are chained here and written with the move, in one statement.
        rows = [head.chain(earlier) for earlier in before]
        # The move is timed like its event (never before the chain's last event).
        change = attrs.evolve(change, at=head.after(change.at))
        rows.append(head.chain(event))
        return move(head, rows, change, expected, mark, known, flush), change

    def add_approval(
        self,
        approval: Approval,
        event: AuditEvent,
        status: tuple[ComponentStatus, ComponentStatus] | None = None,
    ) -> int:
        with self._write() as (conn, head):
            approval = attrs.evolve(approval, at=head.after(approval.at))
            if status is not None:
                _swap_status(conn, approval.component, status[0], status[1], approval.at)
            conn.execute(
                "INSERT INTO approvals (component, revision, actor, decision, at, stage, "
                "comment) VALUES (%(component)s, %(revision)s, %(actor)s, %(decision)s, "
                "%(at)s, %(stage)s, %(comment)s)",
                attrs.asdict(approval),
            )
            return head.append(event)

    def open_intent(self, intent: Intent) -> None:
        """Durably, refused when a lock this thread holds was lost with its connection.
        Under a lock set, on the set's connection: its locks are held while the insert
        runs, so only the thread's other lock connections are asked after (often none:
        no look at ``pg_locks``), and no pooled connection is taken. The chain's head is
        read with it: the switch's record, a moment later, is chained after that one
        (other runners' writes since this store's last one make it the fresher)."""
        self._locks.riders.send_kept()
        values, own = intent.row(), self._locks.holding()
        if own is not None:
            conn, pids = own
            args = (*values, self._locks.flush, *_held(pids))
            with self._locks.on_set(conn):
                row = conn.execute(_open_intent(pids, durable=True), args).fetchone()
        else:
            pids = self._locks.held_backends()  # refused when one was lost: asked in the insert
            with self.db.conn() as conn:
                row = conn.execute(_open_intent(pids), (*values, *_held(pids))).fetchone()
        if row is None:
            raise self._locks.lost_error()
        self._head = (int(row["seq"]), row["hash"], row["at"]) if row["hash"] else None

    def close_intent(self, intent_id: str, state: Literal["completed", "undone"]) -> None:
        """Committed without waiting for the WAL flush: what it closes is recorded already
        (a switch's record, durably, or a recovery's outcome), and a close lost to a
        server crash leaves the intent open for recovery to settle again, to the same
        outcome. One statement, its own transaction, which sets ``synchronous_commit``
        for itself (read at its commit): no disk flush, no ``BEGIN`` or ``COMMIT``. While
        this thread holds a lock set (a switch's), it is sent with the set's release,
        committed before the locks go, in the same round trip; a process that dies
        first leaves the intent open, for recovery to settle to the same outcome."""
        if self._locks.riders.keep(_CLOSE_INTENT, (state, intent_id)):
            return
        with self.db.conn() as conn:
            conn.execute(_CLOSE_INTENT, (state, intent_id))

    def append_event(self, event: AuditEvent) -> int:
        with self._write() as (_, head):
            return head.append(event)

    def append_events(self, events: Sequence[AuditEvent]) -> list[int]:
        with self._write() as (_, head):
            seqs: list[int] = []
            for start in range(0, len(events), _APPEND_BATCH):
                rows = [head.chain(event) for event in events[start : start + _APPEND_BATCH]]
                head.write(rows)
                seqs += range(head.seq - len(rows) + 1, head.seq + 1)
            return seqs


# An intent's close is one statement: ``set_config(..., true)`` lasts for its own
# transaction (see ``close_intent``).
_CLOSE_INTENT = (
    "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "UPDATE intents SET state = %s FROM quick WHERE id = %s"
)


def _open_intent(pids: Sequence[int], *, durable: bool = False) -> str:
    """An intent's insert, made only while the sessions ``pids`` hold their locks (none:
    unconditionally); ``durable``: on a connection whose session commits without waiting
    for the WAL flush (a lock connection's), its transaction commits with the
    ``synchronous_commit`` given after the intent's values (the server's own)."""
    held = f"({HELD_BY}) >= %s" if pids else "true"
    flush = DURABLE if durable else ""
    return (
        "INSERT INTO intents (id, operation, owner, created_at, payload, state) "
        f"SELECT %s, %s, %s, %s, %s, %s FROM (SELECT) AS one{flush} WHERE {held} "
        "RETURNING (SELECT seq FROM heads) AS seq, (SELECT hash FROM heads) AS hash, "
        "(SELECT at FROM heads) AS at"
    )


def _held(pids: Sequence[int]) -> tuple[object, ...]:
    """The arguments of the condition on ``pids`` (:func:`_open_intent`)."""
    return (list(pids), len(set(pids))) if pids else ()


def _swap_status(
    conn: Conn, ref: str, expected: ComponentStatus, status: ComponentStatus, at: str
) -> None:
    """Compare-and-swap a component's status inside the caller's transaction."""
    swapped = conn.execute(
        "UPDATE components SET status = %s, updated_at = %s WHERE component = %s AND status = %s "
        "RETURNING 1",
        (status.value, at, ref, expected.value),
    ).fetchone()
    if swapped is None:
        row = conn.execute("SELECT status FROM components WHERE component = %s", (ref,))
        found = row.fetchone()
        raise status_conflict(ref, found["status"] if found else None, expected)
