"""The ``postgres`` state store's reads, each a :class:`Query` (its SQL, its arguments and
how its rows become the answer), so that one read runs alone and several run as one
statement (``ReadBatch``, :func:`batch`).

Together, each read is a scalar subquery aggregating its rows into JSON in the order it
returns them (``json_agg`` over a subquery, which keeps the subquery's order when the
outer query only aggregates), one column per read; every column the reads return is text
or an integer, so a row comes back from JSON as it comes back alone. One statement is
one snapshot: the answers are as they all stood at one moment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from lockgate.plugin import (
    Approval,
    Ask,
    AuditEvent,
    ComponentRecord,
    ComponentStatus,
    EventFilter,
    Intent,
    LineageStep,
    Pointer,
    PointerChange,
    RevisionRecord,
    equal_clauses,
    ordered_lineage,
    sql_where,
)
from lockgate_postgres.db import Row

__all__ = ["COMPONENT", "EVENT", "QUERIES", "Query", "batch", "event"]

COMPONENT = (
    "component, workspace, component_id, component_type, status, latest_revision, updated_at"
)
_POINTER = "stage, component_id, component, revision, generation, updated_at, actor"
_REVISION = "component, revision, created_at, actor, stage, files, size, parent"
_CHANGE = (
    "stage, component_id, component, revision, previous_revision, generation, at, actor, "
    "action, reason, valid_until, event_seq"
)
_APPROVAL = "component, revision, actor, decision, at, stage, comment"
EVENT = (
    "seq, at, actor, action, component, stage, revision, previous_revision, reason, "
    "details, outcome"
)


@attrs.frozen
class Query:
    """A read: ``sql`` with ``args`` (``%s`` placeholders), and ``answer``, its rows to
    what the store's method returns."""

    sql: str
    args: tuple[object, ...]
    answer: Callable[[list[Row]], Any]


def _component(row: Row) -> ComponentRecord:
    return ComponentRecord(**{**row, "status": ComponentStatus(row["status"])})


def event(row: Row) -> AuditEvent:
    """An audit event from its row (``details`` kept as JSON text)."""
    return AuditEvent(**{**row, "details": json.loads(row["details"])})


def _each(make: Callable[[Row], Any]) -> Callable[[list[Row]], list[Any]]:
    return lambda rows: [make(r) for r in rows]


def _first(make: Callable[[Row], Any]) -> Callable[[list[Row]], Any]:
    return lambda rows: make(rows[0]) if rows else None


def _intent(row: Row) -> Intent:
    return Intent(**{**row, "payload": json.loads(row["payload"])})


def component(ref: str) -> Query:
    sql = f"SELECT {COMPONENT} FROM components WHERE component = %s"
    return Query(sql, (ref,), _first(_component))


def components(workspace: str | None = None) -> Query:
    if workspace is None:
        return Query(
            f"SELECT {COMPONENT} FROM components ORDER BY component", (), _each(_component)
        )
    sql = f"SELECT {COMPONENT} FROM components WHERE workspace = %s ORDER BY component"
    return Query(sql, (workspace,), _each(_component))


def components_by_id(component_ids: Sequence[str]) -> Query:
    sql = f"SELECT {COMPONENT} FROM components WHERE component_id = ANY(%s) ORDER BY component"
    return Query(sql, (list(component_ids),), _each(_component))


def revisions(ref: str) -> Query:
    sql = f"SELECT {_REVISION} FROM revisions WHERE component = %s ORDER BY seq"
    return Query(sql, (ref,), _each(lambda r: RevisionRecord(**r)))


def pointer(stage: str, component_id: str) -> Query:
    sql = f"SELECT {_POINTER} FROM pointers WHERE stage = %s AND component_id = %s"
    return Query(sql, (stage, component_id), _first(lambda r: Pointer(**r)))


def pointers(stage: str | None = None) -> Query:
    sql = f"SELECT {_POINTER} FROM pointers WHERE revision IS NOT NULL"
    args: tuple[object, ...] = ()
    if stage is not None:
        sql, args = sql + " AND stage = %s", (stage,)
    return Query(sql + " ORDER BY stage, component_id", args, _each(lambda r: Pointer(**r)))


