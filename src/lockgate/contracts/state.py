"""The state store role: components, revisions, pointers, approvals, intents, the
audit log and the operation lock, and the records it keeps."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Literal, Protocol

import attrs

from lockgate.contracts.locks import LockOwner
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.records import record
from lockgate.contracts.refs import NAME_PATTERN, name_problem
from lockgate.errors import ConflictError, CorruptStateError

__all__ = [
    "AccessTokens",
    "Approval",
    "AuditEvent",
    "ChainedEvent",
    "ComponentRecord",
    "EventFilter",
    "Intent",
    "IntentLog",
    "Pointer",
    "PointerChange",
    "RevisionRecord",
    "StateCounts",
    "StateImport",
    "StateSnapshot",
    "StateStore",
    "TokenRecord",
    "ValidationResults",
    "corrupt_record",
    "equal_clauses",
    "generation_conflict",
    "sql_where",
    "status_conflict",
    "store_importer",
    "store_intent_log",
    "store_results",
    "store_tokens",
]


def _stored(
    record: object, kind: str, names: str = "", refs: str = "", revisions: str = ""
) -> None:
    """Refuse a record whose names could not have come from lockgate.

    Records are built by the state store from what it read back, and the kernel joins
    their component ids, stage names and revision ids to paths. Checking them here, with
    the rules user input follows, covers every store: a row edited to hold
    ``x/../../outside`` is refused before any command touches a file with it. Every row
    read pays for it, so the fields are joined by NUL (which no name holds) and matched by
    one pattern; only a miss works out which field is wrong and why.
    """
    plan, pattern = _plan(names, refs, revisions)
    values = []
    for field, rule in plan:
        value = getattr(record, field)
        if value is None and (rule == "revision" or field == "stage"):
            value = "0"  # absent is allowed here: any valid name stands in
        values.append(value)
    try:
        joined = "\x00".join(values)
    except TypeError:  # not a string: the slow path says which
        joined = ""
    if joined and pattern.fullmatch(joined) and ".." not in joined:
        return
    for (field, rule), value in zip(plan, values, strict=True):
        problem = _ref_problem(value) if rule == "ref" else name_problem(value)
        if problem is not None:
            raise corrupt_record(kind, field, getattr(record, field), problem)


@functools.cache
def _plan(
    names: str, refs: str, revisions: str
) -> tuple[tuple[tuple[str, str], ...], re.Pattern[str]]:
    """The (field, rule) pairs :func:`_stored` checks, and the one pattern all their values
    joined by NUL must match, worked out once per record class."""
    plan = (
        *((n, "name") for n in names.split()),
        *((n, "ref") for n in refs.split()),
        *((n, "revision") for n in revisions.split()),
    )
    parts = [f"{NAME_PATTERN}:{NAME_PATTERN}" if r == "ref" else NAME_PATTERN for _, r in plan]
    return plan, re.compile("\x00".join(f"(?:{p})" for p in parts))


def corrupt_record(kind: str, field: str, value: object, problem: str) -> CorruptStateError:
    """The error for a record read back from the state store that breaks lockgate's rules."""
    article = "an" if kind[:1] in "aeiou" else "a"
    return CorruptStateError(
        f"the state store holds {article} {kind} whose {field} {value!r} {problem}: lockgate never "
        "writes that, so .lockgate/ was edited or damaged; restore it from a backup, or "
        "correct or delete that record"
    )


def status_conflict(ref: str, found: str | None, expected: ComponentStatus) -> ConflictError:
    """The error every store raises when ``set_status`` loses its compare-and-swap:
    component ``ref`` is ``found`` (None: gone), not ``expected``."""
    return ConflictError(
        f"{ref} is {found or 'unknown'}, not {expected.value} as expected: another change "
        "won; look again and retry"
    )


def generation_conflict(change: PointerChange, current: int, expected: int) -> ConflictError:
    """The error every store raises when ``move_pointer`` loses its compare-and-swap: the
    pointer is at generation ``current``, not ``expected``."""
    return ConflictError(
        f"{change.stage}/{change.component_id} moved meanwhile (generation {current}, "
        f"expected {expected}): another change won; look again and retry"
    )


