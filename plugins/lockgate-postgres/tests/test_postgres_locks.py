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
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from lockgate_postgres import PostgresStateStore
from lockgate_postgres.locks import SWEEP_EVERY, release_statement

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


def _dead_row(store: PostgresStateStore, name: str, epoch: int = 0, pid: int = DEAD_PID) -> None:
    """The owner row a holder left when its process died (its session held no lock
    after it, and no release deleted the row)."""
    with store.db.conn() as conn:
        conn.execute(
            "INSERT INTO lock_owners (name, epoch, backend_pid, token, owner) "
            "VALUES (%s, %s, %s, %s, '{}')",
            (name, epoch, pid, f"dead-{name}-{uuid.uuid4().hex}"),
        )


def test_a_release_deletes_its_own_rows_and_now_and_then_sweeps_those_no_holder_will(
    store: PostgresStateStore, pg_dsn: str, project_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release deletes its holder's owner rows. The first of a process, and one in
    ``SWEEP_EVERY`` after, also sweeps the rows no holder will delete: those of sessions
    that have ended, whatever their name, and those at an epoch a break left behind,
    even of a session still alive; another runner's row, which still holds its lock,
    stays. None of them asks ``pg_locks``, which every other runner's locks go through."""
    other = PostgresStateStore(open_database(pg_dsn, project_key))
    try:
        owner = LockOwner.current("t")
        with other.lock("operation", owner=owner, lease=60, timeout=5, shared=True):
            [alive] = {pid for _, pid in _owner_rows(other)}
            _dead_row(store, "operation")
            _dead_row(store, "operation/etl")
            _dead_row(store, "deploy")
            _dead_row(store, "operation/old", epoch=-1, pid=alive)  # behind its epoch
            sent = Statements(monkeypatch).sent
            with _take_set(store):  # the store's first release: it sweeps
                pass
            assert _owner_rows(store) == [("operation", alive)]
            _dead_row(store, "operation/etl")
            with _take_set(store):  # the second: its own rows only
                pass
            assert _owner_rows(store) == [("operation", alive), ("operation/etl", DEAD_PID)]
            store._locks._releases = SWEEP_EVERY  # the next is one in SWEEP_EVERY
            with _take_set(store):
                pass
            monkeypatch.undo()
            assert _owner_rows(store) == [("operation", alive)]
            deletes = [sql for sql in sent if "DELETE" in sql]
            assert len(deletes) == 3 and not any("pg_locks" in sql for sql in deletes), sent
            assert ["pg_stat_get_backend_idset" in sql for sql in deletes] == [True, False, True]
    finally:
        other.close()


def test_a_release_finds_its_owner_rows_by_their_token(store: PostgresStateStore) -> None:
    # Every switch inserts and deletes owner rows of the same names, and their index
    # entries stay until the table is vacuumed: a release that scanned a name's entries,
    # or the project's with the token as a filter, stepped over every one (thousands a
    # minute with 8 runners). The key leads with the token: whichever way the planner
    # takes the key (a table this small may also be read whole, hence no plain scans
    # here), it searches the holder's own entries only.
    sql, args = release_statement(["operation", "operation/etl"], "token")
    with store.db.transaction() as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        inlined = psycopg.ClientCursor(conn).mogrify(sql, args)
        row = conn.execute(f"EXPLAIN (FORMAT JSON) {inlined}").fetchone()
        key = conn.execute("SELECT pg_get_indexdef('lock_owners_pkey'::regclass) AS d").fetchone()
    assert row is not None and key is not None
    assert key["d"].endswith("(project, token, name)"), key
    (plan,) = row.values()
    scans = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Relation Name") == "lock_owners" and "Scan" in node["Node Type"]:
            scans.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    [scan] = scans
    if scan["Node Type"] == "Bitmap Heap Scan":
        [scan] = scan["Plans"]
    assert scan["Index Name"] == "lock_owners_pkey", scan
    condition = scan["Index Cond"]
    assert "(project = " in condition and "(token = " in condition, condition
