"""The roles docs/team.md sets up: an owner that creates the schema (no superuser), and
runners that log in as a role that may only become ``lockgate_app``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from lockgate_postgres import PostgresSettings, PostgresStateStore
from lockgate_postgres.db import admin_connection
from lockgate_postgres.schema import LATEST, upgrade
from psycopg import sql

from lockgate.plugin import AuditEvent, ConfigError

from .postgres_testkit import open_database

AT = "2026-11-20T10:00:00.000000+00:00"


@pytest.fixture
def team(pg_server: str) -> Iterator[dict[str, str]]:
    """A database owned by a plain login role, a runner login, both dropped at the end."""
    tag = uuid.uuid4().hex[:8]
    names = {"db": f"lockgate_team_{tag}", "owner": f"owner_{tag}", "runner": f"runner_{tag}"}
    ident = {k: sql.Identifier(v) for k, v in names.items()}
    with psycopg.connect(f"{pg_server} dbname=postgres", autocommit=True) as su:
        su.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident["owner"]))
        su.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident["runner"]))
        su.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(ident["db"], ident["owner"]))
        if not su.execute("SELECT 1 FROM pg_roles WHERE rolname = 'lockgate_app'").fetchone():
            su.execute("CREATE ROLE lockgate_app NOLOGIN NOBYPASSRLS")
        su.execute(sql.SQL("GRANT lockgate_app TO {}").format(ident["runner"]))
    server = " ".join(p for p in pg_server.split() if not p.startswith("user="))
    try:
        yield {
            "owner": f"{server} user={names['owner']} dbname={names['db']}",
            "runner": f"{server} user={names['runner']} dbname={names['db']}",
        }
    finally:
        with psycopg.connect(f"{pg_server} dbname=postgres", autocommit=True) as su:
            su.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident["db"]))
            su.execute(sql.SQL("DROP ROLE {}, {}").format(ident["owner"], ident["runner"]))


def test_a_runner_cannot_set_up_the_schema_and_says_who_can(team: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as refused:
        open_database(team["runner"], "payments")
    assert "lockgate postgres upgrade" in refused.value.message


def test_the_owner_sets_up_the_schema_and_runners_use_it(team: dict[str, str]) -> None:
    with admin_connection(PostgresSettings(dsn=team["owner"])) as conn:
        assert upgrade(conn, "lockgate_app") == LATEST
    store = PostgresStateStore(open_database(team["runner"], "payments"))
    try:
        assert store.append_event(AuditEvent(AT, "ann", "note")) == 1
        with store.db.conn() as conn:
            who = conn.execute("SELECT current_user AS u, session_user AS s").fetchone()
            assert who is not None and who["u"] == "lockgate_app"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DROP TABLE events")
    finally:
        store.close()


def test_a_login_that_may_not_become_the_role_is_told_so(
    team: dict[str, str], pg_server: str
) -> None:
    with admin_connection(PostgresSettings(dsn=team["owner"])) as conn:
        upgrade(conn, "lockgate_app")
    runner = team["runner"].split("user=")[1].split()[0]
    with psycopg.connect(f"{pg_server} dbname=postgres", autocommit=True) as su:
        su.execute(sql.SQL("REVOKE lockgate_app FROM {}").format(sql.Identifier(runner)))
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        open_database(team["runner"], "payments")
    assert "may not become plugins.postgres.role" in refused.value.message
    assert time.monotonic() - started < 5  # said at once, not after the pool's retries
