"""The ``sqlite`` state store's schema: its tables, their migrations, rows read back.

The schema is versioned by ``PRAGMA user_version``: :data:`MIGRATIONS` holds one script
per version, forward only, and :func:`migrate` runs those a database has not had, in the
caller's transaction, stepping the version after each. A migration is never edited once
released (a database at its version would not get the change): a change is a new one.

A row read back becomes the record every state store returns (:func:`component_of`,
:func:`event_of`, and pointer changes built from :data:`CHANGE_COLUMNS` in field order),
so a row edited to hold a name no store may return is refused like user input.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from lockgate.plugin import AuditEvent, ComponentRecord, ComponentStatus, InputError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence
    from pathlib import Path

__all__ = [
    "CHANGE_COLUMNS",
    "CLOSE_HISTORY",
    "LIVE_REVISIONS",
    "MIGRATIONS",
    "component_of",
    "event_of",
    "live_revisions",
    "migrate",
    "schema_version",
    "unopenable",
]

MIGRATIONS: tuple[str, ...] = (
    # 1: components, revisions, audit events
    """
    CREATE TABLE components (
        component TEXT PRIMARY KEY,
        workspace TEXT NOT NULL,
        component_id TEXT NOT NULL,
        component_type TEXT NOT NULL,
        status TEXT NOT NULL,
        latest_revision TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX components_by_workspace ON components (workspace, component);
    CREATE TABLE revisions (
        component TEXT NOT NULL REFERENCES components (component),
        revision TEXT NOT NULL,
        created_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        stage TEXT NOT NULL,
        files INTEGER NOT NULL,
        size INTEGER NOT NULL,
        parent TEXT,
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        UNIQUE (component, revision)
    );
    CREATE INDEX revisions_by_component ON revisions (component, seq);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        component TEXT,
        stage TEXT,
        revision TEXT,
        previous_revision TEXT,
        reason TEXT,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX events_by_component ON events (component, seq);
    """,
    # 2: outcomes, pointers and their history, approvals, intents, report indexes
    """
    ALTER TABLE events ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok';
    CREATE INDEX events_by_stage ON events (stage, seq);
    CREATE INDEX events_by_actor ON events (actor, seq);
    CREATE INDEX events_by_action ON events (action, seq);
    CREATE INDEX events_by_at ON events (at);
    CREATE TABLE event_counts (
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (action, outcome)
    );
    INSERT INTO event_counts SELECT action, outcome, COUNT(*) FROM events GROUP BY 1, 2;
    CREATE INDEX components_by_status ON components (status);
    CREATE INDEX components_by_type ON components (component_type);
    CREATE TABLE pointers (
        stage TEXT NOT NULL,
        component_id TEXT NOT NULL,
        component TEXT NOT NULL,
        revision TEXT,
        generation INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (stage, component_id)
    );
    CREATE TABLE pointer_history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stage TEXT NOT NULL,
        component_id TEXT NOT NULL,
        component TEXT NOT NULL,
        revision TEXT,
        previous_revision TEXT,
        generation INTEGER NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT,
        valid_until TEXT,
        event_seq INTEGER
    );
    CREATE INDEX pointer_history_by_component ON pointer_history (stage, component_id, seq);
    CREATE INDEX pointer_history_by_time ON pointer_history (stage, at);
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        component TEXT NOT NULL,
        revision TEXT NOT NULL,
        actor TEXT NOT NULL,
        decision TEXT NOT NULL,
        at TEXT NOT NULL,
        stage TEXT,
        comment TEXT
    );
    CREATE INDEX approvals_by_revision ON approvals (component, revision, id);
    CREATE TABLE intents (
        id TEXT PRIMARY KEY,
        operation TEXT NOT NULL,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE INDEX intents_open ON intents (state);
    """,
    # 3: validators' verdicts per revision (the ValidationResults capability)
    """
    CREATE TABLE validation_results (
        revision TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (revision, key)
    ) WITHOUT ROWID;
    """,
    # 4: the server's bearer tokens, hashed (the AccessTokens capability)
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        stage TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT
    );
    """,
    # 5: the outbox's delivery state per notifier and event (the EventDeliveries capability)
    """
    CREATE TABLE deliveries (
        notifier TEXT NOT NULL,
        seq INTEGER NOT NULL,
        component TEXT,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_at TEXT NOT NULL,
        last_error TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (notifier, seq)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_by_state ON deliveries (state, notifier, seq);
    CREATE TABLE delivery_cursors (
        notifier TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    );
    """,
    # 6: one component's events of one action (who staged each revision, which a switch's
    # gates ask): without it the planner took events_by_action, every component's stagings
    """
    CREATE INDEX events_by_component_action ON events (component, action, seq);
    """,
    # 7: the revisions a component's pointers ever held, in order, one entry per stage
    # and move: live_revisions steps from one revision to the next instead of reading
    # every move of the component (a gate asks it on every promotion)
    """
    CREATE INDEX pointer_history_by_revision ON pointer_history (component, revision, stage);
    """,
    # 8: what a gate asks without reading what grows with the project or with how often
    # a component was staged: the components of one component id in every workspace
    # (ComponentsById: a validator's conflicts, a bare id's owners), and one component's
    # events about one revision (RevisionLineage: who staged the revisions it walks)
    """
    CREATE INDEX components_by_id ON components (component_id, component);
    CREATE INDEX events_by_revision_action ON events (component, revision, action);
    """,
)


