"""``counts()`` (what ``stats`` and ``summary`` read) from ``component_counts``, kept by
triggers on ``components``: right after every kind of write, per project, and filled
from the components already there when an older schema is upgraded."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from lockgate_postgres import PostgresStateStore
from lockgate_postgres.schema import LATEST, MIGRATIONS, TABLES, _create_role, _protect, upgrade
from lockgate_postgres.state import _APPEND_BATCH
from psycopg import sql
from psycopg.rows import dict_row

from lockgate.plugin import (
    GENESIS,
    AuditEvent,
    ComponentRecord,
    ComponentStatus,
    RevisionRecord,
    event_hash,
)

from .postgres_testkit import open_database

AT = "2026-11-20T10:00:00.000000+00:00"
INSERT = (
    "INSERT INTO lockgate.components (project, component, workspace, component_id, "
    "component_type, status, latest_revision, updated_at) SELECT %s, 'ws' || (i %% 3) || ':c' "
    "|| i, 'ws' || (i %% 3), 'c' || i, (ARRAY['scripts', 'steps'])[1 + i %% 2], "
    "(ARRAY['staged', 'approved', 'promoted'])[1 + i %% 3], NULL, %s "
    "FROM generate_series(1, %s) AS i"
)


def grouped(conn: psycopg.Connection[dict[str, Any]], project: str) -> dict[str, dict[str, int]]:
    """The counts computed the slow way, by grouping the components."""

    def by(column: str) -> dict[str, int]:
        rows = conn.execute(
            sql.SQL(
                "SELECT {} AS k, count(*) AS n FROM lockgate.components WHERE project = %s "
                "GROUP BY 1"
            ).format(sql.Identifier(column)),
            (project,),
        )
        return {r["k"]: r["n"] for r in rows}

    return {
        "status": by("status"),
        "type": by("component_type"),
        "workspace": by("workspace"),
    }


def counted(store: PostgresStateStore) -> dict[str, dict[str, int]]:
    counts = store.counts()
    return {"status": counts.by_status, "type": counts.by_type, "workspace": counts.by_workspace}


def test_counts_follow_every_write_and_stay_per_project(pg_dsn: str) -> None:
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    store = PostgresStateStore(open_database(pg_dsn, a))
    other = PostgresStateStore(open_database(pg_dsn, b))
    try:
        with psycopg.connect(pg_dsn, autocommit=True, row_factory=dict_row) as admin:
            admin.execute(INSERT, (a, AT, 300))  # a bulk load, as a restore or COPY is
            admin.execute(INSERT, (b, AT, 50))
            assert counted(store) == grouped(admin, a)
            component = ComponentRecord(
                component="ws9:new",
                workspace="ws9",
                component_id="new",
                component_type="configs",
                status=ComponentStatus.STAGED,
                latest_revision="ab" * 32,
                updated_at=AT,
            )
            revision = RevisionRecord(
                component="ws9:new",
                revision="ab" * 32,
                created_at=AT,
                actor="alice",
                stage="staging",
                files=1,
                size=1,
                parent=None,
            )
            stage = AuditEvent(at=AT, actor="alice", action="stage", component="ws9:new")
            store.record_revision(revision, component, stage)
            approve = AuditEvent(at=AT, actor="bob", action="approve", component="ws9:new")
            store.set_status("ws9:new", ComponentStatus.STAGED, ComponentStatus.APPROVED, approve)
            admin.execute(
                "UPDATE lockgate.components SET workspace = 'ws7' WHERE project = %s "
                "AND component_id IN ('c1', 'c2', 'c4')",
                (a,),
            )
            admin.execute(
                "DELETE FROM lockgate.components WHERE project = %s AND component_id IN "
                "('c3', 'c6', 'c9')",
                (a,),
            )
            truth = grouped(admin, a)
            assert counted(store) == truth
            assert truth["workspace"] == {**truth["workspace"], "ws7": 3}
            assert truth["status"] == {**truth["status"], "approved": 101}  # 100 and the new
            assert counted(other) == grouped(admin, b)
    finally:
        store.close()
        other.close()


def test_an_upgrade_counts_the_components_already_there(pg_server: str) -> None:
    """A database at the version before the counts with components in it: the upgrade
    fills the counts, and the store then answers from them."""
    counts = next(n for n, tables in TABLES.items() if "component_counts" in tables)
    name = f"lockgate_counts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{pg_server} dbname=postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = f"{pg_server} dbname={name}"
    try:
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            with conn.transaction():
                conn.execute("CREATE SCHEMA lockgate")
                conn.execute("CREATE TABLE lockgate.schema_version (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO lockgate.schema_version VALUES (%s)", (counts - 1,))
                _create_role(conn, "lockgate_app")
                for number in range(1, counts):
                    conn.execute(MIGRATIONS[number - 1])
                    for table in TABLES[number]:
                        _protect(conn, table, "lockgate_app")
            conn.execute(INSERT, ("old", AT, 120))
            assert upgrade(conn, "lockgate_app") == LATEST
            truth = grouped(conn, "old")
        store = PostgresStateStore(open_database(dsn, "old"))
        try:
            assert counted(store) == truth
            assert truth["status"] == {"staged": 40, "approved": 40, "promoted": 40}
        finally:
            store.close()
    finally:
        with psycopg.connect(f"{pg_server} dbname=postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_many_events_appended_at_once_chain_and_count(pg_dsn: str, project_key: str) -> None:
    """``append_events`` writes its events a batch per statement (``_APPEND_BATCH``):
    more than a batch still chains in order, and counts each event once."""
    store = PostgresStateStore(open_database(pg_dsn, project_key))
    try:
        events = [
            AuditEvent(at=AT, actor="bench", action="validate", outcome=("ok", "failed")[i % 2])
            for i in range(_APPEND_BATCH + 3)
        ]
        assert store.append_events(events) == list(range(1, len(events) + 1))
        assert store.counts().operations == {"validate": {"ok": 252, "failed": 251}}
        assert store.counts().events == len(events) == len(store.events())
        previous = GENESIS
        for link in store.chain():  # each event's hash covers the one before it
            assert (link.prev_hash, link.hash) == (previous, event_hash(previous, link.event))
            previous = link.hash
        assert previous != GENESIS
    finally:
        store.close()