def _ref_problem(value: object) -> str | None:
    if not isinstance(value, str) or ":" not in value:
        return "is not WORKSPACE:ID"
    workspace, _, component_id = value.partition(":")
    problem = name_problem(workspace) or name_problem(component_id)
    return None if problem is None else f"is not WORKSPACE:ID of two names (one {problem})"


@record
class RevisionRecord:
    """A revision as the state store knows it."""

    component: str
    revision: str
    created_at: str
    actor: str
    stage: str
    files: int
    size: int
    parent: str | None = None

    def __attrs_post_init__(self) -> None:
        _stored(self, "revision", names="stage", refs="component", revisions="revision parent")


@record
class ComponentRecord:
    """A component as the state store knows it: its latest revision and status."""

    component: str
    workspace: str
    component_id: str
    component_type: str
    status: ComponentStatus
    latest_revision: str | None
    updated_at: str

    def __attrs_post_init__(self) -> None:
        _stored(
            self,
            "component",
            names="workspace component_id component_type",
            refs="component",
            revisions="latest_revision",
        )


@record
class AuditEvent:
    """One audit-log entry (``seq`` is set by the store when it is appended).

    ``outcome`` is ``ok`` for a change that happened, ``failed`` or ``refused`` for an
    attempt that did not (recorded so that statistics can give success rates).
    """

    at: str
    actor: str
    action: str
    component: str | None = None
    stage: str | None = None
    revision: str | None = None
    previous_revision: str | None = None
    reason: str | None = None
    details: dict[str, object] = attrs.field(factory=dict)
    outcome: str = "ok"
    seq: int | None = None


@record
class ChainedEvent:
    """An audit event as stored, with its place in the hash chain."""

    event: AuditEvent
    prev_hash: str
    hash: str


@record
class EventFilter:
    """Which audit events to return; every field narrows, None means any."""

    component: str | None = None
    stage: str | None = None
    actor: str | None = None
    action: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int | None = None
    newest_first: bool = False

    def sql(self, select: str, placeholder: str = "?") -> tuple[str, list[object]]:
        """The query over an ``events`` table with these columns (``component``,
        ``stage``, ``actor``, ``action``, ``at``, ``seq``) for a SQL store: ``select``
        (``SELECT * FROM events``) narrowed by this filter, ordered and limited, and its
        arguments, written with ``placeholder`` (``?`` for SQLite, ``%s`` for psycopg)."""
        clauses, args = equal_clauses(
            placeholder, **{c: getattr(self, c) for c in ("component", "stage", "actor", "action")}
        )
        if self.since is not None:
            clauses.append(f"at >= {placeholder}")
            args.append(self.since)
        if self.until is not None:
            clauses.append(f"at <= {placeholder}")
            args.append(self.until)
        sql = select + sql_where(clauses)
        sql += " ORDER BY seq DESC" if self.newest_first else " ORDER BY seq"
        if self.limit is not None:
            sql += f" LIMIT {int(self.limit)}"
        return sql, args


def equal_clauses(placeholder: str, **columns: object) -> tuple[list[str], list[object]]:
    """``column = <placeholder>`` for each of ``columns`` whose value is not None, and the
    values: what a SQL store's query narrows by (``?`` for SQLite, ``%s`` for psycopg)."""
    given = [(column, value) for column, value in columns.items() if value is not None]
    return [f"{column} = {placeholder}" for column, _ in given], [v for _, v in given]


def sql_where(clauses: Sequence[str]) -> str:
    """`` WHERE a AND b`` for ``clauses`` (nothing when there are none)."""
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


@record
class Pointer:
    """The revision current in a stage for one component id (None: removed).

    ``generation`` counts the pointer's moves; a move must name the generation it
    expects, so a caller that read a stale pointer gets a conflict.
    """

    stage: str
    component_id: str
    component: str
    revision: str | None
    generation: int
    updated_at: str
    actor: str

    def __attrs_post_init__(self) -> None:
        _stored(self, "pointer", names="stage component_id", refs="component", revisions="revision")

    @classmethod
    def moved(cls, change: PointerChange, generation: int) -> Pointer:
        """The pointer ``change`` made, at ``generation`` (what a store's move returns)."""
        where = (change.stage, change.component_id, change.component, change.revision)
        return cls(*where, generation, change.at, change.actor)


