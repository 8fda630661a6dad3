"""Helpers the postgres tests share (the fixtures are in conftest.py)."""

from __future__ import annotations

import time

import psycopg
from lockgate_postgres import Database, PostgresSettings


def open_database(dsn: str, project: str, **settings: object) -> Database:
    return Database(PostgresSettings(dsn=dsn, **settings), project)  # type: ignore[arg-type]


def terminate(dsn: str, pids: list[int]) -> None:
    """End the server sessions ``pids`` and wait until they are gone (their advisory
    locks with them: ``pg_terminate_backend`` only signals)."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
        ).fetchone():
            assert time.monotonic() < deadline
            time.sleep(0.02)
