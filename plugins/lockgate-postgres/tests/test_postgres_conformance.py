"""The ``postgres`` stores pass lockgate's conformance suites against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lockgate_postgres import PostgresContentStore, PostgresStateStore

from lockgate.testing import ContentStoreConformance, StateStoreConformance

from .postgres_testkit import open_database


class TestPostgresStateStore(StateStoreConformance):
    @pytest.fixture
    def store(self, pg_dsn: str, project_key: str) -> Iterator[PostgresStateStore]:
        store = PostgresStateStore(open_database(pg_dsn, project_key))
        yield store
        store.close()


class TestPostgresContentStore(ContentStoreConformance):
    @pytest.fixture
    def content_store(self, pg_dsn: str, project_key: str) -> Iterator[PostgresContentStore]:
        # Small chunks, so the suite's objects span several.
        store = PostgresContentStore(open_database(pg_dsn, project_key, chunk_size=4096))
        yield store
        store.close()
