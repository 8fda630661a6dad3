"""What a gate asks on every promotion, read on PostgreSQL without reading every move of
the component: the revisions ever live (``LiveRevisions``) and one component's events of
one action (who staged it, who approved). The rows each query's plan reads follow what
it returns, however many times the component moved (before schema version 7's indexes,
both read every move: the first its pointer history, the second, once the planner had
statistics, the events of every component). And the components of one id in every
workspace (``ComponentsById``, what the ``conflicts`` validator asks), read without
reading the project's other components (before schema version 8, every one of them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from lockgate_postgres import PostgresStateStore
from lockgate_postgres.reads import (
    Query,
    components_by_id,
    events,
    lineage,
    live_revisions,
    revisions_starting,
)

from lockgate.plugin import EventFilter
from lockgate.testing._state_builders import _move, _stage, at

from .postgres_testkit import open_database

REF = "alice:etl"


@pytest.fixture
def store(pg_dsn: str, project_key: str) -> Iterator[PostgresStateStore]:
    """r1 and r2 of alice:etl, b1 of bob:etl (the same component id), moved 60 times in
    all in ``staging``, and 100 other components staged; beside them another project's
    20,000 events and moves, and the tables analysed: the planner sees a busy server (on
    tables of a page or two it rightly scans, stopping at the rows it needs)."""
    one = PostgresStateStore(open_database(pg_dsn, project_key))
    _stage(one, REF, "r1", at(0))
    _stage(one, REF, "r2", at(0, 1), parent="r1")
    _stage(one, "bob:etl", "b1", at(0, 2))
    for n in range(100):
        _stage(one, f"team:c{n}", f"t{n}", at(0, 3))
    for n in range(60):
        ref = REF if n % 3 else "bob:etl"
        revision = f"r{n % 2 + 1}" if ref == REF else "b1"
        _move(one, "staging", ref, revision, at(1 + n // 60, n % 60), expected=n)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        for insert in _ANOTHER_PROJECT.split("---"):
            admin.execute(insert, (f"{project_key}-busy",))
        admin.execute("ANALYZE lockgate.events, lockgate.pointer_history, lockgate.components")
    yield one
    one.close()


_ANOTHER_PROJECT = """
INSERT INTO lockgate.events (project, seq, at, actor, action, component, stage, revision,
    previous_revision, reason, details, prev_hash, hash, outcome)
SELECT %s, n, 'at', 'carol', 'promote', 'carol:c' || (n %% 500), 'staging', 'r' || n, NULL,
    NULL, '{}', 'h', 'h', 'ok'
FROM generate_series(1, 20000) AS n;
---
INSERT INTO lockgate.pointer_history (project, stage, component_id, component, revision,
    generation, at, actor, action)
SELECT %s, 'staging', 'c' || (n %% 500), 'carol:c' || (n %% 500), 'r' || n, n, 'at', 'carol',
    'promote'
FROM generate_series(1, 20000) AS n;
---
INSERT INTO lockgate.components (project, component, workspace, component_id, component_type,
    status, latest_revision, updated_at)
SELECT %s, 'carol:etl' || n, 'carol', 'etl' || n, 'scripts', 'staged', 'r' || n, 'at'
FROM generate_series(1, 20000) AS n;
"""


def _rows_read(store: PostgresStateStore, query: Query) -> int:
    """The rows the query's plan read from tables: each scan's rows, returned or removed
    by its filter, times its loops (``EXPLAIN ANALYZE``, on the store's own connection:
    its role and project; PostgreSQL rounds a scan's rows per loop down, so this may
    fall short by a row a loop, never by a scan of the component's moves)."""
    with store.db.conn() as conn:
        inlined = psycopg.ClientCursor(conn).mogrify(query.sql, query.args)
        row = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {inlined}").fetchone()
    assert row is not None
    (plan,) = row.values() if isinstance(row, dict) else row

    def read(node: dict[str, Any]) -> int:
        rows = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        own = rows * node["Actual Loops"] if "Relation Name" in node else 0
        return own + sum(read(child) for child in node.get("Plans", []))

    return read(plan[0]["Plan"])


def test_live_revisions_read_a_row_or_two_per_revision(store: PostgresStateStore) -> None:
    assert store.live_revisions(REF, None) == {"r1", "r2"}
    assert store.live_revisions(REF, ("staging", "qa")) == {"r1", "r2"}
    assert store.live_revisions(REF, ("qa",)) == frozenset()
    for stages in (None, ("staging", "qa")):
        # a search per revision and a check of its stage: a few rows where the
        # component moved 40 times (and the other project's 20,000 moves)
        read = _rows_read(store, live_revisions(REF, stages))
        assert read <= 10, (stages, read)


def test_one_component_s_events_of_one_action_read_only_those(
    store: PostgresStateStore,
) -> None:
    stagings = EventFilter(component=REF, action="stage")
    assert [e.revision for e in store.events(stagings)] == ["r1", "r2"]
    assert _rows_read(store, events(stagings)) == 2


def test_the_components_of_one_id_read_only_those(store: PostgresStateStore) -> None:
    found = store.components_by_id(("etl",))
    assert [c.component for c in found] == ["alice:etl", "bob:etl"]
    assert _rows_read(store, components_by_id(("etl",))) == 2
    assert _rows_read(store, components_by_id(("etl", "c7", "nothing"))) == 3


def _rev(n: int) -> str:
    return f"{n:064x}"


def test_a_lineage_and_a_revision_by_id_read_their_rows_not_every_staging(
    store: PostgresStateStore, pg_dsn: str
) -> None:
    """300 stagings of alice:web, each the parent of the next, the 298th live: who
    authored the 300th walks two steps, whatever came before (before schema version 8
    and ``RevisionLineage``, a gate read every revision and every staging)."""
    web = "alice:web"
    for n in range(1, 301):
        _stage(store, web, _rev(n), at(2, n % 60), parent=_rev(n - 1) if n > 1 else None)
    _move(store, "staging", web, _rev(298), at(3), expected=0)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("ANALYZE lockgate.events, lockgate.revisions, lockgate.pointer_history")
    steps = store.lineage(web, _rev(300), ("staging",))
    assert [(s.revision, s.stagers) for s in steps] == [
        (_rev(300), ("alice",)),
        (_rev(299), ("alice",)),
    ]
    assert _rows_read(store, lineage(web, _rev(300), ("staging",))) <= 12
    assert [r.revision for r in store.revisions_starting(web, _rev(300), 2)] == [_rev(300)]
    assert _rows_read(store, revisions_starting(web, _rev(300), 2)) == 1
