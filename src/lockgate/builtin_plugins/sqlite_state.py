"""Builtin plugin ``sqlite``: the embedded state store, ``.lockgate/state.db``.

WAL journal, writes in ``BEGIN IMMEDIATE`` transactions with a busy timeout, schema
versioned by ``PRAGMA user_version`` with forward-only migrations. Every state change and
its audit event are written in one transaction; audit events are hash-chained (each
stores the previous event's hash and the hash of its own canonical content).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from lockgate.core.contracts import AuditEvent, ComponentRecord, RevisionRecord
from lockgate.core.manifest import digest_bytes
from lockgate.core.models import ComponentStatus, RoleContext
from lockgate.errors import LockedError
from lockgate.hookspecs import hookimpl

__all__ = ["SqliteSettings", "SqliteStateStore", "event_hash"]

GENESIS = "0" * 64

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
)


@attrs.frozen
class SqliteSettings:
    """``plugins.sqlite:`` — the database file (inside ``.lockgate/``) and lock waits."""

    path: str = "state.db"
    busy_timeout: float = 10.0


@hookimpl
def register_settings() -> type:
    return SqliteSettings


@hookimpl
def register_state_stores(register: Any) -> None:
    register("sqlite", lambda ctx: SqliteStateStore.from_context(ctx))


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    """The chained hash of ``event``: digest of its canonical content and ``prev_hash``."""
    content = {
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "component": event.component,
        "stage": event.stage,
        "revision": event.revision,
        "previous_revision": event.previous_revision,
        "reason": event.reason,
        "details": event.details,
        "prev": prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return digest_bytes(canonical.encode())


class SqliteStateStore:
    """The state store on SQLite."""

    def __init__(self, path: Path, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    @classmethod
    def from_context(cls, ctx: RoleContext) -> SqliteStateStore:
        settings = ctx.settings or SqliteSettings()
        return cls(ctx.state_dir / settings.path, busy_timeout=settings.busy_timeout)

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LockedError(
                f"{self.path}: the state database stayed locked for {self.busy_timeout:g}s "
                "by another lockgate process; retry, or raise plugins.sqlite.busy_timeout"
            ) from exc
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        with self._write(durable=True) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ reads

    def component(self, ref: str) -> ComponentRecord | None:
        row = self._db.execute("SELECT * FROM components WHERE component = ?", (ref,)).fetchone()
        return _component(row) if row else None

    def components(self, workspace: str | None = None) -> list[ComponentRecord]:
        if workspace is None:
            rows = self._db.execute("SELECT * FROM components ORDER BY component")
        else:
            rows = self._db.execute(
                "SELECT * FROM components WHERE workspace = ? ORDER BY component", (workspace,)
            )
        return [_component(r) for r in rows]

    def revisions(self, ref: str) -> list[RevisionRecord]:
        rows = self._db.execute(
            "SELECT component, revision, created_at, actor, stage, files, size, parent "
            "FROM revisions WHERE component = ? ORDER BY seq",
            (ref,),
        )
        return [RevisionRecord(**dict(r)) for r in rows]

    def events(self, component: str | None = None) -> list[AuditEvent]:
        if component is None:
            rows = self._db.execute("SELECT * FROM events ORDER BY seq")
        else:
            rows = self._db.execute(
                "SELECT * FROM events WHERE component = ? ORDER BY seq", (component,)
            )
        return [_event(r) for r in rows]

    # ------------------------------------------------------------------ writes

    def record_revision(
        self, revision: RevisionRecord, component: ComponentRecord, event: AuditEvent
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO components VALUES (:component, :workspace, :component_id, "
                ":component_type, :status, :latest_revision, :updated_at) "
                "ON CONFLICT (component) DO UPDATE SET component_type = excluded.component_type, "
                "status = excluded.status, latest_revision = excluded.latest_revision, "
                "updated_at = excluded.updated_at",
                {**attrs.asdict(component), "status": component.status.value},
            )
            db.execute(
                "INSERT OR IGNORE INTO revisions (component, revision, created_at, actor, stage, "
                "files, size, parent) VALUES (:component, :revision, :created_at, :actor, :stage, "
                ":files, :size, :parent)",
                attrs.asdict(revision),
            )
            self._append(db, event)

    @staticmethod
    def _append(db: sqlite3.Connection, event: AuditEvent) -> int:
        last = db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq = (last["seq"] + 1) if last else 1
        prev = last["hash"] if last else GENESIS
        event = attrs.evolve(event, seq=seq)
        db.execute(
            "INSERT INTO events VALUES (:seq, :at, :actor, :action, :component, :stage, "
            ":revision, :previous_revision, :reason, :details, :prev_hash, :hash)",
            {
                **attrs.asdict(event),
                "details": json.dumps(event.details, sort_keys=True, default=str),
                "prev_hash": prev,
                "hash": event_hash(prev, event),
            },
        )
        return seq


def _component(row: sqlite3.Row) -> ComponentRecord:
    data = dict(row)
    data["status"] = ComponentStatus(data["status"])
    return ComponentRecord(**data)


def _event(row: sqlite3.Row) -> AuditEvent:
    data = dict(row)
    data["details"] = json.loads(data["details"])
    data.pop("prev_hash")
    data.pop("hash")
    return AuditEvent(**data)
