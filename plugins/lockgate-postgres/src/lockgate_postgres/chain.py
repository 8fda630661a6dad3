"""The ``postgres`` state store's audit chain inside a write transaction: the head it
locked, the events chained after it and the statement that writes them.

An event's hash covers the previous one's (``event_hash``), so the events of a write are
chained here, in Python, from the head the transaction locked, and written with their
counts and the moved head in one statement, with whatever else the write adds to it
(a pointer move's swap, history and status, :mod:`lockgate_postgres.moves`): a statement
costs both sides more than the work it carries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs
import psycopg

from lockgate.plugin import AuditEvent, event_hash, not_before
from lockgate_postgres.db import Row

__all__ = ["Head"]

Conn = psycopg.Connection[Row]


class Head:
    """The project's chain head inside one write transaction (locked by it)."""

    def __init__(self, conn: Conn, seq: int, digest: str, at: str | None) -> None:
        self.conn, self.seq, self.hash, self.at = conn, seq, digest, at

    def after(self, at: str) -> str:
        """``at``, or the last event's time when that is later (records are timed like
        their events, so the records and the log agree; see ``not_before``)."""
        return not_before(at, self.at)

    def append(self, event: AuditEvent) -> int:
        """Chain ``event`` after the head; move the head and the counts (one statement)."""
        self.write([self.chain(event)])
        return self.seq

    def chain(self, event: AuditEvent) -> dict[str, object]:
        """Chain ``event`` after the head, here only: its row for :meth:`write`."""
        seq = self.seq + 1
        event = attrs.evolve(event, seq=seq, at=self.after(event.at))
        digest = event_hash(self.hash, event)
        row = attrs.asdict(event)
        row.update(
            details=json.dumps(event.details, sort_keys=True, default=str),
            prev_hash=self.hash,
            hash=digest,
        )
        self.seq, self.hash, self.at = seq, digest, event.at
        return row

    def write(
        self,
        rows: Sequence[dict[str, object]],
        also: Sequence[tuple[str, str, tuple[object, ...]]] = (),
        only_if: str | None = None,
    ) -> psycopg.Cursor[Row]:
        """The chained ``rows``, their counts and the head moved to the last, in one
        statement; ``also``: more ``WITH`` queries (name, query, arguments) sent in it (a
        move's swap, history and status); ``only_if``: a condition on them without which
        the events and the head are not written (the statement's cursor then yields no
        row; it yields one when they were)."""
        queries = [f"{name} AS ({query}), " for name, query, _ in also]
        args = [arg for _, _, values in also for arg in values]
        condition = f" WHERE {only_if}" if only_if else ""
        return self.conn.execute(
            "WITH " + "".join(queries) + _WRITE.format(only_if=condition),
            [*args, json.dumps(rows), self.seq, self.hash, self.at],
        )


# A statement costs both sides more than its work here, so a transaction's writes go in
# as few as can be: the events, their counts, the head, and a move's history and status
# with them (``Head.write``). The events go as one JSON argument, whatever their number:
# one statement text, which the server prepares once, and few arguments (psycopg parses
# a statement of more than 50 anew each time). A pointer's history closes the open row
# and adds the move's in that one statement: the update does not see the insert's row
# (every part of a statement sees the rows as they were when it began).
_COLUMNS = (
    "seq, at, actor, action, component, stage, revision, previous_revision, reason, "
    "details, prev_hash, hash, outcome"
)
_WRITE = (
    "chained AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS e (seq BIGINT, at TEXT, "
    "actor TEXT, action TEXT, component TEXT, stage TEXT, revision TEXT, "
    "previous_revision TEXT, reason TEXT, details TEXT, prev_hash TEXT, hash TEXT, "
    "outcome TEXT){only_if}), counted AS (INSERT INTO event_counts (action, outcome, n) SELECT "
    "action, outcome, count(*) FROM chained GROUP BY action, outcome ON CONFLICT (project, "
    "action, outcome) DO UPDATE SET n = event_counts.n + excluded.n), added AS (INSERT "
    f"INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM chained) "
    "UPDATE heads SET seq = %s, hash = %s, at = %s{only_if} RETURNING 1 AS written"
)