@record
class PointerChange:
    """One move of a stage pointer: what became current, when, by whom, until when."""

    stage: str
    component_id: str
    component: str
    revision: str | None
    previous_revision: str | None
    generation: int
    at: str
    actor: str
    action: str
    reason: str | None = None
    valid_until: str | None = None
    event_seq: int | None = None

    def __attrs_post_init__(self) -> None:
        _stored(
            self,
            "pointer change",
            names="stage component_id",
            refs="component",
            revisions="revision previous_revision",
        )


@record
class Approval:
    """An approval or rejection of one revision (bound to its digest)."""

    component: str
    revision: str
    actor: str
    decision: Literal["approve", "reject"]
    at: str
    stage: str | None = None
    comment: str | None = None

    def __attrs_post_init__(self) -> None:
        _stored(self, "decision", names="stage", refs="component", revisions="revision")


@record
class Intent:
    """An operation announced before it touches a target, closed when it is done or undone."""

    id: str
    operation: str
    owner: str
    created_at: str
    payload: dict[str, object] = attrs.field(factory=dict)
    state: Literal["open", "completed", "undone"] = "open"

    def row(self) -> tuple[str, str, str, str, str, str]:
        """The intent as a store's row keeps it: id, operation, owner, created_at, the
        payload as canonical JSON (keys sorted), state."""
        payload = json.dumps(self.payload, sort_keys=True, default=str)
        return (self.id, self.operation, self.owner, self.created_at, payload, self.state)


@record
class StateCounts:
    """Aggregates for ``summary`` and ``stats``."""

    by_status: dict[str, int]
    by_type: dict[str, int]
    by_workspace: dict[str, int]
    operations: dict[str, dict[str, int]]
    events: int


