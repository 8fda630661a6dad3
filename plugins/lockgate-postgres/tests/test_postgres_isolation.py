"""Many projects in one database: each store sees only its own project's rows, through
every read path, and so does raw SQL on its connections (row-level security), even a
query without a WHERE clause."""

from __future__ import annotations

import io
from collections.abc import Iterator

import psycopg
import pytest
from lockgate_postgres import PostgresContentStore, PostgresStateStore
from lockgate_postgres.schema import TABLES

from lockgate.plugin import (
    Approval,
    AuditEvent,
    ComponentRecord,
    ComponentStatus,
    Delivery,
    EventFilter,
    Intent,
    LockOwner,
    PointerChange,
    RevisionRecord,
)

from .postgres_testkit import open_database

AT = "2026-11-20T10:00:00.000000+00:00"
LATER = "2026-11-20T11:00:00.000000+00:00"


def _fill(store: PostgresStateStore, revision: str, actor: str) -> None:
    """One component with a revision, a pointer move, an approval and an open intent."""
    ref = "alice:etl"
    store.record_revision(
        RevisionRecord(ref, revision, AT, actor, "development", 1, 10),
        ComponentRecord(ref, "alice", "etl", "scripts", ComponentStatus.STAGED, revision, AT),
        AuditEvent(AT, actor, "stage", component=ref, revision=revision),
    )
    store.move_pointer(
        PointerChange("staging", "etl", ref, revision, None, 1, AT, actor, "promote"),
        expected_generation=0,
        status=ComponentStatus.PROMOTED,
        event=AuditEvent(AT, actor, "promote", component=ref, stage="staging", revision=revision),
    )
    store.add_approval(
        Approval(ref, revision, actor, "approve", AT),
        AuditEvent(AT, actor, "approve", component=ref, revision=revision),
    )
    store.open_intent(Intent(f"intent-{actor}", "promote", actor, AT, {"who": actor}))
    store.record_deliveries(
        "hook", [Delivery("hook", 2, ref, last_error=actor, next_at=AT, updated_at=AT)], cursor=3
    )


def _everything(store: PostgresStateStore) -> dict[str, object]:
    """What every read path of the store answers."""
    return {
        "component": store.component("alice:etl"),
        "components": store.components(),
        "components_ws": store.components("alice"),
        "revisions": store.revisions("alice:etl"),
        "pointer": store.pointer("staging", "etl"),
        "pointers": store.pointers(),
        "pointers_stage": store.pointers("staging"),
        "history": store.pointer_history(),
        "history_filtered": store.pointer_history("staging", "etl"),
        "live_at": store.live_at("staging", LATER),
        "approvals": store.approvals("alice:etl"),
        "approvals_rev": store.approvals("alice:etl", "a" * 64),
        "intents": store.open_intents(),
        "events": store.events(),
        "events_filtered": store.events(EventFilter(actor="ann", newest_first=True, limit=9)),
        "chain": list(store.chain()),
        "counts": store.counts(),
        "deliveries": store.deliveries(),
        "cursor": store.delivery_cursor("hook"),
    }


@pytest.fixture
def pair(pg_dsn: str, project_key: str) -> Iterator[tuple[PostgresStateStore, ...]]:
    a = PostgresStateStore(open_database(pg_dsn, f"{project_key}-a"))
    b = PostgresStateStore(open_database(pg_dsn, f"{project_key}-b"))
    yield a, b
    a.close()
    b.close()


def test_every_read_path_sees_only_its_project(pair: tuple[PostgresStateStore, ...]) -> None:
    a, b = pair
    before_b = _everything(b)
    _fill(a, "a" * 64, "ann")
    assert _everything(b) == before_b  # A's writes are invisible to B
    _fill(b, "b" * 64, "bob")
    seen_a, seen_b = _everything(a), _everything(b)
    assert "b" * 64 not in repr(seen_a) and "bob" not in repr(seen_a)
    assert "a" * 64 not in repr(seen_b) and "ann" not in repr(seen_b)
    assert [e.seq for e in a.events()] == [1, 2, 3]  # each project's chain is its own
    assert [e.seq for e in b.events()] == [1, 2, 3]
    assert a.counts().events == 3 and b.counts().by_status == {"promoted": 1}


