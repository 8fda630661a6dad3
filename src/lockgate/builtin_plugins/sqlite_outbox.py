"""The ``sqlite`` store's outbox: the ``EventDeliveries`` capability on its tables.

The events are the audit log (``events``); migration 5 adds ``deliveries`` (one row per
notifier and event: pending with its attempts and next attempt, delivered or dead) and
``delivery_cursors`` (per notifier, the seq up to which every event has a row or was not
for it). Mixed into :class:`~lockgate.builtin_plugins.sqlite_state.SqliteStateStore`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from lockgate.plugin import Delivery, equal_clauses, sql_where

__all__ = ["SqliteDeliveries"]


class SqliteDeliveries:
    """``EventDeliveries`` over ``self._db`` and ``self._write`` (the store's)."""

    _db: sqlite3.Connection

    def _write(self, *, durable: bool = False) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError  # provided by the store

    def delivery_cursor(self, notifier: str) -> int | None:
        row = self._db.execute(
            "SELECT seq FROM delivery_cursors WHERE notifier = ?", (notifier,)
        ).fetchone()
        return int(row[0]) if row else None

    def record_deliveries(
        self, notifier: str, deliveries: Sequence[Delivery], cursor: int | None = None
    ) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO deliveries (notifier, seq, component, state, attempts, "
                "next_at, last_error, updated_at) VALUES (:notifier, :seq, :component, :state, "
                ":attempts, :next_at, :last_error, :updated_at)",
                [attrs.asdict(attrs.evolve(d, notifier=notifier)) for d in deliveries],
            )
            if cursor is not None:
                db.execute(
                    "INSERT INTO delivery_cursors VALUES (?, ?) ON CONFLICT (notifier) "
                    "DO UPDATE SET seq = MAX(seq, excluded.seq)",
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
        clauses, args_ = equal_clauses("?", notifier=notifier, state=state)
        clauses.insert(0, "seq > ?")
        args_.insert(0, after)
        sql = (
            "SELECT notifier, seq, component, state, attempts, next_at, last_error, updated_at "
            f"FROM deliveries{sql_where(clauses)} ORDER BY seq, notifier"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return list(_rows(self._db.execute(sql, args_)))

    def forget_deliveries(self, before: str) -> int:
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM deliveries WHERE state = 'delivered' AND updated_at < ?", (before,)
            )
            return int(cur.rowcount)


def _rows(rows: Iterator[sqlite3.Row]) -> Iterator[Delivery]:
    for r in rows:
        yield Delivery(*r)
