"""What rides on a lock set's round trips: the holder's first batch of reads goes with
its locks (``LockSet``'s ``reads``), read once they are granted, and an intent closed
under the set goes with its release, committed before the locks go."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from lockgate_postgres import PostgresStateStore

from lockgate.plugin import Ask, Intent, LockOwner, answer_each

from .postgres_testkit import open_database

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
    """A holder writes, then releases; the set waiting for it reads what it wrote."""
    written = _intent()
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with _locked(other):
            holding.set()
            time.sleep(0.3)
            other.open_intent(written)
        done.set()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with _locked(store, READS):
            assert done.is_set()
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
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (row["backend_pid"],))
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
    values = (intent.id, "promote", "1@host", AT, "{}", "open")
    with _locked(store):
        held = store._locks.holding()
        assert held is not None
        conn, _ = held
        assert conn.execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "off"}
        sql = _open_intent([], durable=True) + " RETURNING current_setting('synchronous_commit')"
        assert conn.execute(sql, values).fetchone() == {"current_setting": "on"}
        assert conn.execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "off"}