def test_raw_sql_on_the_stores_connection_sees_only_its_project(
    pair: tuple[PostgresStateStore, ...],
) -> None:
    a, b = pair
    _fill(a, "a" * 64, "ann")
    _fill(b, "b" * 64, "bob")
    with a.db.conn() as conn:
        for table in (*TABLES[1], *TABLES[4]):
            projects = {r["project"] for r in conn.execute(f"SELECT project FROM {table}")}
            assert projects <= {a.project}, table
        assert len(conn.execute("SELECT * FROM components").fetchall()) == 1
        assert conn.execute("SELECT count(*) AS n FROM events").fetchone() == {"n": 3}
        # Not even asking for B's rows by name finds them.
        found = conn.execute("SELECT * FROM events WHERE project = %s", (b.project,))
        assert found.fetchall() == []


def test_a_session_cannot_write_another_projects_rows(
    pair: tuple[PostgresStateStore, ...],
) -> None:
    a, b = pair
    with a.db.conn() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "INSERT INTO components (project, component, workspace, component_id, "
            "component_type, status, updated_at) VALUES (%s, 'x:y', 'x', 'y', 's', 'staged', "
            "%s)",
            (b.project, AT),
        )
    _fill(b, "b" * 64, "bob")
    with a.db.conn() as conn:
        assert conn.execute("UPDATE components SET status = 'rejected'").rowcount == 0
        assert conn.execute("DELETE FROM events").rowcount == 0
    assert b.component("alice:etl").status is ComponentStatus.PROMOTED  # type: ignore[union-attr]


def test_the_store_runs_as_a_role_row_level_security_applies_to(
    pair: tuple[PostgresStateStore, ...],
) -> None:
    a, _ = pair
    with a.db.conn() as conn:
        row = conn.execute(
            "SELECT current_user AS who, rolsuper, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
        assert row == {"who": "lockgate_app", "rolsuper": False, "rolbypassrls": False}
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'lockgate'"
        ).fetchall()
        assert {"tableowner": "lockgate_app"} not in owners
        forced = conn.execute(
            "SELECT bool_and(relrowsecurity AND relforcerowsecurity) AS forced FROM pg_class "
            "WHERE relnamespace = 'lockgate'::regnamespace AND relkind = 'r' "
            "AND relname <> 'schema_version'"
        ).fetchone()
        assert forced == {"forced": True}


def test_a_superuser_session_would_bypass_the_policies(
    pair: tuple[PostgresStateStore, ...], pg_dsn: str
) -> None:
    """Why the store becomes its role: without it (``role: ""``) a superuser login sees
    every project's rows, whatever the session's project."""
    a, b = pair
    _fill(a, "a" * 64, "ann")
    _fill(b, "b" * 64, "bob")
    bare = open_database(pg_dsn, a.project, role="")
    try:
        with bare.conn() as conn:
            superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if not superuser.fetchone()["rolsuper"]:  # type: ignore[index]
                pytest.skip("the test server's login role is no superuser")
            projects = {r["project"] for r in conn.execute("SELECT project FROM components")}
        assert {a.project, b.project} <= projects
    finally:
        bare.close()


def test_locks_are_per_project(pair: tuple[PostgresStateStore, ...]) -> None:
    a, b = pair
    owner = LockOwner(pid=1, host="a.invalid", operation="promote")
    with a.lock("operation", owner=owner, lease=60, timeout=0):
        assert b.holder("operation") is None
        with b.lock("operation", owner=owner, lease=60, timeout=0):
            assert a.holder("operation") is not None


def test_content_is_per_project(pg_dsn: str, project_key: str) -> None:
    a = PostgresContentStore(open_database(pg_dsn, f"{project_key}-a"))
    b = PostgresContentStore(open_database(pg_dsn, f"{project_key}-b"))
    try:
        digest = a.put(io.BytesIO(b"only A's"))
        assert a.has(digest) and not b.has(digest)
        assert list(b.objects()) == [] and not b.verify(digest)
        b.delete(digest)  # B cannot delete A's object either
        assert a.verify(digest)
        assert b.put(io.BytesIO(b"only A's")) == digest  # B stores its own copy
        with b.db.conn() as conn:
            assert conn.execute("SELECT count(*) AS n FROM chunks").fetchone() == {"n": 1}
    finally:
        a.close()
        b.close()