def schema_version(db: sqlite3.Connection) -> int:
    """The migration number the database is at."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> None:
    """Run the migrations the database has not had, inside the caller's transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")


def component_of(row: sqlite3.Row) -> ComponentRecord:
    data = dict(row)
    data["status"] = ComponentStatus(data["status"])
    return ComponentRecord(**data)


#: The columns of ``pointer_history`` in the order of :class:`PointerChange`'s fields: a
#: row selected with them builds its record positionally (``PointerChange(*row)``), some
#: 40% cheaper than by keyword from a dict when ``live_at`` reads a whole stage.
CHANGE_COLUMNS = (
    "stage, component_id, component, revision, previous_revision, generation, at, actor, "
    "action, reason, valid_until, event_seq"
)


def event_of(row: sqlite3.Row) -> AuditEvent:
    data = dict(row)
    data["details"] = json.loads(data["details"])
    data.pop("prev_hash")
    data.pop("hash")
    return AuditEvent(**data)


CLOSE_HISTORY = (
    "UPDATE pointer_history SET valid_until = ? WHERE seq = (SELECT max(seq) FROM "
    "pointer_history WHERE stage = ? AND component_id = ?) AND valid_until IS NULL"
)
"""A move closes the pointer's open history row: its last, which the index
``(stage, component_id, seq)`` finds at once (the time of a move stays the same however
many moves came before it)."""


def live_revisions(
    db: sqlite3.Connection, component: str, stages: Sequence[str] | None
) -> frozenset[str]:
    """The distinct revisions the pointer history of ``component`` (its ref) ever named in
    ``stages`` (None: any stage): the ``LiveRevisions`` capability. It steps through the
    index ``pointer_history (component, revision, stage)`` from one revision to the next
    (:data:`LIVE_REVISIONS`), so its time grows with the revisions it returns, not with
    how many times they moved; with stages, one more search of that index per revision."""
    sql, args = LIVE_REVISIONS, [component]
    if stages is not None:
        marks = ", ".join(f"?{n}" for n in range(2, len(stages) + 2))
        sql += (
            " AND EXISTS (SELECT 1 FROM pointer_history AS p WHERE p.component = ?1 "
            f"AND p.revision = seen.revision AND p.stage IN ({marks}))"
        )
        args += stages
    return frozenset(row[0] for row in db.execute(sql, args))


LIVE_REVISIONS = (
    "WITH RECURSIVE seen (revision) AS ("
    "SELECT (SELECT revision FROM pointer_history WHERE component = ?1 "
    "AND revision IS NOT NULL ORDER BY revision LIMIT 1) "
    "UNION ALL SELECT (SELECT revision FROM pointer_history WHERE component = ?1 "
    "AND revision > seen.revision ORDER BY revision LIMIT 1) "
    "FROM seen WHERE seen.revision IS NOT NULL) "
    "SELECT revision FROM seen WHERE revision IS NOT NULL"
)
"""Every revision ``component`` (``?1``) was ever moved to, in any stage: the first in
order, then each the next after it (a skip scan), one index search each."""


def unopenable(path: Path, exc: sqlite3.DatabaseError) -> InputError:
    """Not a database (damaged, or another file), a directory in its place, no
    permission: a clear error instead of an internal one."""
    return InputError(
        f"{path}: cannot open the state database ({exc}); restore it from a backup, or "
        "fix what is in its place (plugins.sqlite.path names it)"
    )
