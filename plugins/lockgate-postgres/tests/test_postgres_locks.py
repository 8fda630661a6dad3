"""The advisory locks between real processes: a holder in another process excludes this
one (naming its pid), a holder past its lease is reported as such and can be broken, and
a holder that is killed frees the lock without anyone's help."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from lockgate_postgres import PostgresStateStore

from lockgate.plugin import AuditEvent, LockedError, LockOwner

from .postgres_testkit import Statements, open_database, terminate

AT = "2026-11-20T10:00:00.000000+00:00"

HOLDER = r"""
import sys, time
from lockgate.plugin import LockOwner
from lockgate_postgres import Database, PostgresSettings, PostgresStateStore

dsn, project, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = PostgresStateStore(Database(PostgresSettings(dsn=dsn), project))
with store.lock("operation", owner=LockOwner.current("promote"), lease=lease, timeout=10):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def store(pg_dsn: str, project_key: str) -> Iterator[PostgresStateStore]:
    store = PostgresStateStore(open_database(pg_dsn, project_key))
    yield store
    store.close()


def _hold(pg_dsn: str, project: str, lease: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, pg_dsn, project, str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line == "held\n", holder.stderr.read() if holder.stderr else line
    return holder


def _stop(holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.communicate()  # waits, and closes the pipes


def _take(store: PostgresStateStore, timeout: float) -> object:
    return store.lock("operation", owner=LockOwner.current("test"), lease=60, timeout=timeout)


def test_a_holder_in_another_process_excludes_and_is_named(
    store: PostgresStateStore, pg_dsn: str
) -> None:
    holder = _hold(pg_dsn, store.project, lease=3600)
    try:
        owner = store.holder("operation")
        assert owner is not None and owner.pid == holder.pid and owner.operation == "promote"
        with pytest.raises(LockedError) as raised, _take(store, 0.2):  # type: ignore[attr-defined]
            pass  # pragma: no cover
        assert f"pid {holder.pid}" in raised.value.message
    finally:
        _stop(holder)


def test_a_killed_holder_frees_the_lock(store: PostgresStateStore, pg_dsn: str) -> None:
    holder = _hold(pg_dsn, store.project, lease=3600)
    os.kill(holder.pid, signal.SIGKILL)
    _stop(holder)
    started = time.monotonic()
    with _take(store, 30) as granted:  # type: ignore[attr-defined]
        assert store.holder("operation") == granted
    assert time.monotonic() - started < 30


def test_a_holder_past_its_lease_is_reported_and_can_be_broken(
    store: PostgresStateStore, pg_dsn: str
) -> None:
    holder = _hold(pg_dsn, store.project, lease=0.2)
    try:
        time.sleep(0.5)
        owner = store.holder("operation")
        assert owner is not None and owner.past_lease()
        with pytest.raises(LockedError) as raised, _take(store, 0.1):  # type: ignore[attr-defined]
            pass  # pragma: no cover
        assert "past its lease" in raised.value.message
        store.break_lock("operation")  # lockgate unlock --force
        with _take(store, 0) as granted:  # type: ignore[attr-defined]
            assert store.holder("operation") == granted  # the old holder still runs
    finally:
        _stop(holder)


def test_a_write_after_the_lock_was_lost_is_refused(store: PostgresStateStore, pg_dsn: str) -> None:
    """The server ends the lock's session (a dropped network, an administrator): the
    holder's next write is refused instead of going on without the exclusion."""
    with _take(store, 5):  # type: ignore[attr-defined]
        with store.db.conn() as conn:
            pid = conn.execute("SELECT backend_pid FROM lock_owners").fetchone()["backend_pid"]  # type: ignore[index]
        terminate(pg_dsn, [pid])
        with pytest.raises(LockedError) as raised:
            store.append_event(AuditEvent(AT, "ann", "note"))
        assert "was lost" in raised.value.message
    assert store.counts().events == 0


def _lock_pid(store: PostgresStateStore) -> int:
    with store.db.conn() as conn:
        row = conn.execute("SELECT backend_pid FROM lock_owners").fetchone()
    assert row is not None
    return int(row["backend_pid"])


def test_the_next_lock_reuses_the_released_connection_and_replaces_a_dead_one(
    store: PostgresStateStore, pg_dsn: str
) -> None:
    with _take(store, 5):  # type: ignore[attr-defined]
        first = _lock_pid(store)
    with _take(store, 5):  # type: ignore[attr-defined]
        assert _lock_pid(store) == first  # the spare: no new connection
    terminate(pg_dsn, [first])  # the spare dies while idle (a restart, an administrator)
    with _take(store, 5) as granted:  # type: ignore[attr-defined]
        assert _lock_pid(store) != first
        assert store.holder("operation") == granted
        store.append_event(AuditEvent(AT, "ann", "note"))  # the lock is really held
    with psycopg.connect(pg_dsn, autocommit=True) as admin:  # the spare holds no lock
        held = admin.execute(  # in this database: other tests may run beside this one
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert held.fetchone() == (0,)


def test_a_pooled_connection_idle_for_a_while_is_checked_before_use(
    store: PostgresStateStore, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate_postgres import db

    monkeypatch.setattr(db, "FRESH_SECONDS", 0.0)  # every connection counts as idle
    with store.db.conn() as conn:
        pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]  # type: ignore[index]
    terminate(pg_dsn, [pid])
    assert store.counts().events == 0  # the pool's check replaced the dead connection


# ---------------------------------------------------------------------- lock sets

SWITCH = [("operation", True), ("operation/etl", False)]


def _take_set(store: PostgresStateStore, timeout: float = 5) -> Any:
    return store.lock_set(SWITCH, owner=LockOwner.current("test"), lease=60, timeout=timeout)


def _owner_rows(store: PostgresStateStore) -> list[tuple[str, int]]:
    with store.db.conn() as conn:
        rows = conn.execute("SELECT name, backend_pid FROM lock_owners ORDER BY name")
        return [(row["name"], row["backend_pid"]) for row in rows]


def _advisory_locks(dsn: str, pid: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s",
            (pid,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_lock_set_holds_its_locks_on_one_connection_kept_after(
    store: PostgresStateStore, pg_dsn: str
) -> None:
    with _take_set(store) as granted:
        rows = _owner_rows(store)
        assert [name for name, _ in rows] == ["operation", "operation/etl"]
        [pid] = {pid for _, pid in rows}  # one session holds both
        assert _advisory_locks(pg_dsn, pid) == 2
        assert store.holder("operation/etl") == granted
    assert _owner_rows(store) == [] and _advisory_locks(pg_dsn, pid) == 0
    with _take_set(store):
        assert {p for _, p in _owner_rows(store)} == {pid}  # the spare, holding nothing before


def test_a_lock_set_takes_the_new_keys_after_a_break_it_had_not_seen(
    store: PostgresStateStore, pg_dsn: str, project_key: str
) -> None:
    """Another runner broke ``operation`` since this store last looked: the keys it
    tried first are stale, and it gives them back and takes the new ones."""
    with _take_set(store):
        pass  # the epoch seen: 0
    other = PostgresStateStore(open_database(pg_dsn, project_key))
    try:
        other.break_lock("operation")
        with _take_set(store) as granted:
            assert other.holder("operation/etl") == granted
            [pid] = {pid for _, pid in _owner_rows(store)}
            assert _advisory_locks(pg_dsn, pid) == 2  # the stale keys given back
    finally:
        other.close()


def test_a_lock_set_waiting_for_a_hung_holder_gets_its_locks_once_it_is_broken(
    store: PostgresStateStore, pg_dsn: str, project_key: str
) -> None:
    """The set holds ``operation`` shared while it waits for the component lock; an
    ``unlock --force`` meanwhile moves the epoch, so it gives back its stale key and
    takes both anew, while the hung holder keeps its stale one."""
    hung = PostgresStateStore(open_database(pg_dsn, project_key))
    seen: list[object] = []

    def switch() -> None:
        try:
            with _take_set(store, timeout=60) as granted:
                seen.append(granted)
                seen.append(hung.holder("operation/etl"))
                seen.append(hung.holder("operation"))  # at the new epoch too
        except BaseException as exc:  # reported by the assertion below
            seen.append(exc)

    try:
        with hung.lock("operation/etl", owner=LockOwner(pid=1, host="hung"), lease=1, timeout=0):
            waiter = threading.Thread(target=switch)
            waiter.start()
            deadline = time.monotonic() + 60
            while hung.holder("operation") is None:  # the set holds its first lock: waiting
                assert waiter.is_alive() and time.monotonic() < deadline, seen
                time.sleep(0.01)
            hung.break_lock("operation")
            waiter.join(120)
            assert not waiter.is_alive()
        granted, holder, shared_holder = seen
        assert isinstance(granted, LockOwner) and holder == granted, seen
        assert shared_holder is not None and shared_holder.pid == granted.pid, seen
    finally:
        hung.close()


def test_a_write_after_a_lock_set_lost_its_connection_is_refused(
    store: PostgresStateStore, pg_dsn: str
) -> None:
    with _take_set(store):
        [pid] = {pid for _, pid in _owner_rows(store)}
        terminate(pg_dsn, [pid])
        with pytest.raises(LockedError) as raised:
            store.append_event(AuditEvent(AT, "ann", "note"))
        message = raised.value.message
        assert "'operation', 'operation/etl'" in message and "was lost" in message, message
    assert store.counts().events == 0


DEAD_PID = 2147483000  # no server session has it


def _dead_row(store: PostgresStateStore, name: str, epoch: int = 0) -> None:
    """The owner row a holder left when its process died (its session held no lock
    after it, and no release deleted the row)."""
    with store.db.conn() as conn:
        conn.execute(
            "INSERT INTO lock_owners (name, epoch, backend_pid, token, owner) "
            "VALUES (%s, %s, %s, %s, '{}')",
            (name, epoch, DEAD_PID, f"dead-{name}"),
        )


def test_a_release_removes_stale_owner_rows_without_asking_pg_locks(
    store: PostgresStateStore, pg_dsn: str, project_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder of ``operation/etl`` (exclusive) knows every other row of it at its epoch
    stale: nobody else can hold it. A holder of ``operation`` shared removes the rows of
    sessions that have ended, and leaves another runner's, which still holds it. None of
    them asks ``pg_locks``, which every other runner's locks go through."""
    other = PostgresStateStore(open_database(pg_dsn, project_key))
    try:
        _dead_row(store, "operation")
        _dead_row(store, "operation/etl")
        _dead_row(store, "operation/old", epoch=-1)  # an older epoch: stale whoever holds it
        owner = LockOwner.current("t")
        with other.lock("operation", owner=owner, lease=60, timeout=5, shared=True):
            [alive] = {pid for name, pid in _owner_rows(other) if pid != DEAD_PID}
            sent = Statements(monkeypatch).sent
            with _take_set(store):
                pass
            monkeypatch.undo()
            rows = _owner_rows(store)
            assert rows == [("operation", alive), ("operation/old", DEAD_PID)], rows
            assert not any("pg_locks" in sql for sql in sent if "DELETE" in sql), sent
        with store.lock("operation/old", owner=owner, lease=60, timeout=5):
            pass
        assert _owner_rows(store) == []
    finally:
        other.close()
