"""The ``sqlite`` store's bounded reads: what every gate asks, answered through indexes
without reading what grows with the project or the component's history.

* ``components_by_id`` (``ComponentsById``): ``components (component_id, component)``;
* ``live_revisions`` (``LiveRevisions``): a skip scan of ``pointer_history (component,
  revision, stage)`` (:func:`~lockgate.builtin_plugins.sqlite_schema.live_revisions`);
* ``revisions_starting`` and ``lineage`` (``RevisionLineage``): a revision by its id or a
  prefix of it, a range of the key ``revisions (component, revision)``; a revision's
  ancestors back to the last one live, a recursive query that takes one step per
  parent, with who staged each from ``events (component, revision, action)``.

Mixed into :class:`~lockgate.builtin_plugins.sqlite_state.SqliteStateStore`; the indexes
are migrations 7 and 8 (:mod:`lockgate.builtin_plugins.sqlite_schema`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from lockgate.builtin_plugins.sqlite_schema import component_of, live_revisions
from lockgate.plugin import ComponentRecord, LineageStep, RevisionRecord, ordered_lineage

__all__ = ["SqliteReads"]

_REVISION = "component, revision, created_at, actor, stage, files, size, parent"
_PAST_EVERY_PREFIX = "\U0010ffff"  # sorts after every character a revision id holds


class SqliteReads:
    """``ComponentsById``, ``LiveRevisions`` and ``RevisionLineage`` over ``self._db``."""

    _db: sqlite3.Connection

    def components_by_id(self, component_ids: tuple[str, ...]) -> list[ComponentRecord]:
        """``ComponentsById``: through the index by component id (migration 8)."""
        rows = self._db.execute(
            "SELECT * FROM components WHERE component_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY component",
            (json.dumps(list(component_ids)),),
        )
        return [component_of(r) for r in rows]

    def live_revisions(self, component: str, stages: Sequence[str] | None = None) -> frozenset[str]:
        """``LiveRevisions``: one query (:func:`.sqlite_schema.live_revisions`)."""
        return live_revisions(self._db, component, stages)

    def revisions_starting(self, component: str, prefix: str, limit: int) -> list[RevisionRecord]:
        """``RevisionLineage``: the ids from ``prefix`` up to the first past every id
        starting with it (ids are ASCII, compared byte by byte), a range of the key."""
        rows = self._db.execute(
            f"SELECT {_REVISION} FROM revisions WHERE component = ? AND revision >= ? "
            "AND revision < ? ORDER BY revision LIMIT ?",
            (component, prefix, prefix + _PAST_EVERY_PREFIX, max(limit, 0)),
        )
        return [RevisionRecord(**dict(r)) for r in rows]

    def lineage(
        self, component: str, revision: str, stages: Sequence[str] | None = None
    ) -> list[LineageStep]:
        """``RevisionLineage``: the ancestors a recursive query reaches, one index search
        of the revisions and one of the pointer history per step, then who staged each,
        put in order by following the parents from ``revision``."""
        live = ""
        args: list[object] = [revision, component]
        if stages is not None:
            marks = ", ".join("?" for _ in stages)
            live = f" AND p.stage IN ({marks})"
            args += stages
        walk = (
            "WITH RECURSIVE walk (revision) AS (SELECT ?1 UNION SELECT r.parent FROM walk "
            "JOIN revisions AS r ON r.component = ?2 AND r.revision = walk.revision "
            "WHERE r.parent IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pointer_history AS p "
            f"WHERE p.component = ?2 AND p.revision = r.parent{live})) "
        )
        reached: dict[str, tuple[RevisionRecord | None, list[str]]] = {}
        for row in self._db.execute(
            f"{walk}SELECT walk.revision, r.created_at, r.actor, r.stage, r.files, r.size, "
            "r.parent, r.revision IS NOT NULL FROM walk LEFT JOIN revisions AS r "
            "ON r.component = ?2 AND r.revision = walk.revision",
            args,
        ):
            step, *fields, known = tuple(row)
            reached[step] = (RevisionRecord(component, step, *fields) if known else None, [])
        for row in self._db.execute(
            # CROSS JOIN: the walk is the outer loop (SQLite keeps the order given), one
            # search of events (component, revision, action) per step, never every staging
            f"{walk}SELECT e.revision, e.actor FROM walk CROSS JOIN events AS e "
            "ON e.component = ?2 AND e.revision = walk.revision WHERE e.action = 'stage' "
            "ORDER BY e.seq",
            args,
        ):
            if row[0] in reached:  # a second walk reaches no more than the first
                reached[row[0]][1].append(row[1])
        return ordered_lineage(revision, reached)
