"""A stage pointer's move on PostgreSQL, in one statement with everything it writes.

The compare-and-swap on the pointer's row (``UPDATE … WHERE generation = expected``, or
an insert that must not conflict for a first move) is the statement's first
data-modifying ``WITH`` query, ``swapped``, and every other part of the statement (the
pointer's history closed and opened, the component's status, the events, their counts,
the chain's head) writes only when ``swapped`` has its row: a move that lost the race
writes nothing at all, and the statement's result says so. So a move is sent with its
transaction's ``COMMIT`` in one round trip (after the one that locked the chain head),
and a conflict is told after a commit that committed nothing. The history's
``previous_revision`` is what the swapped row held, read by the swap itself.

When the store believes it knows the chain's head (``known``: the head its last batch of
reads or its last write saw), the events are chained after it and the move is one
statement of its own, a transaction by itself: its first part locks the head and checks
it is still that one (seq and hash) and that the thread's other lock connections still
hold their locks (``fresh``; the one it runs on holds its own while it runs), and the
swap is made only then. A head another writer moved meanwhile makes the statement write
nothing (the caller then locks the head and reads it, as without one): one round trip
for a move instead of two, where nobody else wrote. A head another writer holds locked
is skipped, not waited for (``SKIP LOCKED``): that writer most often moves it on, and the
move would only wait to find it stale (when it does not, the skip costs a round trip).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

import psycopg

from lockgate.plugin import ComponentStatus, PointerChange
from lockgate_postgres.chain import Head
from lockgate_postgres.db import Row
from lockgate_postgres.locks import DURABLE, HELD_BY

__all__ = ["Mark", "move"]

_SWAPPED = "EXISTS (SELECT FROM swapped)"
_FIRST = (
    "INSERT INTO pointers (component, revision, generation, updated_at, actor, stage, "
    "component_id) SELECT %s, %s, %s, %s, %s, %s, %s{fresh} ON CONFLICT DO NOTHING "
    "RETURNING NULL::text AS previous"
)
_OLD = (
    "SELECT revision FROM pointers WHERE stage = %s AND component_id = %s AND generation = %s"
    "{fresh} FOR UPDATE"
)
_SWAP = (
    "UPDATE pointers SET component = %s, revision = %s, generation = %s, updated_at = %s, "
    "actor = %s FROM old WHERE stage = %s AND component_id = %s AND generation = %s "
    "RETURNING old.revision AS previous"
)
_CLOSE_HISTORY = (  # the open row is the pointer's last: found by the index, not a scan
    "UPDATE pointer_history SET valid_until = %s WHERE seq = (SELECT max(seq) FROM "
    "pointer_history WHERE stage = %s AND component_id = %s) AND valid_until IS NULL "
    f"AND {_SWAPPED}"
)
_OPEN_HISTORY = (
    "INSERT INTO pointer_history (stage, component_id, component, revision, "
    "previous_revision, generation, at, actor, action, reason, event_seq) SELECT %s, %s, "
    "%s, %s, previous, %s, %s, %s, %s, %s, %s FROM swapped"
)
_MARK = f"UPDATE components SET status = %s, updated_at = %s WHERE component = %s AND {_SWAPPED}"
_MARK_IF = " AND status = ANY(%s)"


class Mark(NamedTuple):
    """The status a move sets, and those it may be set from (``MoveWithEvents``'s
    ``status_from``; None: whatever it is)."""

    status: ComponentStatus
    status_from: Collection[ComponentStatus] | None = None


def move(
    head: Head,
    rows: list[dict[str, object]],
    change: PointerChange,
    expected: int,
    mark: Mark | None,
    known: tuple[int, str, list[int]] | None = None,
    flush: str | None = None,
) -> psycopg.Cursor[Row]:
    """Send the move of ``change`` from generation ``expected`` (0: the pointer must not
    exist yet) with the chained ``rows`` (its events, the move's own last: its seq goes
    into the history) as one statement in ``head``'s transaction, setting the status of
    ``mark`` (when it is one of ``mark.status_from``, if given); its cursor yields a row
    when the move was made, none when the pointer was not at ``expected``. ``known``:
    the head's seq and hash ``rows`` were chained after, unlocked, and the server pids of
    this thread's lock connections: the move is made only if the head is still that one
    and every one of them still holds its locks (else nothing is written). ``flush``:
    the ``synchronous_commit`` its transaction commits with, on a connection whose
    session commits without waiting for the WAL flush (a lock connection's, whose own
    locks need no such check: its pid is not in ``known``)."""
    where: tuple[Any, ...] = (change.stage, change.component_id)
    moved = (change.component, change.revision, expected + 1, change.at, change.actor)
    queries: list[tuple[str, str, tuple[object, ...]]] = []
    fresh = ""
    if known is not None:
        seq, digest, pids = known
        held = (f" AND ({HELD_BY}) >= %s", (pids, len(set(pids)))) if pids else ("", ())
        fresh_sql = (
            f"SELECT 1 FROM heads{DURABLE if flush else ''} WHERE seq = %s AND hash = %s"
            f"{held[0]} FOR UPDATE OF heads SKIP LOCKED"
        )
        mode = (flush,) if flush else ()
        queries.append(("fresh", fresh_sql, (*mode, seq, digest, *held[1])))
        fresh = (
            " WHERE EXISTS (SELECT FROM fresh)"
            if expected == 0
            else " AND EXISTS (SELECT FROM fresh)"
        )
    if expected == 0:
        queries.append(("swapped", _FIRST.format(fresh=fresh), (*moved, *where)))
    else:
        queries += [
            ("old", _OLD.format(fresh=fresh), (*where, expected)),
            ("swapped", _SWAP, (*moved, *where, expected)),
        ]
    opened = (
        *where,
        change.component,
        change.revision,
        expected + 1,
        change.at,
        change.actor,
        change.action,
        change.reason,
        head.seq,  # the move's own event
    )
    queries += [
        ("closed", _CLOSE_HISTORY, (change.at, *where)),
        ("opened", _OPEN_HISTORY, opened),
    ]
    if mark is not None:
        marked = (mark.status.value, change.at, change.component)
        if mark.status_from is None:
            queries.append(("marked", _MARK, marked))
        else:
            sources = sorted(s.value for s in mark.status_from)
            queries.append(("marked", _MARK + _MARK_IF, (*marked, sources)))
    return head.write(rows, queries, only_if=_SWAPPED)
