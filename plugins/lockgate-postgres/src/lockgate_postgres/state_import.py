"""``StateImport`` for the ``postgres`` state store: a whole history written at once, as
``lockgate state migrate --to postgres`` copies it from another store.

Every record goes in as it was (times, generations, event sequence numbers and hashes),
in one transaction that holds the project's chain head, so the copy is all or nothing and
its audit chain verifies as the original's did. A project that already holds a component
or an event is refused: a migration never merges two histories.
"""

from __future__ import annotations

import json
from collections import Counter

import attrs
import psycopg

from lockgate.plugin import ConflictError, StateSnapshot
from lockgate_postgres.db import Database, Row

__all__ = ["import_snapshot"]


def import_snapshot(db: Database, snapshot: StateSnapshot) -> None:
    """Write ``snapshot`` into ``db``'s project, which must be empty."""
    with db.transaction() as conn:
        head = conn.execute("SELECT seq FROM heads FOR UPDATE").fetchone()
        taken = conn.execute("SELECT count(*) AS n FROM components").fetchone()
        if (head and head["seq"]) or (taken and taken["n"]):
            raise ConflictError(
                f"project {db.project!r} in {db.where} already holds a history; migrate into "
                "an empty project (another plugins.postgres.project), or empty this one"
            )
        cur = conn.cursor()
        cur.executemany(
            "INSERT INTO components (component, workspace, component_id, component_type, "
            "status, latest_revision, updated_at) VALUES (%(component)s, %(workspace)s, "
            "%(component_id)s, %(component_type)s, %(status)s, %(latest_revision)s, "
            "%(updated_at)s)",
            [{**attrs.asdict(c), "status": c.status.value} for c in snapshot.components],
        )
        cur.executemany(
            "INSERT INTO revisions (component, revision, created_at, actor, stage, files, "
            "size, parent) VALUES (%(component)s, %(revision)s, %(created_at)s, %(actor)s, "
            "%(stage)s, %(files)s, %(size)s, %(parent)s)",
            [attrs.asdict(r) for rs in snapshot.revisions.values() for r in rs],
        )
        cur.executemany(
            "INSERT INTO pointers (stage, component_id, component, revision, generation, "
            "updated_at, actor) VALUES (%(stage)s, %(component_id)s, %(component)s, "
            "%(revision)s, %(generation)s, %(updated_at)s, %(actor)s)",
            [attrs.asdict(p) for p in snapshot.pointers],
        )
        cur.executemany(
            "INSERT INTO pointer_history (stage, component_id, component, revision, "
            "previous_revision, generation, at, actor, action, reason, valid_until, event_seq) "
            "VALUES (%(stage)s, %(component_id)s, %(component)s, %(revision)s, "
            "%(previous_revision)s, %(generation)s, %(at)s, %(actor)s, %(action)s, %(reason)s, "
            "%(valid_until)s, %(event_seq)s)",
            [attrs.asdict(h) for h in snapshot.history],  # oldest first: seq keeps the order
        )
        cur.executemany(
            "INSERT INTO approvals (component, revision, actor, decision, at, stage, comment) "
            "VALUES (%(component)s, %(revision)s, %(actor)s, %(decision)s, %(at)s, %(stage)s, "
            "%(comment)s)",
            [attrs.asdict(a) for approvals in snapshot.approvals.values() for a in approvals],
        )
        cur.executemany(
            "INSERT INTO intents (id, operation, owner, created_at, payload, state) VALUES "
            "(%s, %s, %s, %s, %s, %s)",
            [i.row() for i in snapshot.intents],
        )
        _import_chain(conn, snapshot)


def _import_chain(conn: psycopg.Connection[Row], snapshot: StateSnapshot) -> None:
    """The events as stored (hashes included), their counts, and the head after them."""
    events = [
        {
            **attrs.asdict(item.event),
            "details": json.dumps(item.event.details, sort_keys=True, default=str),
            "prev_hash": item.prev_hash,
            "hash": item.hash,
        }
        for item in snapshot.chain
    ]
    cur = conn.cursor()
    cur.executemany(
        "INSERT INTO events (seq, at, actor, action, component, stage, revision, "
        "previous_revision, reason, details, prev_hash, hash, outcome) VALUES (%(seq)s, "
        "%(at)s, %(actor)s, %(action)s, %(component)s, %(stage)s, %(revision)s, "
        "%(previous_revision)s, %(reason)s, %(details)s, %(prev_hash)s, %(hash)s, "
        "%(outcome)s)",
        events,
    )
    counts = Counter((e.event.action, e.event.outcome) for e in snapshot.chain)
    cur.executemany(
        "INSERT INTO event_counts (action, outcome, n) VALUES (%s, %s, %s)",
        [(action, outcome, n) for (action, outcome), n in sorted(counts.items())],
    )
    if snapshot.chain:
        last = snapshot.chain[-1]
        cur.execute(
            "UPDATE heads SET seq = %s, hash = %s, at = %s",
            (last.event.seq, last.hash, last.event.at),
        )
