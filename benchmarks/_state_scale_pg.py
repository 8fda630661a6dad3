"""The PostgreSQL half of ``benchmarks/state_scale.py --store postgres`` (not a benchmark
itself): the same synthetic history, copied row for row from the SQLite state the
benchmark built into the ``postgres`` state store's tables, and the same report calls
timed there beside the very SELECTs they issue, run as raw SQL on the same server.

* :func:`scratch_database`: a database of the run's own on the server (libpq string
  without ``dbname``), dropped at the end;
* :func:`load`: the ``postgres`` store sets its schema up (its own code: tables, indexes,
  row-level security), then every table is copied with ``COPY`` as the login role (a
  superuser: ``COPY FROM`` is refused under row-level security), the project column set
  to the benchmark's project, the chain head written last; then ``VACUUM ANALYZE``, which
  autovacuum runs by itself on tables that grew this much (since PostgreSQL 13 on
  insert-only ones too): planner statistics, and the visibility map that lets a count
  read an index alone;
* :func:`project_on`: a project directory whose ``lockgate.yaml`` selects the store;
* :class:`Tracer`: the statements a call sends through psycopg (its ``Cursor.execute``,
  wrapped for the call), replayed on a plain connection with the same session settings
  (role, ``lockgate.project``, ``search_path``) and fetched as tuples: the floor.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["Tracer", "load", "project_on", "scratch_database"]

PROJECT = "scale"

TABLES: dict[str, tuple[str, str]] = {
    # table: (columns, ORDER BY in SQLite: keeps the serial columns in their order)
    "components": (
        "component, workspace, component_id, component_type, status, latest_revision, updated_at",
        "component",
    ),
    "revisions": (
        "component, revision, created_at, actor, stage, files, size, parent",
        "rowid",
    ),
    "events": (
        "seq, at, actor, action, component, stage, revision, previous_revision, reason, "
        "details, prev_hash, hash, outcome",
        "seq",
    ),
    "event_counts": ("action, outcome, n", "action, outcome"),
    "pointers": (
        "stage, component_id, component, revision, generation, updated_at, actor",
        "stage, component_id",
    ),
    "pointer_history": (
        "stage, component_id, component, revision, previous_revision, generation, at, actor, "
        "action, reason, valid_until, event_seq",
        "rowid",
    ),
    "approvals": ("component, revision, actor, decision, at, stage, comment", "rowid"),
}


@contextlib.contextmanager
def scratch_database(server: str, who: str = "state_scale") -> Iterator[str]:
    """A database of this run's own on ``server``; its dsn. Dropped at the end (``who``:
    the benchmark named in the one line said when there is no server)."""
    name = f"lockgate_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise SystemExit(
            f"{who}: no PostgreSQL server to use at '{server}' "
            f"({' '.join(str(exc).split())}); start one (docs/team.md) or pass --pg-server"
        ) from None
    try:
        yield f"{server} dbname={name}"
    finally:
        with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def project_on(root: Path, dsn: str) -> Path:
    """A project directory whose state is the ``postgres`` store's project ``scale``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lockgate.yaml").write_text(
        "project:\n  name: scale\nstate:\n  store: postgres\n"
        f"plugins:\n  postgres:\n    dsn: {json.dumps(dsn)}\n    project: {PROJECT}\n",
        encoding="utf-8",
    )
    return root


def load(state_db: Path, dsn: str) -> None:
    """Copy the SQLite state at ``state_db`` into the ``postgres`` store at ``dsn``."""
    from lockgate_postgres import Database, PostgresSettings

    Database(PostgresSettings(dsn=dsn), PROJECT).close()  # the store's own schema set-up
    started = time.perf_counter()
    source = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    rows = 0
    with psycopg.connect(dsn) as conn:
        conn.execute("SET search_path = lockgate")
        for table, (columns, order) in TABLES.items():
            cursor = source.execute(f"SELECT {columns} FROM {table} ORDER BY {order}")
            copy = f"COPY {table} (project, {columns}) FROM STDIN"
            with conn.cursor().copy(copy) as pipe:
                for row in cursor:
                    pipe.write_row((PROJECT, *row))
                    rows += 1
        seq, digest, at = source.execute(
            "SELECT seq, hash, at FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        conn.execute(
            "INSERT INTO heads (project, seq, hash, at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (project) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
            "at = excluded.at",
            (PROJECT, seq, digest, at),
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    source.close()
    print(f"copied {rows:,} rows into PostgreSQL in {time.perf_counter() - started:.1f} s")


class Tracer:
    """Which statements a call sends through psycopg, and the same run as raw SQL."""

    def __init__(self, dsn: str, role: str | None) -> None:
        self.plain = psycopg.connect(dsn, autocommit=True)
        if role:
            self.plain.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        self.plain.execute("SELECT set_config('lockgate.project', %s, false)", (PROJECT,))
        self.plain.execute("SET search_path = lockgate")

    def statements(self, call: Callable[[], object]) -> list[tuple[Any, Any]]:
        """The SELECTs ``call`` runs (query, parameters), each once, in order."""
        seen: list[tuple[Any, Any]] = []
        original = psycopg.Cursor.execute

        def recording(cursor: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
            text = query if isinstance(query, str) else query.as_string(cursor.connection)
            if text.lstrip().upper().startswith("SELECT") and (query, params) not in seen:
                seen.append((query, params))
            return original(cursor, query, params, **kwargs)

        psycopg.Cursor.execute = recording  # type: ignore[method-assign]
        try:
            call()
        finally:
            psycopg.Cursor.execute = original  # type: ignore[method-assign]
        return seen

    def peer(self, statements: list[tuple[Any, Any]]) -> Callable[[], None]:
        """A call that runs ``statements`` on the plain connection, fetched as tuples."""

        def run() -> None:
            for query, params in statements:
                self.plain.execute(query, params).fetchall()

        return run

    def explain(self, statements: list[tuple[Any, Any]]) -> list[str]:
        """The plan of each statement (EXPLAIN, one line per node)."""
        lines = []
        for query, params in statements:
            text = query if isinstance(query, str) else query.as_string(self.plain)
            lines.append(f"  {' '.join(text.split())}")
            plan = self.plain.execute(sql.SQL("EXPLAIN ") + sql.SQL(text), params).fetchall()
            lines.extend(f"      {row[0]}" for row in plan)
        return lines

    def close(self) -> None:
        self.plain.close()
