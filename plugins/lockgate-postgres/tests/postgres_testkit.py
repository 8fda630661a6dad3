"""Helpers the postgres tests share (the fixtures are in conftest.py)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from lockgate_postgres import Database, PostgresSettings


class Statements:
    """The text of every statement psycopg sends from now on (pipelined ones too)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        execute = psycopg.Cursor.execute

        def recorded(cursor: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
            self.sent.append(str(query))
            return execute(cursor, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", recorded)


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
