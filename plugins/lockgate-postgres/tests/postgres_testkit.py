"""Helpers the postgres tests share (the fixtures are in conftest.py)."""

from __future__ import annotations

from lockgate_postgres import Database, PostgresSettings


def open_database(dsn: str, project: str, **settings: object) -> Database:
    return Database(PostgresSettings(dsn=dsn, **settings), project)  # type: ignore[arg-type]
