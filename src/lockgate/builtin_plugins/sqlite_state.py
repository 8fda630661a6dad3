"""Builtin plugin ``sqlite``: the embedded state store, ``.lockgate/state.db``.

WAL journal; every write in a ``BEGIN IMMEDIATE`` transaction with a busy timeout, so two
writers queue instead of failing; ``synchronous=FULL`` for transactions that move a stage
pointer or open an intent (``NORMAL`` otherwise, which in WAL mode is still atomic and
consistent: an intent's close is one). The schema is versioned by ``PRAGMA user_version``
with forward-only migrations (:mod:`lockgate.builtin_plugins.sqlite_schema`).

Indexes that keep the reports fast at scale (100,000 components, 1,000,000 events):
``components (status)``, ``(component_type)``, ``(workspace, component)``; events by
``(component, seq)``, ``(component, action, seq)`` (who staged a component's revisions,
which every switch's gates ask), ``(stage, seq)``, ``(actor, seq)``, ``(action, seq)``,
``(at)``, ``(component, revision, action)`` (who staged the revisions a lineage walks);
``pointer_history (stage, component_id, seq)`` and ``(stage, at)``; those of the
bounded reads every gate asks (``sqlite_reads``); and the ``event_counts`` table, kept
in the same transaction as every append, so statistics never scan the log.

The store's locks (``StateStore.lock``) are ``flock``-ed files in ``.lockgate/``
(:mod:`lockgate.builtin_plugins.file_locks`), released by the kernel when their holder
dies: they coordinate the processes of one machine, which is what an SQLite file can
serve anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from lockgate.builtin_plugins.file_locks import FileLocks
from lockgate.builtin_plugins.sqlite_outbox import SqliteDeliveries
from lockgate.builtin_plugins.sqlite_reads import SqliteReads
from lockgate.builtin_plugins.sqlite_schema import (
    CHANGE_COLUMNS,
    CLOSE_HISTORY,
    MIGRATIONS,
    component_of,
    event_of,
    migrate,
    schema_version,
    unopenable,
)
from lockgate.plugin import (
    GENESIS,
    Approval,
    AuditEvent,
    ChainedEvent,
    ComponentRecord,
    ComponentStatus,
    ConfigError,
    ConflictError,
    EventFilter,
    Intent,
    LockedError,
    LockOwner,
    Pointer,
    PointerChange,
    RevisionRecord,
    RoleContext,
    StateCounts,
    TokenRecord,
    equal_clauses,
    event_hash,
    generation_conflict,
    hookimpl,
    not_before,
    record,
    sql_where,
    status_conflict,
)

__all__ = ["MIGRATIONS", "SqliteSettings", "SqliteStateStore"]


@record
class SqliteSettings:
    """``plugins.sqlite:`` — the database file and lock waits.

    ``path`` is relative to ``.lockgate/`` and stays inside it: everything lockgate keeps is
    in one directory to back up, and a path from the environment cannot point the state
    elsewhere. ``allow_outside: true`` lifts that rule for a path that must leave it.
    """

    path: str = "state.db"
    busy_timeout: float = attrs.field(
        default=10.0, validator=[attrs.validators.ge(0), attrs.validators.le(3600)]
    )
    allow_outside: bool = False

    def __attrs_post_init__(self) -> None:
        # "'path' ..." lets the configuration name the key and its line.
        if "\x00" in self.path or not self.path.strip():
            raise ValueError(f"'path' {self.path!r} names no file; give a file name")
        if self.allow_outside:
            return
        normal = os.path.normpath(self.path)
        if Path(normal).is_absolute() or normal in (".", "..") or normal.startswith("../"):
            raise ValueError(
                f"'path' {self.path!r} leaves .lockgate/; give a file name inside it, or set "
                "plugins.sqlite.allow_outside: true"
            )

    def database(self, state_dir: Path) -> Path:
        """The database file; ConfigError when a symlink leads it out of ``state_dir``."""
        path = state_dir / self.path
        if not self.allow_outside:
            inside = state_dir.resolve()
            if not path.resolve().is_relative_to(inside) or path.resolve() == inside:
                raise ConfigError(
                    f"plugins.sqlite.path {self.path!r} resolves outside .lockgate/ (through "
                    "a symlink); remove the link, or set plugins.sqlite.allow_outside: true"
                )
        return path


@hookimpl
def register_settings() -> type:
    return SqliteSettings


@hookimpl
def register_state_stores(register: Any) -> None:
    register("sqlite", lambda ctx: SqliteStateStore.from_context(ctx))


class SqliteStateStore(SqliteDeliveries, SqliteReads):
    """The state store on SQLite (with the outbox's delivery state: ``sqlite_outbox``; its
    bounded reads: ``sqlite_reads``)."""

    def __init__(
        self, path: Path, *, busy_timeout: float = 10.0, lock_dir: Path | None = None
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        # The lock files stay in .lockgate/ wherever plugins.sqlite.path puts the database.
        self._locks = FileLocks(lock_dir if lock_dir is not None else path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.DatabaseError as exc:
            raise unopenable(path, exc) from exc
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._locked(lambda: self._db.execute("PRAGMA journal_mode = WAL"))
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise unopenable(path, exc) from exc

    @classmethod
    def from_context(cls, ctx: RoleContext) -> SqliteStateStore:
        settings = ctx.settings or SqliteSettings()
        return cls(
            settings.database(ctx.state_dir),
            busy_timeout=settings.busy_timeout,
            lock_dir=ctx.state_dir,
        )

    # ------------------------------------------------------------------ plumbing

    def _locked(self, call: Any) -> Any:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise LockedError(
                f"{self.path}: the state database stayed locked for {self.busy_timeout:g}s "
                "by another lockgate process; retry, or raise plugins.sqlite.busy_timeout"
            ) from exc

    @contextlib.contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        self._locked(lambda: db.execute("BEGIN IMMEDIATE"))
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._locked(lambda: db.execute("COMMIT"))

    def _migrate(self) -> None:
        if schema_version(self._db) >= len(MIGRATIONS):
            return
        with self._write(durable=True) as db:
            migrate(db)

    @property
    def schema_version(self) -> int:
        """The migration number the database is at."""
        return schema_version(self._db)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ locks

    def lock(
        self, name: str, *, owner: LockOwner, lease: float, timeout: float, shared: bool = False
    ) -> contextlib.AbstractContextManager[LockOwner]:
        return self._locks.lock(name, owner=owner, lease=lease, timeout=timeout, shared=shared)

    def holder(self, name: str) -> LockOwner | None:
        return self._locks.holder(name)

    def break_lock(self, name: str) -> None:
        self._locks.break_lock(name)

    # ------------------------------------------------------------------ components

    def component(self, ref: str) -> ComponentRecord | None:
        row = self._db.execute("SELECT * FROM components WHERE component = ?", (ref,)).fetchone()
        return component_of(row) if row else None

    def components(self, workspace: str | None = None) -> list[ComponentRecord]:
        if workspace is None:
            rows = self._db.execute("SELECT * FROM components ORDER BY component")
        else:
            rows = self._db.execute(
                "SELECT * FROM components WHERE workspace = ? ORDER BY component", (workspace,)
            )
        return [component_of(r) for r in rows]

    def revisions(self, ref: str) -> list[RevisionRecord]:
        rows = self._db.execute(
            "SELECT component, revision, created_at, actor, stage, files, size, parent "
            "FROM revisions WHERE component = ? ORDER BY seq",
            (ref,),
        )
        return [RevisionRecord(**dict(r)) for r in rows]

    def record_revision(
        self, revision: RevisionRecord, component: ComponentRecord, event: AuditEvent
    ) -> int:
        with self._write() as db:
            revision = attrs.evolve(revision, created_at=_after_last(db, revision.created_at))
            component = attrs.evolve(component, updated_at=_after_last(db, component.updated_at))
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
            return _append(db, event)

    def set_status(
        self, ref: str, expected: ComponentStatus, status: ComponentStatus, event: AuditEvent
    ) -> int:
        with self._write() as db:
            _swap_status(db, ref, expected, status, _after_last(db, event.at))
            return _append(db, event)

    # ------------------------------------------------------------------ pointers

    def pointer(self, stage: str, component_id: str) -> Pointer | None:
        row = self._db.execute(
            "SELECT * FROM pointers WHERE stage = ? AND component_id = ?", (stage, component_id)
        ).fetchone()
        return Pointer(**dict(row)) if row else None

    def pointers(self, stage: str | None = None) -> list[Pointer]:
        sql = "SELECT * FROM pointers WHERE revision IS NOT NULL"
        args: tuple[str, ...] = ()
        if stage is not None:
            sql += " AND stage = ?"
            args = (stage,)
        rows = self._db.execute(sql + " ORDER BY stage, component_id", args)
        return [Pointer(**dict(r)) for r in rows]

    def move_pointer(
        self,
        change: PointerChange,
        *,
        expected_generation: int,
        status: ComponentStatus | None,
        event: AuditEvent,
    ) -> Pointer:
        return self.move_pointer_after(
            (), change, expected_generation=expected_generation, status=status, event=event
        )

    def move_pointer_after(
        self,
        before: Sequence[AuditEvent],
        change: PointerChange,
        *,
        expected_generation: int,
        status: ComponentStatus | None,
        event: AuditEvent,
        status_from: Collection[ComponentStatus] | None = None,
    ) -> Pointer:
        """``MoveWithEvents``: ``before`` appended in the move's own transaction (and the
        status set only from one of ``status_from``, when given)."""
        with self._write(durable=True) as db:
            row = db.execute(
                "SELECT generation, revision FROM pointers WHERE stage = ? AND component_id = ?",
                (change.stage, change.component_id),
            ).fetchone()
            current = row["generation"] if row else 0
            if current != expected_generation:
                raise generation_conflict(change, current, expected_generation)
            for earlier in before:
                _append(db, earlier)
            generation = current + 1
            # The move is timed like its event (never before the chain's last event), so
            # the pointer history and the audit log agree on when it happened.
            change = attrs.evolve(change, at=_after_last(db, change.at))
            pointer = Pointer.moved(change, generation)
            db.execute(
                "INSERT INTO pointers VALUES (:stage, :component_id, :component, :revision, "
                ":generation, :updated_at, :actor) ON CONFLICT (stage, component_id) DO UPDATE "
                "SET component = excluded.component, revision = excluded.revision, "
                "generation = excluded.generation, updated_at = excluded.updated_at, "
                "actor = excluded.actor",
                attrs.asdict(pointer),
            )
            if status is not None:
                db.execute(*_mark(change, status, status_from))
            seq = _append(db, event)
            db.execute(
                CLOSE_HISTORY,
                (change.at, change.stage, change.component_id),
            )
            db.execute(
                "INSERT INTO pointer_history (stage, component_id, component, revision, "
                "previous_revision, generation, at, actor, action, reason, event_seq) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    change.stage,
                    change.component_id,
                    change.component,
                    change.revision,
                    row["revision"] if row else None,
                    generation,
                    change.at,
                    change.actor,
                    change.action,
                    change.reason,
                    seq,
                ),
            )
            return pointer

    def pointer_history(
        self, stage: str | None = None, component_id: str | None = None
    ) -> list[PointerChange]:
        clauses, args = equal_clauses("?", stage=stage, component_id=component_id)
        rows = self._db.execute(
            f"SELECT {CHANGE_COLUMNS} FROM pointer_history{sql_where(clauses)} ORDER BY seq", args
        )
        return [PointerChange(*r) for r in rows]

    def live_at(self, stage: str, at: str, component_id: str | None = None) -> list[PointerChange]:
        sql = (
            f"SELECT {CHANGE_COLUMNS} FROM pointer_history WHERE stage = ? AND at <= ? "
            "AND (valid_until IS NULL OR valid_until > ?) AND revision IS NOT NULL"
        )
        args: list[str] = [stage, at, at]
        if component_id is not None:
            sql += " AND component_id = ?"
            args.append(component_id)
        rows = self._db.execute(sql + " ORDER BY component_id", args)
        return [PointerChange(*r) for r in rows]

    # ------------------------------------------------------------------ approvals

    def add_approval(
        self,
        approval: Approval,
        event: AuditEvent,
        status: tuple[ComponentStatus, ComponentStatus] | None = None,
    ) -> int:
        with self._write() as db:
            approval = attrs.evolve(approval, at=_after_last(db, approval.at))
            if status is not None:
                _swap_status(db, approval.component, status[0], status[1], approval.at)
            db.execute(
                "INSERT INTO approvals (component, revision, actor, decision, at, stage, comment) "
                "VALUES (:component, :revision, :actor, :decision, :at, :stage, :comment)",
                attrs.asdict(approval),
            )
            return _append(db, event)

    def approvals(self, component: str, revision: str | None = None) -> list[Approval]:
        if revision is None:
            rows = self._db.execute(
                "SELECT * FROM approvals WHERE component = ? ORDER BY id", (component,)
            )
        else:
            rows = self._db.execute(
                "SELECT * FROM approvals WHERE component = ? AND revision = ? ORDER BY id",
                (component, revision),
            )
        return [Approval(**{k: v for k, v in dict(r).items() if k != "id"}) for r in rows]

    # ------------------------------------------------------------------ intents

    def open_intent(self, intent: Intent) -> None:
        with self._write(durable=True) as db:
            db.execute("INSERT INTO intents VALUES (?, ?, ?, ?, ?, ?)", intent.row())

    def close_intent(self, intent_id: str, state: Literal["completed", "undone"]) -> None:
        """Committed without a disk flush (``synchronous=NORMAL``): what it closes is
        recorded durably already (a switch's move, or a recovery's outcome). A process
        that dies keeps the close (the WAL is written at every commit); a machine that
        loses power may lose it, never a later durable commit (the WAL is flushed in
        order), and recovery settles the intent again, to the same outcome."""
        with self._write() as db:
            db.execute("UPDATE intents SET state = ? WHERE id = ?", (state, intent_id))

    def open_intents(self) -> list[Intent]:
        return self._intents("WHERE state = 'open' ORDER BY created_at")

    def intents(self) -> list[Intent]:
        """``IntentLog``: every intent, closed ones too (what ``state migrate`` copies)."""
        return self._intents("ORDER BY created_at, id")

    def _intents(self, where: str) -> list[Intent]:
        rows = self._db.execute(f"SELECT * FROM intents {where}")
        return [
            Intent(
                id=r["id"],
                operation=r["operation"],
                owner=r["owner"],
                created_at=r["created_at"],
                payload=json.loads(r["payload"]),
                state=r["state"],
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ verdicts

    def validation_results(self, revision: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT key, value FROM validation_results WHERE revision = ?", (revision,)
        )
        return dict(rows.fetchall())

    def record_validation_results(self, revision: str, values: Mapping[str, str]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO validation_results VALUES (?, ?, ?)",
                [(revision, key, value) for key, value in values.items()],
            )

    # ------------------------------------------------------------------ tokens

    def add_token(self, token: TokenRecord, event: AuditEvent) -> None:
        with self._write() as db:
            try:
                db.execute("INSERT INTO tokens VALUES (?,?,?,?,?,?,?,?,?)", attrs.astuple(token))
            except sqlite3.IntegrityError:
                raise ConflictError(f"a token with id {token.id} exists; retry") from None
            _append(db, event)

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        row = self._db.execute("SELECT * FROM tokens WHERE digest = ?", (digest,)).fetchone()
        return TokenRecord(*row) if row else None

    def tokens(self) -> list[TokenRecord]:
        rows = self._db.execute("SELECT * FROM tokens ORDER BY created_at, id")
        return [TokenRecord(*r) for r in rows]

    def revoke_token(self, token_id: str, at: str, event: AuditEvent) -> TokenRecord | None:
        with self._write() as db:
            row = db.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
            if row is None or row["revoked_at"] is not None:
                return TokenRecord(*row) if row else None
            db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (at, token_id))
            _append(db, event)
            return attrs.evolve(TokenRecord(*row), revoked_at=at)

    # ------------------------------------------------------------------ audit log

    def append_event(self, event: AuditEvent) -> int:
        with self._write() as db:
            return _append(db, event)

    def append_events(self, events: Sequence[AuditEvent]) -> list[int]:
        with self._write() as db:
            return [_append(db, event) for event in events]

    def events(self, where: EventFilter | None = None) -> list[AuditEvent]:
        sql, args = (where or EventFilter()).sql("SELECT * FROM events", "?")
        return [event_of(r) for r in self._db.execute(sql, args)]

    def chain(self, after: int = 0) -> Iterator[ChainedEvent]:
        rows = self._db.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq", (after,))
        for row in rows:
            yield ChainedEvent(event_of(row), row["prev_hash"], row["hash"])

    def counts(self) -> StateCounts:
        db = self._db

        def grouped(column: str) -> dict[str, int]:
            rows = db.execute(f"SELECT {column}, COUNT(*) FROM components GROUP BY {column}")
            return {r[0]: r[1] for r in rows}

        operations: dict[str, dict[str, int]] = {}
        for row in db.execute("SELECT action, outcome, n FROM event_counts"):
            operations.setdefault(row["action"], {})[row["outcome"]] = row["n"]
        total = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        return StateCounts(
            by_status=grouped("status"),
            by_type=grouped("component_type"),
            by_workspace=grouped("workspace"),
            operations=operations,
            events=int(total),
        )


def _after_last(db: sqlite3.Connection, at: str) -> str:
    """``at``, or the time of the chain's last event when that is later: a record written
    with its event is timed like it (see :func:`~lockgate.contracts.audit.not_before`), so the
    records and the log they are checked against agree."""
    last = db.execute("SELECT at FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return not_before(at, last["at"] if last else None)


def _append(db: sqlite3.Connection, event: AuditEvent) -> int:
    last = db.execute("SELECT seq, hash, at FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    seq = (last["seq"] + 1) if last else 1
    prev = last["hash"] if last else GENESIS
    event = attrs.evolve(event, seq=seq, at=not_before(event.at, last["at"] if last else None))
    db.execute(
        "INSERT INTO events (seq, at, actor, action, component, stage, revision, "
        "previous_revision, reason, details, prev_hash, hash, outcome) VALUES (:seq, :at, "
        ":actor, :action, :component, :stage, :revision, :previous_revision, :reason, "
        ":details, :prev_hash, :hash, :outcome)",
        {
            **attrs.asdict(event),
            "details": json.dumps(event.details, sort_keys=True, default=str),
            "prev_hash": prev,
            "hash": event_hash(prev, event),
        },
    )
    db.execute(
        "INSERT INTO event_counts VALUES (?, ?, 1) ON CONFLICT (action, outcome) "
        "DO UPDATE SET n = n + 1",
        (event.action, event.outcome),
    )
    return seq


def _mark(
    change: PointerChange, status: ComponentStatus, status_from: Collection[ComponentStatus] | None
) -> tuple[str, tuple[str, ...]]:
    """The statement setting a move's status (only from one of ``status_from``, if given)."""
    sql = "UPDATE components SET status = ?, updated_at = ? WHERE component = ?"
    args = (status.value, change.at, change.component)
    if status_from is None:
        return sql, args
    sources = sorted(s.value for s in status_from)
    return f"{sql} AND status IN ({', '.join('?' * len(sources)) or 'NULL'})", (*args, *sources)


def _swap_status(
    db: sqlite3.Connection, ref: str, expected: ComponentStatus, status: ComponentStatus, at: str
) -> None:
    """Compare-and-swap a component's status inside the caller's transaction."""
    cur = db.execute(
        "UPDATE components SET status = ?, updated_at = ? WHERE component = ? AND status = ?",
        (status.value, at, ref, expected.value),
    )
    if cur.rowcount != 1:
        row = db.execute("SELECT status FROM components WHERE component = ?", (ref,))
        found = row.fetchone()
        raise status_conflict(ref, found["status"] if found else None, expected)
