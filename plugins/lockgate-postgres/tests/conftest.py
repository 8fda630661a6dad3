"""The server the tests use, and a database of their own for each test run.

The server is PostgreSQL at 127.0.0.1:5432 with trust authentication (user ``postgres``
or ``root``), or what ``LOCKGATE_POSTGRES_TEST_DSN`` names (a libpq connection string
without ``dbname``). Each run creates a database with a random name and drops it at the
end; every test uses a project of its own in it. Without a server the tests skip with
one line, unless ``LOCKGATE_REQUIRE_SERVICES=1``, which makes that a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from lockgate.testing import require_tcp_service, service_missing

HOST, PORT = "127.0.0.1", 5432


def _server() -> str:
    explicit = os.environ.get("LOCKGATE_POSTGRES_TEST_DSN")
    if explicit:
        candidates = [explicit]
    else:
        require_tcp_service("PostgreSQL", HOST, PORT)
        candidates = [f"host={HOST} port={PORT} user={u}" for u in ("postgres", "root")]
    problems = []
    for dsn in candidates:
        try:
            with psycopg.connect(f"{dsn} dbname=postgres", connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return dsn
        except psycopg.OperationalError as exc:
            problems.append(" ".join(str(exc).split()))
    return service_missing("PostgreSQL", "; ".join(problems))


@pytest.fixture(scope="session")
def pg_server() -> str:
    """A connection string for the server (no database named)."""
    return _server()


@pytest.fixture(scope="session")
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A database of this test run's own (random name), dropped at the end."""
    name = f"lockgate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{pg_server} dbname=postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{pg_server} dbname={name}"
    finally:
        with psycopg.connect(f"{pg_server} dbname=postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def project_key() -> str:
    """A project of this test's own in the run's database."""
    return f"test-{uuid.uuid4().hex[:10]}"