class StateStore(Protocol):
    """Everything lockgate records (builtin: ``sqlite``; also ``memory``).

    Every write that changes state appends its audit event in the same transaction.
    ``tests``/``lockgate.conformance`` hold the suite every implementation must pass.
    """

    # -- components and revisions
    def component(self, ref: str) -> ComponentRecord | None:
        """One component's record, or None."""

    def components(self, workspace: str | None = None) -> list[ComponentRecord]:
        """Every known component (of one workspace), sorted by ref."""

    def revisions(self, ref: str) -> list[RevisionRecord]:
        """A component's revisions, oldest first."""

    def record_revision(
        self, revision: RevisionRecord, component: ComponentRecord, event: AuditEvent
    ) -> int:
        """Upsert the component, add the revision, append the event; return its seq."""

    def set_status(
        self,
        ref: str,
        expected: ComponentStatus,
        status: ComponentStatus,
        event: AuditEvent,
    ) -> int:
        """Change a component's status if it is still ``expected`` (else ConflictError)."""

    # -- stage pointers
    def pointer(self, stage: str, component_id: str) -> Pointer | None:
        """The pointer of ``component_id`` in ``stage`` (None if it never had one)."""

    def pointers(self, stage: str | None = None) -> list[Pointer]:
        """Every pointer (of one stage) that currently names a revision."""

    def move_pointer(
        self,
        change: PointerChange,
        *,
        expected_generation: int,
        status: ComponentStatus | None,
        event: AuditEvent,
    ) -> Pointer:
        """Compare-and-swap: move the pointer if its generation is ``expected_generation``
        (0 for a pointer that does not exist yet), record the change in the pointer
        history, set the component's status (when given) and append the event, in one
        durable transaction. A stale generation raises ConflictError."""

    def pointer_history(
        self, stage: str | None = None, component_id: str | None = None
    ) -> list[PointerChange]:
        """Pointer moves, oldest first."""

    def live_at(self, stage: str, at: str, component_id: str | None = None) -> list[PointerChange]:
        """The pointer changes that were current in ``stage`` at time ``at``."""

    # -- approvals
    def add_approval(
        self,
        approval: Approval,
        event: AuditEvent,
        status: tuple[ComponentStatus, ComponentStatus] | None = None,
    ) -> int:
        """Record an approval or rejection with its audit event, in one transaction.

        ``status=(expected, new)`` also moves the component's status by compare-and-swap
        (ConflictError, and nothing recorded, when it is no longer ``expected``)."""

    def approvals(self, component: str, revision: str | None = None) -> list[Approval]:
        """Approvals and rejections of a component (of one revision), oldest first."""

    # -- intents
    def open_intent(self, intent: Intent) -> None:
        """Record that an operation is about to touch a target."""

    def close_intent(self, intent_id: str, state: Literal["completed", "undone"]) -> None:
        """Mark an intent completed or undone."""

    def open_intents(self) -> list[Intent]:
        """Intents still open (left by an interrupted operation)."""

    # -- audit log
    def append_event(self, event: AuditEvent) -> int:
        """Append an event that accompanies no other change (a failure, an unlock)."""

    def append_events(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append several such events in one transaction (all or none); return their seqs."""

    def events(self, where: EventFilter | None = None) -> list[AuditEvent]:
        """Audit events matching ``where``, oldest first (unless ``newest_first``)."""

    def chain(self, after: int = 0) -> Iterator[ChainedEvent]:
        """Every stored event with its hashes, in sequence order, for verification."""

    def counts(self) -> StateCounts:
        """Aggregates for reports, answered without scanning the log."""

    # -- locks (the records and the names: lockgate.contracts.locks)
    def lock(
        self, name: str, *, owner: LockOwner, lease: float, timeout: float, shared: bool = False
    ) -> AbstractContextManager[LockOwner]:
        """Hold lock ``name`` (``operation`` or ``staging``) for the ``with`` block.

        Exclusive, or ``shared`` with other shared holders of the same name; locks of
        different names are independent (the kernel never asks again for a lock it
        holds). Waits up to ``timeout`` seconds, then raises ``LockedError`` naming the
        holder (``locked_error``). Yields ``owner`` as granted: ``since`` now and
        ``lease_until`` ``lease`` seconds from now. Released when the block exits, and
        when the holder dies however it dies: a dead holder never blocks."""

    def holder(self, name: str) -> LockOwner | None:
        """Who holds lock ``name`` now (one of them when it is held shared; not
        ``known`` when the store cannot tell who), or None when it is free."""

    def break_lock(self, name: str) -> None:
        """Free lock ``name`` whoever holds it (``lockgate unlock --force``): the next
        ``lock`` takes it at once. A holder still running keeps running, no longer
        excluding anyone, and its release does not free a lock taken since."""

    def close(self) -> None:
        """Release connections."""


@record
class StateSnapshot:
    """Everything a state store holds that another must hold to answer the same: what
    ``lockgate state migrate`` copies. ``revisions`` and ``approvals`` are keyed by
    component, oldest first; ``pointers`` holds every pointer ever moved (removed ones
    too, with their generation); ``history`` is oldest first; ``chain`` is the audit log
    as stored, hashes included, so the copy verifies as the original did."""

    components: tuple[ComponentRecord, ...]
    revisions: dict[str, tuple[RevisionRecord, ...]]
    pointers: tuple[Pointer, ...]
    history: tuple[PointerChange, ...]
    approvals: dict[str, tuple[Approval, ...]]
    intents: tuple[Intent, ...]
    chain: tuple[ChainedEvent, ...]


class StateImport(Protocol):
    """Optional capability of a state store: take a whole history at once.

    ``import_snapshot`` writes every record of ``snapshot`` as it is (times, generations,
    sequence numbers and hashes unchanged) in one transaction, and refuses (``ConflictError``,
    nothing written) when the store already holds any component or event.
    """

    def import_snapshot(self, snapshot: StateSnapshot) -> None:
        """Write ``snapshot`` into this empty store, all or nothing."""


def store_importer(store: object) -> StateImport | None:
    """``store`` when it offers :class:`StateImport`, else None."""
    return store if callable(getattr(store, "import_snapshot", None)) else None  # type: ignore[return-value]


class ValidationResults(Protocol):
    """Optional capability of a state store: keep validators' verdicts per revision.

    The kernel stores, per revision, one opaque text value (its own JSON) under each key
    it chooses (a key names a validator, its version and settings, and the stage unless
    the validator declares its verdict the same for every stage), and reads them back in
    later processes. A promotion's gate takes a verdict from here instead of calling the
    validator again: the store is the record the gates already trust (approvals,
    pointers), unlike files under the project's directory, which anyone who can write the
    project could edit. A store without this capability costs only time: every gate then
    calls its validators again.

    ``validation_results(revision)`` returns every key and value stored for ``revision``
    (empty when none); ``record_validation_results(revision, values)`` stores ``values``
    in one write, replacing a value already stored under the same key.
    """

    def validation_results(self, revision: str) -> Mapping[str, str]:
        """Every value stored for ``revision``, by key."""

    def record_validation_results(self, revision: str, values: Mapping[str, str]) -> None:
        """Store ``values`` for ``revision`` (replacing those under the same keys)."""


def store_results(store: object) -> ValidationResults | None:
    """``store`` when it offers :class:`ValidationResults`, else None."""
    offers = callable(getattr(store, "record_validation_results", None))
    return store if offers else None  # type: ignore[return-value]


class IntentLog(Protocol):
    """Optional capability of a state store: every intent it recorded, open and closed.

    ``open_intents`` is what recovery needs; a closed intent says which operations ran
    to the end and which were undone, which ``lockgate state migrate`` copies with the rest.
    """

    def intents(self) -> list[Intent]:
        """Every intent, closed ones with their state, by ``created_at`` then ``id``."""


def store_intent_log(store: object) -> IntentLog | None:
    """``store`` when it offers :class:`IntentLog`, else None."""
    return store if callable(getattr(store, "intents", None)) else None  # type: ignore[return-value]


@record
class TokenRecord:
    """A bearer token lockgate issued, as stored: never the secret, only its SHA-256
    (``digest``). ``role`` is ``viewer``, ``developer``, ``approver``, ``releaser`` or
    ``admin``; ``stage`` limits an approver or releaser to one stage (None: every
    stage). Times are :func:`~lockgate.contracts.clock.now_iso` strings."""

    id: str
    digest: str
    actor: str
    role: str
    stage: str | None
    created_at: str
    created_by: str
    expires_at: str | None = None
    revoked_at: str | None = None


class AccessTokens(Protocol):
    """Optional capability of a state store: keep the bearer tokens ``lockgate serve``
    accepts (see docs/server.md). A store without it cannot serve; ``lockgate token``
    says so in one line.

    ``add_token`` stores ``token`` and appends ``event`` in one transaction (a token id
    already stored is a ``ConflictError``); ``token_by_digest`` finds a token by the
    SHA-256 of its secret (revoked and expired ones too: the caller decides);
    ``tokens`` lists every token, oldest first; ``revoke_token`` sets ``revoked_at`` and
    appends ``event`` in one transaction, returning the record as it now is (None: no
    token has that id; a token already revoked keeps its first time, and no event).
    """

    def add_token(self, token: TokenRecord, event: AuditEvent) -> None:
        """Store ``token`` and append ``event``, all or nothing."""

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        """The token whose secret hashes to ``digest``, if any."""

    def tokens(self) -> list[TokenRecord]:
        """Every token, oldest first."""

    def revoke_token(self, token_id: str, at: str, event: AuditEvent) -> TokenRecord | None:
        """Mark token ``token_id`` revoked at ``at`` (with ``event``); None when unknown."""


def store_tokens(store: object) -> AccessTokens | None:
    """``store`` when it offers :class:`AccessTokens`, else None."""
    offers = callable(getattr(store, "token_by_digest", None))
    return store if offers else None  # type: ignore[return-value]
