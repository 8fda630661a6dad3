"""The advisory locks between real processes: a holder in another process excludes this
one (naming its pid), a holder past its lease is reported as such and can be broken, and
a holder that is killed frees the lock without anyone's help."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from lockgate_postgres import PostgresStateStore
from postgres_testkit import open_database

from lockgate.plugin import LockedError, LockOwner

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