def pointer_history(stage: str | None = None, component_id: str | None = None) -> Query:
    clauses, args = equal_clauses("%s", stage=stage, component_id=component_id)
    sql = f"SELECT {_CHANGE} FROM pointer_history{sql_where(clauses)} ORDER BY seq"
    return Query(sql, tuple(args), _each(lambda r: PointerChange(**r)))


def live_revisions(ref: str, stages: Sequence[str] | None = None) -> Query:
    """``LiveRevisions``: a skip scan of ``pointer_history_by_revision`` (one index
    search per revision returned, however often each moved), and with stages one more
    search each for a move in one of them: a scalar subquery, which runs per revision,
    where an ``EXISTS`` may become a join reading every move of the component."""
    sql = _LIVE_REVISIONS
    args: list[object] = [ref, ref]
    if stages is not None:
        sql += (
            " AND (SELECT true FROM pointer_history AS p WHERE p.component = %s "
            "AND p.revision = seen.revision AND p.stage = ANY(%s) LIMIT 1)"
        )
        args += [ref, list(stages)]
    return Query(sql, tuple(args), lambda rows: frozenset(r["revision"] for r in rows))


_LIVE_REVISIONS = (
    "WITH RECURSIVE seen AS (SELECT (SELECT revision FROM pointer_history "
    "WHERE component = %s AND revision IS NOT NULL ORDER BY revision LIMIT 1) AS revision "
    "UNION ALL SELECT (SELECT p.revision FROM pointer_history AS p WHERE p.component = %s "
    "AND p.revision > seen.revision ORDER BY p.revision LIMIT 1) "
    "FROM seen WHERE seen.revision IS NOT NULL) "
    "SELECT revision FROM seen WHERE revision IS NOT NULL"
)


def revisions_starting(ref: str, prefix: str, limit: int) -> Query:
    """``RevisionLineage``: a whole id by the key; a shorter prefix among the component's
    revisions (a range of ids would depend on the database's collation)."""
    sql = f"SELECT {_REVISION} FROM revisions WHERE component = %s AND "
    if len(prefix) == 64 and limit > 0:  # one row at most, by the key (an ORDER BY and
        # LIMIT made the planner walk revisions_by_component, every revision)
        return Query(sql + "revision = %s", (ref, prefix), _each(lambda r: RevisionRecord(**r)))
    sql += "starts_with(revision, %s) ORDER BY revision LIMIT %s"
    return Query(sql, (ref, prefix, max(limit, 0)), _each(lambda r: RevisionRecord(**r)))


def lineage(ref: str, revision: str, stages: Sequence[str] | None = None) -> Query:
    """``RevisionLineage``: a recursive walk up the parents, one search of the key and
    one of ``pointer_history_by_revision`` per step (a scalar subquery, as in
    :func:`live_revisions`), each step's stagers through ``events_by_revision_action``
    (schema version 8); :func:`lockgate.plugin.ordered_lineage` puts the steps in order.
    The revisions are read in ``LATERAL`` subqueries with ``LIMIT 1``, which the planner
    keeps as a search per step: a plain join became a hash join over every revision of
    the component (it cannot know how few steps a walk takes). The stagers are ordered
    inside ``array_agg``: an ``ORDER BY seq`` of the subquery made the planner take
    ``events_by_component_action`` for its order, every staging of the component."""
    live = "" if stages is None else " AND p.stage = ANY(%s)"
    sql = (
        "WITH RECURSIVE walk (revision) AS (SELECT %s::text UNION SELECT up.parent "
        "FROM walk, LATERAL (SELECT r.parent FROM revisions AS r WHERE r.component = %s "
        "AND r.revision = walk.revision LIMIT 1) AS up WHERE up.parent IS NOT NULL "
        "AND (SELECT true FROM pointer_history AS p WHERE p.component = %s "
        f"AND p.revision = up.parent{live} LIMIT 1) IS NULL) "
        "SELECT walk.revision AS step, r.created_at, r.actor, r.stage, r.files, r.size, "
        "r.parent, r.created_at IS NOT NULL AS known, coalesce((SELECT array_agg(e.actor "
        "ORDER BY e.seq) FROM events AS e WHERE e.component = %s AND e.revision = "
        "walk.revision AND e.action = 'stage'), '{}') AS stagers "
        "FROM walk LEFT JOIN LATERAL (SELECT * FROM revisions "
        "AS x WHERE x.component = %s AND x.revision = walk.revision LIMIT 1) AS r ON true"
    )
    args: list[object] = [revision, ref, ref]
    if stages is not None:
        args.append(list(stages))
    args += [ref, ref]

    def answer(rows: list[Row]) -> list[LineageStep]:
        reached = {
            row["step"]: (_lineage_record(ref, row) if row["known"] else None, row["stagers"])
            for row in rows
        }
        return ordered_lineage(revision, reached)

    return Query(sql, tuple(args), answer)


