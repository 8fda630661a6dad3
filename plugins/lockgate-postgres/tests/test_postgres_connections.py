"""The server sessions a process opens: a project's state and content stores share one
set-up and one pool, and the set-up's connection becomes the first lock's."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest
from lockgate_postgres import Database, PostgresSettings

from lockgate.plugin import EnvironmentFault, LockOwner
from lockgate.testing import open_project

from .test_postgres_cli import write_config


def _sessions(dsn: str, app: str, *, settled: bool = False) -> int:
    """The server sessions named ``app`` (``settled``: waiting a moment for closed ones
    to go). The question's own session has a name of its own: ``PGAPPNAME`` names every
    other connection of the test's process."""
    with psycopg.connect(dsn, autocommit=True, application_name="lockgate-test") as admin:
        deadline = time.monotonic() + 5
        while True:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchone()
            assert row is not None
            if not settled or row[0] == 0 or time.monotonic() > deadline:
                return int(row[0])
            time.sleep(0.02)


def test_both_stores_and_a_lock_of_one_project_use_two_sessions(
    lockgate_project: Path, pg_dsn: str, project_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = f"lockgate-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PGAPPNAME", app)
    write_config(lockgate_project, pg_dsn, project_key)
    project = open_project(lockgate_project)
    try:
        state, content = project.state(), project.content()
        assert not content.has("0" * 64)
        owner = LockOwner.current("test")
        with state.lock_set([("operation", True)], owner=owner, lease=60, timeout=5):  # type: ignore[attr-defined]
            assert state.pointer("staging", "etl") is None
        # The pool's one and the set-up's, which held the lock: not a pool, a set-up and
        # a lock connection for each store.
        assert _sessions(pg_dsn, app) == 2
    finally:
        project.close()
    assert _sessions(pg_dsn, app, settled=True) == 0


def test_a_shared_database_stays_open_until_its_last_user_closes_it(
    pg_dsn: str, project_key: str
) -> None:
    settings = PostgresSettings(dsn=pg_dsn)
    first = Database.shared(settings, project_key)
    second = Database.shared(PostgresSettings(dsn=pg_dsn), project_key)
    other = Database.shared(settings, f"{project_key}-other")
    try:
        assert first is second and other is not first
        first.close()
        with second.conn() as conn:  # still open for the other user
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        second.close()
        with pytest.raises(EnvironmentFault, match="was closed"), second.conn():
            pass
        third = Database.shared(settings, project_key)  # a closed one is opened anew
        assert third is not first
        third.close()
    finally:
        other.close()


def test_a_database_a_parent_opened_before_forking_is_not_shared(
    pg_dsn: str, project_key: str
) -> None:
    """A forked child (``lockgate serve --workers``) has the parent's object but not its
    pool's threads: it opens its own."""
    settings = PostgresSettings(dsn=pg_dsn)
    parents = Database.shared(settings, project_key)
    parents._pid = -1  # as a child sees it
    try:
        own = Database.shared(settings, project_key)
        assert own is not parents
        assert Database.shared(settings, project_key) is own
        own.close()
        own.close()
    finally:
        parents.close()
