"""The ``postgres`` store's outbox: the ``EventDeliveries`` capability on its tables.

The events are the audit log (``events``); migration 4 adds ``deliveries`` (one row per
notifier and event: pending with its attempts and next attempt, delivered or dead) and
``delivery_cursors`` (per notifier, the seq up to which every event has a row or was not
for it), both per project under the same row-level security as every other table.
Mixed into :class:`~lockgate_postgres.state.PostgresStateStore`.

Delivery writes do not take the chain head: they record what happened to events, not a
change, and the one dispatcher at a time holds the store's ``events`` lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from lockgate.plugin import Delivery, equal_clauses, sql_where

if TYPE_CHECKING:
    from lockgate_postgres.db import Database, Row
    from lockgate_postgres.locks import AdvisoryLocks

__all__ = ["PostgresDeliveries"]

_COLUMNS = "notifier, seq, component, state, attempts, next_at, last_error, updated_at"


class PostgresDeliveries:
    """``EventDeliveries`` over ``self.db`` (the store's)."""

    db: Database
    _locks: AdvisoryLocks

    def _rows(self, query: str, args: Sequence[object] = ()) -> list[Row]:
        raise NotImplementedError  # provided by the store

    def delivery_cursor(self, notifier: str) -> int | None:
        rows = self._rows("SELECT seq FROM delivery_cursors WHERE notifier = %s", (notifier,))
        return int(rows[0]["seq"]) if rows else None

    def record_deliveries(
        self, notifier: str, deliveries: Sequence[Delivery], cursor: int | None = None
    ) -> None:
        self._locks.check_held()
        with self.db.transaction() as conn:
            if deliveries:
                conn.cursor().executemany(
                    f"INSERT INTO deliveries ({_COLUMNS}) VALUES (%(notifier)s, %(seq)s, "
                    "%(component)s, %(state)s, %(attempts)s, %(next_at)s, %(last_error)s, "
                    "%(updated_at)s) ON CONFLICT (project, notifier, seq) DO UPDATE SET "
                    "component = excluded.component, state = excluded.state, "
                    "attempts = excluded.attempts, next_at = excluded.next_at, "
                    "last_error = excluded.last_error, updated_at = excluded.updated_at",
                    [attrs.asdict(attrs.evolve(d, notifier=notifier)) for d in deliveries],
                )
            if cursor is not None:
                conn.execute(
                    "INSERT INTO delivery_cursors (notifier, seq) VALUES (%s, %s) "
                    "ON CONFLICT (project, notifier) DO UPDATE "
                    "SET seq = GREATEST(delivery_cursors.seq, excluded.seq)",
                    (notifier, cursor),
                )

    def deliveries(
        self,
        notifier: str | None = None,
        state: str | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[Delivery]:
        clauses, args = equal_clauses("%s", notifier=notifier, state=state)
        clauses.insert(0, "seq > %s")
        args.insert(0, after)
        sql = f"SELECT {_COLUMNS} FROM deliveries{sql_where(clauses)} ORDER BY seq, notifier"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Delivery(**r) for r in self._rows(sql, args)]

    def forget_deliveries(self, before: str) -> int:
        self._locks.check_held()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM deliveries WHERE state = 'delivered' AND updated_at < %s", (before,)
            )
            return int(cur.rowcount)
