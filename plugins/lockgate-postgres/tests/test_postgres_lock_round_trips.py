"""What rides on a lock set's round trips: the holder's first batch of reads goes with
its locks (``LockSet``'s ``reads``), read once they are granted, and an intent closed
under the set goes with its release, committed before the locks go."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from lockgate_postgres import PostgresStateStore

from lockgate.plugin import (
    Ask,
    AuditEvent,
    EnvironmentFault,
    Intent,
    LockedError,
    LockOwner,
    PointerChange,
    answer_each,
    event_hash,
)

from .postgres_testkit import Statements, open_database, terminate

AT = "2026-11-20T10:00:00.000000+00:00"
SWITCH = [("operation", True), ("operation/etl", False)]
READS = [Ask("open_intents"), Ask("pointer", ("staging", "etl"))]


@pytest.fixture
def store(pg_dsn: str, project_key: str) -> Iterator[PostgresStateStore]:
    store = PostgresStateStore(open_database(pg_dsn, project_key))
    yield store
    store.close()


@pytest.fixture
def other(pg_dsn: str, project_key: str) -> Iterator[PostgresStateStore]:
    """The same project through a store of its own (another runner)."""
    store = PostgresStateStore(open_database(pg_dsn, project_key))
    yield store
    store.close()


def _intent() -> Intent:
    return Intent(id=uuid.uuid4().hex, operation="promote", owner="1@host", created_at=AT)


def _locked(store: PostgresStateStore, reads: list[Ask] | None = None, timeout: float = 5) -> Any:
    owner = LockOwner.current("test")
    return store.lock_set(SWITCH, owner=owner, lease=60, timeout=timeout, reads=reads or ())


class Sent:
    """Statements psycopg sends on their own (not in a pipeline) while counting."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        execute = psycopg.Cursor.execute

        def counted(cursor: psycopg.Cursor[Any], *args: Any, **kwargs: Any) -> Any:
            if cursor.connection.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF:
                self.count += 1
            return execute(cursor, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", counted)


def _open_ids(store: PostgresStateStore) -> list[str]:
    return [i.id for i in store.open_intents()]


def test_the_first_reads_under_a_lock_set_come_with_its_locks(
    store: PostgresStateStore, other: PostgresStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    other.open_intent(_intent())
    with _locked(store, READS):
        sent = Sent(monkeypatch)
        answers = store.read_batch(READS)
        assert sent.count == 0  # read with the locks
        assert answers == answer_each(store, READS)
        assert [i.id for i in answers[0]] == _open_ids(other)
        sent.count = 0
        store.read_batch(READS)  # given once: the next batch is read
        assert sent.count == 1


def test_reads_with_the_locks_are_read_once_they_are_granted(
    store: PostgresStateStore, other: PostgresStateStore
) -> None:
    """A holder writes, then releases; the set waiting for it reads what it wrote (the
    write is committed before the holder's locks go, and read after they came)."""
    written = _intent()
    holding = threading.Event()

    def hold() -> None:
        with _locked(other):
            holding.set()
            time.sleep(0.3)
            other.open_intent(written)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with _locked(store, READS):
            [opened, _pointer] = store.read_batch(READS)
        assert [i.id for i in opened] == [written.id]
    finally:
        holder.join(10)


def test_a_call_before_the_first_batch_makes_it_read_afresh(store: PostgresStateStore) -> None:
    intent = _intent()
    with _locked(store, READS):
        store.open_intent(intent)
        [opened, _pointer] = store.read_batch(READS)
    assert [i.id for i in opened] == [intent.id]


def test_reads_not_given_to_the_set_are_read_as_always(store: PostgresStateStore) -> None:
    intent = _intent()
    with _locked(store, READS):
        store.open_intent(intent)  # not what the set read ahead
        assert store.read_batch([Ask("open_intents")]) == [store.open_intents()]


def test_an_intent_closed_under_a_lock_set_closes_with_its_release(
    store: PostgresStateStore, other: PostgresStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    intent = _intent()
    with _locked(store):
        store.open_intent(intent)
        sent = Sent(monkeypatch)
        store.close_intent(intent.id, "completed")
        assert sent.count == 0  # kept for the release
        assert _open_ids(other) == [intent.id]  # not yet: the locks are still held
    assert _open_ids(other) == []  # closed before the locks went


def test_a_read_of_the_holder_sees_the_close_it_kept(store: PostgresStateStore) -> None:
    intent = _intent()
    with _locked(store):
        store.open_intent(intent)
        store.close_intent(intent.id, "undone")
        assert _open_ids(store) == []  # sent first, then read
    assert [i.state for i in store.intents() if i.id == intent.id] == ["undone"]


def test_an_intent_closed_without_a_lock_set_is_closed_at_once(
    store: PostgresStateStore, other: PostgresStateStore
) -> None:
    intent = _intent()
    store.open_intent(intent)
    with store.lock("operation", owner=LockOwner.current("test"), lease=60, timeout=5):
        store.close_intent(intent.id, "completed")  # a single lock keeps nothing
        assert _open_ids(other) == []


def test_a_close_kept_when_the_lock_connection_dies_is_still_written(
    store: PostgresStateStore, other: PostgresStateStore, pg_dsn: str
) -> None:
    intent = _intent()
    with _locked(store):
        store.open_intent(intent)
        store.close_intent(intent.id, "completed")
        with store.db.conn() as conn:
            row = conn.execute("SELECT backend_pid FROM lock_owners LIMIT 1").fetchone()
        assert row is not None
        terminate(pg_dsn, [row["backend_pid"]])
    assert _open_ids(other) == []


def _no_pool() -> Any:
    raise AssertionError("a pooled connection was taken")


def test_writes_under_a_lock_set_go_on_its_connection(
    store: PostgresStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    intent = _intent()
    with _locked(store):
        with monkeypatch.context() as patched:
            patched.setattr(store.db, "conn", _no_pool)
            store.open_intent(intent)
            store.close_intent(intent.id, "completed")
        assert _open_ids(store) == []
    assert [i.state for i in store.intents() if i.id == intent.id] == ["completed"]


def test_a_write_on_a_lock_connection_waits_for_the_flush(store: PostgresStateStore) -> None:
    """A lock connection commits its owner rows without waiting for the WAL flush; an
    intent (or a move) written on it turns the wait on for its own transaction."""
    from lockgate_postgres.state import _open_intent

    intent = _intent()
    values = (*intent.row(), store._locks.flush)
    assert store._locks.flush == "on"  # the server's own setting for these sessions
    with _locked(store):
        held = store._locks.holding()
        assert held is not None
        conn, _ = held
        assert conn.execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "off"}
        sql = _open_intent([], durable=True) + ", current_setting('synchronous_commit') AS mode"
        row = conn.execute(sql, values).fetchone()
        assert row is not None and row["mode"] == "on"
        assert conn.execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "off"}


def test_a_close_kept_goes_before_a_lock_taken_inside_the_set_is_released(
    store: PostgresStateStore, other: PostgresStateStore
) -> None:
    """Recovery settles another switch's intent under that switch's component lock,
    taken inside its own set: the close is committed before that lock goes."""
    intent = _intent()
    store.open_intent(intent)
    with _locked(store):
        with store.lock("operation/calc", owner=LockOwner.current("t"), lease=60, timeout=5):
            store.close_intent(intent.id, "undone")
            assert _open_ids(other) == [intent.id]
        assert _open_ids(other) == []  # sent before operation/calc was released


def test_a_set_inside_a_set_leaves_the_outer_riders_alone(
    store: PostgresStateStore, other: PostgresStateStore
) -> None:
    first, second = _intent(), _intent()
    store.open_intent(first)
    store.open_intent(second)
    busy = other.lock("operation/calc", owner=LockOwner.current("t"), lease=60, timeout=5)
    with _locked(store):
        store.close_intent(first.id, "undone")  # kept for the outer set
        inner = [("operation/calc", False)]
        refused = store.lock_set(inner, owner=LockOwner.current("t"), lease=60, timeout=0)
        with busy, pytest.raises(LockedError), refused:  # nothing of the outer's is lost
            pass  # pragma: no cover
        assert _open_ids(other) == [second.id]  # sent before its keys were given back
        with store.lock_set(inner, owner=LockOwner.current("t"), lease=60, timeout=5):
            store.close_intent(second.id, "undone")
        assert _open_ids(other) == []  # both sent before the inner set's locks went
        assert store._locks.riders.holds_set()


def test_a_lock_set_reads_in_read_committed_whatever_the_default(
    pg_dsn: str, project_key: str
) -> None:
    """Its reads are read after its locks are granted, in the same implicit transaction:
    under ``repeatable read`` by default they would see the snapshot of before."""
    dsn = f"{pg_dsn} options='-c default_transaction_isolation=serializable'"
    store = PostgresStateStore(open_database(dsn, project_key))
    try:
        with _locked(store):
            held = store._locks.holding()
            assert held is not None
            row = held[0].execute("SHOW default_transaction_isolation").fetchone()
            assert row == {"default_transaction_isolation": "read committed"}
    finally:
        store.close()


def test_a_lock_lost_by_another_thread_does_not_refuse_this_ones_writes(
    store: PostgresStateStore, pg_dsn: str
) -> None:
    lost, done = threading.Event(), threading.Event()
    refused: list[BaseException] = []

    def other_thread() -> None:
        with store.lock("operation/calc", owner=LockOwner.current("t"), lease=60, timeout=5):
            with store.db.conn() as conn:
                row = conn.execute(
                    "SELECT backend_pid FROM lock_owners WHERE name = 'operation/calc'"
                ).fetchone()
            assert row is not None
            terminate(pg_dsn, [row["backend_pid"]])
            lost.set()
            try:
                store.open_intent(_intent())
            except LockedError as exc:
                refused.append(exc)
            done.wait(10)

    worker = threading.Thread(target=other_thread)
    worker.start()
    try:
        assert lost.wait(10)
        with _locked(store):
            store.open_intent(_intent())  # this thread's locks are all held
        store.open_intent(_intent())
    finally:
        done.set()
        worker.join(10)
    assert len(refused) == 1 and "'operation/calc'" in str(refused[0])


def _heads_locked(sent: list[str]) -> int:
    """How many transactions locked the chain's head with a query of their own (the
    move's locked path), not in the move's statement."""
    return sum(1 for sql in sent if sql.startswith("SELECT seq, hash, at"))


def _move(store: PostgresStateStore, generation: int) -> None:
    revision = f"r{generation + 1}"
    store.move_pointer_after(
        [],
        PointerChange("staging", "etl", "alice:etl", revision, None, 0, AT, "ann", "promote"),
        expected_generation=generation,
        status=None,
        event=AuditEvent(AT, "ann", "promote", component="alice:etl", stage="staging"),
    )


def test_the_record_is_chained_after_the_head_read_with_the_intent(
    store: PostgresStateStore, other: PostgresStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another runner wrote since this store's last write: the head this store last saw
    is stale, but the intent, written under the set, reads the head as it is then, and
    the record is chained after that one in its single statement."""
    _move(store, 0)  # this store's last write: the head it knows
    other.append_event(AuditEvent(AT, "bob", "note"))  # another runner's, since
    with _locked(store):
        store.open_intent(_intent())
        statements = Statements(monkeypatch)
        _move(store, 1)
    assert _heads_locked(statements.sent) == 0, statements.sent
    assert store.pointer("staging", "etl").generation == 2  # type: ignore[union-attr]
    chain = list(store.chain())
    assert [c.prev_hash for c in chain[1:]] == [c.hash for c in chain[:-1]]
    assert all(c.hash == event_hash(c.prev_hash, c.event) for c in chain)


def test_a_record_after_the_head_moved_on_locks_it_on_the_sets_connection(
    store: PostgresStateStore, other: PostgresStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write between the intent and the record (another runner's): the move's one
    statement writes nothing, and the record is made after the head locked and read on
    the set's own connection (no pooled connection, no look at pg_locks: the locks it
    holds are that connection's)."""
    _move(store, 0)
    with _locked(store):
        store.open_intent(_intent())
        other.append_event(AuditEvent(AT, "bob", "note"))
        statements = Statements(monkeypatch)
        with monkeypatch.context() as patched:
            patched.setattr(store.db, "conn", _no_pool)
            _move(store, 1)
        moved = list(statements.sent)  # the release, next, cleans up after dead holders
    assert _heads_locked(moved) == 1, moved
    assert not any("pg_locks" in sql for sql in moved), moved
    # Its transaction commits waiting for the flush (the session's own commits do not).
    locked = [sql for sql in moved if sql.startswith("SELECT seq, hash, at")]
    assert "set_config('synchronous_commit'" in locked[0], locked
    assert [e.action for e in store.events()] == ["promote", "note", "promote"]
    assert store.pointer("staging", "etl").generation == 2  # type: ignore[union-attr]


def test_a_locked_record_lost_before_its_commit_is_refused_and_wrote_nothing(
    store: PostgresStateStore,
    other: PostgresStateStore,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The set's connection ends after the head was locked on it and the move sent,
    before the commit: the log is asked (on another connection) for the record's own
    event, not the head's, finds nothing, and the move is refused as not made."""
    import lockgate_postgres.chain as chain

    _move(store, 0)
    write = chain.Head.write

    def lost(self: Any, rows: Any, also: Any = (), only_if: Any = None) -> Any:
        cursor = write(self, rows, also, only_if)
        if not any(name == "fresh" for name, _, _ in also):  # the locked path
            terminate(pg_dsn, [self.conn.info.backend_pid])
        return cursor

    with pytest.raises(LockedError), _locked(store):
        store.open_intent(_intent())
        other.append_event(AuditEvent(AT, "bob", "note"))  # the head moves on
        monkeypatch.setattr(chain.Head, "write", lost)
        _move(store, 1)
    monkeypatch.undo()
    assert store.pointer("staging", "etl").generation == 1  # type: ignore[union-attr]
    assert [e.action for e in store.events()] == ["promote", "note"]


def test_a_set_connection_lost_as_the_head_is_locked_is_a_move_not_made(
    store: PostgresStateStore,
    other: PostgresStateStore,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lost while the head is locked and read: nothing was chained yet, so the head's
    own event (which is in the log) is not taken for the record's."""
    _move(store, 0)
    lock_head = PostgresStateStore._lock_head

    def lost(self: PostgresStateStore, conn: Any, *args: Any) -> Any:
        terminate(pg_dsn, [conn.info.backend_pid])
        return lock_head(self, conn, *args)

    with pytest.raises(LockedError), _locked(store):
        store.open_intent(_intent())
        other.append_event(AuditEvent(AT, "bob", "note"))  # the head moves on
        monkeypatch.setattr(PostgresStateStore, "_lock_head", lost)
        _move(store, 1)
    monkeypatch.undo()
    assert store.pointer("staging", "etl").generation == 1  # type: ignore[union-attr]
    assert [e.action for e in store.events()] == ["promote", "note"]


def _after_commit(
    monkeypatch: pytest.MonkeyPatch,
    when: Callable[[psycopg.Connection[Any]], bool],
    then: Callable[[psycopg.Connection[Any]], None],
) -> None:
    """From now on, ``then(conn)`` once a connection's outermost pipeline has ended (its
    transaction committed and answered), where ``when(conn)``: a transaction in pipeline
    mode opens a pipeline of its own, whose end is not the commit."""
    real, depth = psycopg.Connection.pipeline, [0]

    @contextlib.contextmanager
    def pipeline(conn: psycopg.Connection[Any]) -> Iterator[Any]:
        depth[0] += 1
        try:
            with real(conn) as piped:
                yield piped
        finally:
            depth[0] -= 1
        if depth[0] == 0 and when(conn):
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            then(conn)

    monkeypatch.setattr(psycopg.Connection, "pipeline", pipeline)


def test_a_locked_record_committed_before_the_driver_saw_its_session_end_stands(
    store: PostgresStateStore, other: PostgresStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the set's session just after the locked record's commit, and the
    driver says so while the pipeline is being closed (``cannot exit pipeline mode while
    busy``), before it has seen the connection end: the lost lock's error all the same,
    the log is asked, the record is in it, and the move stands (it was reported as not
    made, and the targets were put back to the old revision)."""
    _move(store, 0)

    def ended(conn: psycopg.Connection[Any]) -> None:
        raise psycopg.OperationalError("cannot exit pipeline mode while busy")

    with _locked(store):
        store.open_intent(_intent())
        other.append_event(AuditEvent(AT, "bob", "note"))  # the head moves on
        held = store._locks.holding()
        assert held is not None
        _after_commit(monkeypatch, lambda conn: conn is held[0], ended)
        _move(store, 1)
        monkeypatch.undo()
    assert store.pointer("staging", "etl").generation == 2  # type: ignore[union-attr]
    assert [e.action for e in store.events()] == ["promote", "note", "promote"]


@pytest.mark.parametrize("head_moved", [False, True])
def test_a_record_on_a_pooled_connection_committed_before_it_was_lost_stands(
    store: PostgresStateStore,
    other: PostgresStateStore,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    head_moved: bool,
) -> None:
    """Without a lock set (a pipeline run holds ``operation`` and takes each component's
    lock alone) the record goes on a pooled connection: lost after the commit, by the
    one statement or the locked way, the log is asked and the move stands."""
    import lockgate_postgres.chain as chain

    _move(store, 0)
    store.read_batch([Ask("pointer", ("staging", "etl"))])  # the head it knows
    if head_moved:
        other.append_event(AuditEvent(AT, "bob", "note"))  # the locked way

    def end(conn: psycopg.Connection[Any]) -> None:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        terminate(pg_dsn, [conn.info.backend_pid])
        conn.execute("SELECT 1")  # the answer lost with the session

    write = chain.Head.write

    def statement(self: Any, rows: Any, also: Any = (), only_if: Any = None) -> Any:
        cursor = write(self, rows, also, only_if)
        if any(name == "fresh" for name, _, _ in also):
            end(self.conn)
        return cursor

    owner = LockOwner.current("test")
    with store.lock("operation/etl", owner=owner, lease=60, timeout=5):
        if head_moved:  # the locked way: a transaction in a pipeline
            _after_commit(monkeypatch, lambda conn: True, end)
        else:
            monkeypatch.setattr(chain.Head, "write", statement)
        _move(store, 1)
        monkeypatch.undo()
    assert store.pointer("staging", "etl").generation == 2  # type: ignore[union-attr]


def test_a_write_committed_before_its_connection_was_lost_is_not_reported_rolled_back(
    store: PostgresStateStore, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any write holding the chain's head (an append, an approval, a staging): the
    connection lost after the commit is asked about on another, and the write stands;
    lost before it, the one-line fault says it was rolled back, and it was."""

    def end(conn: psycopg.Connection[Any]) -> None:
        terminate(pg_dsn, [conn.info.backend_pid])
        conn.execute("SELECT 1")  # the answer lost with the session

    _after_commit(monkeypatch, lambda conn: True, end)
    assert store.append_event(AuditEvent(AT, "ann", "note")) == 1
    monkeypatch.undo()
    assert [e.seq for e in store.events()] == [1]

    def before_commit(self: Any, rows: Any, also: Any = (), only_if: Any = None) -> Any:
        terminate(pg_dsn, [self.conn.info.backend_pid])
        return write(self, rows, also, only_if)

    import lockgate_postgres.chain as chain

    write = chain.Head.write
    monkeypatch.setattr(chain.Head, "write", before_commit)
    with pytest.raises(EnvironmentFault, match="rolled back"):
        store.append_event(AuditEvent(AT, "ann", "note"))
    monkeypatch.undo()
    assert [e.seq for e in store.events()] == [1]