def _lineage_record(ref: str, row: Row) -> RevisionRecord:
    fields = ("created_at", "actor", "stage", "files", "size", "parent")
    return RevisionRecord(ref, row["step"], *(row[f] for f in fields))


def live_at(stage: str, at: str, component_id: str | None = None) -> Query:
    sql = (
        f"SELECT {_CHANGE} FROM pointer_history WHERE stage = %s AND at <= %s "
        "AND (valid_until IS NULL OR valid_until > %s) AND revision IS NOT NULL"
    )
    args: tuple[object, ...] = (stage, at, at)
    if component_id is not None:
        sql, args = sql + " AND component_id = %s", (*args, component_id)
    return Query(sql + " ORDER BY component_id", args, _each(lambda r: PointerChange(**r)))


def approvals(ref: str, revision: str | None = None) -> Query:
    sql = f"SELECT {_APPROVAL} FROM approvals WHERE component = %s"
    args: tuple[object, ...] = (ref,)
    if revision is not None:
        sql, args = sql + " AND revision = %s", (ref, revision)
    return Query(sql + " ORDER BY id", args, _each(lambda r: Approval(**r)))


def intents(where: str) -> Query:
    sql = f"SELECT id, operation, owner, created_at, payload, state FROM intents {where}"
    return Query(sql, (), _each(_intent))


def open_intents() -> Query:
    return intents("WHERE state = 'open' ORDER BY created_at")


def validation_results(revision: str) -> Query:
    sql = "SELECT key, value FROM validation_results WHERE revision = %s"
    return Query(sql, (revision,), lambda rows: {r["key"]: r["value"] for r in rows})


def events(where: EventFilter | None = None) -> Query:
    sql, args = (where or EventFilter()).sql(f"SELECT {EVENT} FROM events", "%s")
    return Query(sql, tuple(args), _each(event))


QUERIES: dict[str, Callable[..., Query]] = {
    "approvals": approvals,
    "component": component,
    "components": components,
    "components_by_id": components_by_id,
    "events": events,
    "live_at": live_at,
    "lineage": lineage,
    "live_revisions": live_revisions,
    "open_intents": open_intents,
    "pointer": pointer,
    "pointer_history": pointer_history,
    "pointers": pointers,
    "revisions": revisions,
    "revisions_starting": revisions_starting,
    "validation_results": validation_results,
}
"""Each read a batch may ask for (``lockgate.plugin.BATCHABLE``), by name."""


def batch(asks: Sequence[Ask]) -> tuple[str, list[object], list[Query]]:
    """One statement reading every ask (a column each, ``a0``, ``a1``, …), and the chain's
    head (``head``: its seq, hash and time, what a move is chained after), its arguments
    and the queries whose ``answer`` turns each column's rows into its answer."""
    queries = [QUERIES[ask.name](*ask.args) for ask in asks]
    columns = "".join(
        f", (SELECT coalesce(json_agg(t), '[]'::json) FROM ({q.sql}) AS t) AS a{i}"
        for i, q in enumerate(queries)
    )
    return f"SELECT {_HEAD}{columns}", [arg for q in queries for arg in q.args], queries


_HEAD = "(SELECT row_to_json(h) FROM (SELECT seq, hash, at FROM heads) AS h) AS head"
