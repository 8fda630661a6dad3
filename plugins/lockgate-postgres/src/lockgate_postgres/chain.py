"""The ``postgres`` state store's audit chain inside a write transaction: the head it
locked, the events chained after it and the statement that writes them.

An event's hash covers the previous one's (``event_hash``), so the events of a write are
chained here, in Python, from the head the transaction locked, and written with their
counts and the moved head in one statement, with whatever else the write adds to it
(a pointer move's history and status): a statement costs both sides more than the work
it carries.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Sequence

import attrs
import psycopg

from lockgate.plugin import AuditEvent, event_hash, not_before
from lockgate_postgres.db import Row

__all__ = ["CLOSE_HISTORY", "MARK", "OPEN_HISTORY", "Head"]

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

    def chain(self, event: AuditEvent) -> list[object]:
        """Chain ``event`` after the head, here only: its row for :meth:`write`."""
        seq = self.seq + 1
        event = attrs.evolve(event, seq=seq, at=self.after(event.at))
        digest = event_hash(self.hash, event)
        details = json.dumps(event.details, sort_keys=True, default=str)
        row = [seq, event.at, event.actor, event.action, event.component, event.stage]
        row += [event.revision, event.previous_revision, event.reason, details, self.hash]
        row += [digest, event.outcome]
        self.seq, self.hash, self.at = seq, digest, event.at
        return row

    def write(
        self, rows: Sequence[list[object]], also: Sequence[tuple[str, tuple[object, ...]]] = ()
    ) -> None:
        """The chained ``rows``, their counts and the head moved to the last, in one
        statement; ``also``: more data-modifying ``WITH`` queries (and their arguments)
        sent in it (a move's history and status)."""
        counts = collections.Counter((row[3], row[12]) for row in rows)
        queries = [f"q{n} AS ({query})" for n, (query, _) in enumerate(also)]
        args: list[object] = [arg for _, values in also for arg in values]
        queries.append(
            "counted AS (INSERT INTO event_counts (action, outcome, n) VALUES "
            + ", ".join(["(%s, %s, %s)"] * len(counts))
            + " ON CONFLICT (project, action, outcome) DO UPDATE SET n = event_counts.n + "
            "excluded.n)"
        )
        args += [value for (action, outcome), n in counts.items() for value in (action, outcome, n)]
        queries.append(f"added AS ({EVENTS_INSERT} " + ", ".join([EVENT_ROW] * len(rows)) + ")")
        args += [value for row in rows for value in row]
        self.conn.execute(
            "WITH " + ", ".join(queries) + " UPDATE heads SET seq = %s, hash = %s, at = %s",
            [*args, self.seq, self.hash, self.at],
        )


# A statement costs both sides more than its work here, so a transaction's writes go in
# as few as can be: the events, their counts, the head, and a move's history and status
# with them (``Head.write``). A pointer's history closes the open row and adds the
# move's in that one statement: the update does not see the insert's row (every part of
# a statement sees the rows as they were when it began).
EVENTS_INSERT = (
    "INSERT INTO events (seq, at, actor, action, component, stage, revision, "
    "previous_revision, reason, details, prev_hash, hash, outcome) VALUES"
)
EVENT_ROW = "(" + ", ".join(["%s"] * 13) + ")"
CLOSE_HISTORY = (
    "UPDATE pointer_history SET valid_until = %s WHERE stage = %s AND component_id = %s "
    "AND valid_until IS NULL"
)
OPEN_HISTORY = (
    "INSERT INTO pointer_history (stage, component_id, component, revision, "
    "previous_revision, generation, at, actor, action, reason, event_seq) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
MARK = "UPDATE components SET status = %s, updated_at = %s WHERE component = %s"
