"""Builtin plugin ``memory``: a state store held in memory (``state.store: memory``).

It keeps the same contract as ``sqlite`` — the conformance suite in
``lockgate.conformance`` runs against both — and serves tests and throwaway runs;
nothing survives the process. One lock makes every write atomic.

Its locks (``StateStore.lock``) exclude the threads of this process, with the same
semantics as ``sqlite``'s across processes; they end with the process, so a dead holder
never blocks.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs

from lockgate.plugin import (
    GENESIS,
    Approval,
    Ask,
    AuditEvent,
    ChainedEvent,
    ComponentRecord,
    ComponentStatus,
    ConflictError,
    Delivery,
    EventFilter,
    Intent,
    LineageStep,
    LockOwner,
    Pointer,
    PointerChange,
    RevisionRecord,
    StateCounts,
    TokenRecord,
    answer_each,
    event_hash,
    generation_conflict,
    hookimpl,
    locked_error,
    not_before,
    parent_lock,
    status_conflict,
    walk_lineage,
)

__all__ = ["MemoryStateStore"]


@hookimpl
def register_state_stores(register: Any) -> None:
    register("memory", lambda ctx: MemoryStateStore())


class MemoryStateStore:
    """The state store in process memory, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._components: dict[str, ComponentRecord] = {}
        self._revisions: dict[str, list[RevisionRecord]] = {}
        self._chain: list[ChainedEvent] = []
        self._pointers: dict[tuple[str, str], Pointer] = {}
        self._history: list[PointerChange] = []
        self._approvals: list[Approval] = []
        self._intents: dict[str, Intent] = {}
        self._verdicts: dict[str, dict[str, str]] = {}
        self._tokens: dict[str, TokenRecord] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._deliveries: dict[tuple[str, int], Delivery] = {}
        self._cursors: dict[str, int] = {}
        self._locks = ThreadLocks()

    # ------------------------------------------------------------------ components

    def component(self, ref: str) -> ComponentRecord | None:
        return self._components.get(ref)

    def components(self, workspace: str | None = None) -> list[ComponentRecord]:
        return [
            c
            for _, c in sorted(self._components.items())
            if workspace is None or c.workspace == workspace
        ]

    def components_by_id(self, component_ids: tuple[str, ...]) -> list[ComponentRecord]:
        wanted = set(component_ids)
        return [c for _, c in sorted(self._components.items()) if c.component_id in wanted]

    def revisions(self, ref: str) -> list[RevisionRecord]:
        return list(self._revisions.get(ref, ()))

    def record_revision(
        self, revision: RevisionRecord, component: ComponentRecord, event: AuditEvent
    ) -> int:
        with self._lock:
            revision = attrs.evolve(revision, created_at=self._after_last(revision.created_at))
            component = attrs.evolve(component, updated_at=self._after_last(component.updated_at))
            self._components[component.component] = component
            known = self._revisions.setdefault(revision.component, [])
            if all(r.revision != revision.revision for r in known):
                known.append(revision)
            return self._append(event)

    def set_status(
        self, ref: str, expected: ComponentStatus, status: ComponentStatus, event: AuditEvent
    ) -> int:
        with self._lock:
            self._swap_status(ref, expected, status, self._after_last(event.at))
            return self._append(event)

    def _swap_status(
        self, ref: str, expected: ComponentStatus, status: ComponentStatus, at: str
    ) -> None:
        record = self._components.get(ref)
        if record is None or record.status is not expected:
            raise status_conflict(ref, record.status.value if record else None, expected)
        self._components[ref] = attrs.evolve(record, status=status, updated_at=at)

    # ------------------------------------------------------------------ pointers

    def pointer(self, stage: str, component_id: str) -> Pointer | None:
        return self._pointers.get((stage, component_id))

    def pointers(self, stage: str | None = None) -> list[Pointer]:
        return [
            p
            for _, p in sorted(self._pointers.items())
            if p.revision is not None and (stage is None or p.stage == stage)
        ]

    def move_pointer(
        self,
        change: PointerChange,
        *,
        expected_generation: int,
        status: ComponentStatus | None,
        event: AuditEvent,
    ) -> Pointer:
        with self._lock:
            key = (change.stage, change.component_id)
            old = self._pointers.get(key)
            current = old.generation if old else 0
            # Timed like its event, so the pointer history and the audit log agree.
            change = attrs.evolve(change, at=self._after_last(change.at))
            if current != expected_generation:
                raise generation_conflict(change, current, expected_generation)
            pointer = Pointer.moved(change, current + 1)
            self._pointers[key] = pointer
            record = self._components.get(change.component)
            if status is not None and record is not None:
                self._components[change.component] = attrs.evolve(
                    record, status=status, updated_at=change.at
                )
            seq = self._append(event)
            for i, past in enumerate(self._history):
                if (past.stage, past.component_id) == key and past.valid_until is None:
                    self._history[i] = attrs.evolve(past, valid_until=change.at)
            self._history.append(
                attrs.evolve(
                    change,
                    previous_revision=old.revision if old else None,
                    generation=current + 1,
                    valid_until=None,
                    event_seq=seq,
                )
            )
            return pointer

    def pointer_history(
        self, stage: str | None = None, component_id: str | None = None
    ) -> list[PointerChange]:
        return [
            c
            for c in self._history
            if (stage is None or c.stage == stage)
            and (component_id is None or c.component_id == component_id)
        ]

    def live_revisions(self, component: str, stages: Sequence[str] | None = None) -> frozenset[str]:
        """``LiveRevisions``: the history's revisions, no records copied."""
        ladder = None if stages is None else set(stages)
        return frozenset(
            c.revision
            for c in self._history
            if c.component == component and c.revision and (ladder is None or c.stage in ladder)
        )

    def revisions_starting(self, component: str, prefix: str, limit: int) -> list[RevisionRecord]:
        """``RevisionLineage``: the component's revisions filtered."""
        found = sorted(
            (r for r in self._revisions.get(component, ()) if r.revision.startswith(prefix)),
            key=lambda r: r.revision,
        )
        return found[: max(limit, 0)]

    def lineage(
        self, component: str, revision: str, stages: Sequence[str] | None = None
    ) -> list[LineageStep]:
        """``RevisionLineage``: the reference walk, under the store's lock (one moment)."""
        with self._lock:
            return walk_lineage(self, component, revision, stages)

    def read_batch(self, asks: Sequence[Ask]) -> list[Any]:
        """``ReadBatch``: each read answered alone, under the store's lock (one moment);
        the reference for a store whose reads are round trips, and the kernel's batched
        path exercised wherever this store runs."""
        with self._lock:
            return answer_each(self, asks)

    def live_at(self, stage: str, at: str, component_id: str | None = None) -> list[PointerChange]:
        live = [
            c
            for c in self.pointer_history(stage, component_id)
            if c.at <= at and (c.valid_until is None or c.valid_until > at) and c.revision
        ]
        return sorted(live, key=lambda c: c.component_id)

    # ------------------------------------------------------------------ approvals

    def add_approval(
        self,
        approval: Approval,
        event: AuditEvent,
        status: tuple[ComponentStatus, ComponentStatus] | None = None,
    ) -> int:
        with self._lock:
            approval = attrs.evolve(approval, at=self._after_last(approval.at))
            if status is not None:
                self._swap_status(approval.component, status[0], status[1], approval.at)
            self._approvals.append(approval)
            return self._append(event)

    def approvals(self, component: str, revision: str | None = None) -> list[Approval]:
        return [
            a
            for a in self._approvals
            if a.component == component and (revision is None or a.revision == revision)
        ]

    # ------------------------------------------------------------------ intents

    def open_intent(self, intent: Intent) -> None:
        with self._lock:
            self._intents[intent.id] = intent

    def close_intent(self, intent_id: str, state: Literal["completed", "undone"]) -> None:
        with self._lock:
            if intent_id in self._intents:
                self._intents[intent_id] = attrs.evolve(self._intents[intent_id], state=state)

    def open_intents(self) -> list[Intent]:
        return [i for i in self._intents.values() if i.state == "open"]

    def intents(self) -> list[Intent]:
        """``IntentLog``: every intent, closed ones too."""
        return sorted(self._intents.values(), key=lambda i: (i.created_at, i.id))

    # ------------------------------------------------------------------ audit log

    def validation_results(self, revision: str) -> dict[str, str]:
        with self._lock:
            return dict(self._verdicts.get(revision, {}))

    def record_validation_results(self, revision: str, values: Mapping[str, str]) -> None:
        with self._lock:
            self._verdicts.setdefault(revision, {}).update(values)

    def add_token(self, token: TokenRecord, event: AuditEvent) -> None:
        with self._lock:
            if token.id in self._tokens:
                raise ConflictError(f"a token with id {token.id} exists; retry")
            self._tokens[token.id] = token
            self._append(event)

    def token_by_digest(self, digest: str) -> TokenRecord | None:
        with self._lock:
            return next((t for t in self._tokens.values() if t.digest == digest), None)

    def tokens(self) -> list[TokenRecord]:
        with self._lock:
            return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id))

    def revoke_token(self, token_id: str, at: str, event: AuditEvent) -> TokenRecord | None:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None or token.revoked_at is not None:
                return token
            token = self._tokens[token_id] = attrs.evolve(token, revoked_at=at)
            self._append(event)
            return token

    # ------------------------------------------------------------------ outbox

    def delivery_cursor(self, notifier: str) -> int | None:
        return self._cursors.get(notifier)

    def record_deliveries(
        self, notifier: str, deliveries: Sequence[Delivery], cursor: int | None = None
    ) -> None:
        with self._lock:
            for d in deliveries:
                self._deliveries[(notifier, d.seq)] = attrs.evolve(d, notifier=notifier)
            if cursor is not None:
                self._cursors[notifier] = max(cursor, self._cursors.get(notifier, cursor))

    def deliveries(
        self,
        notifier: str | None = None,
        state: str | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[Delivery]:
        with self._lock:
            found = sorted(
                (
                    d
                    for d in self._deliveries.values()
                    if d.seq > after
                    and (notifier is None or d.notifier == notifier)
                    and (state is None or d.state == state)
                ),
                key=lambda d: (d.seq, d.notifier),
            )
        return found[:limit] if limit is not None else found

    def forget_deliveries(self, before: str) -> int:
        with self._lock:
            old = [
                k
                for k, d in self._deliveries.items()
                if d.state == "delivered" and d.updated_at < before
            ]
            for k in old:
                del self._deliveries[k]
            return len(old)

    def append_event(self, event: AuditEvent) -> int:
        with self._lock:
            return self._append(event)

    def append_events(self, events: Sequence[AuditEvent]) -> list[int]:
        with self._lock:
            return [self._append(event) for event in events]

    def _after_last(self, at: str) -> str:
        """``at``, or the chain's last event's time when later (records are timed like
        the event written with them)."""
        return not_before(at, self._chain[-1].event.at if self._chain else None)

    def _append(self, event: AuditEvent) -> int:
        prev = self._chain[-1].hash if self._chain else GENESIS
        # A private copy: the caller may reuse its details dict, and what is stored must
        # stay what was hashed (a database store gets that for free by serializing).
        stored = attrs.evolve(
            event,
            seq=len(self._chain) + 1,
            at=not_before(event.at, self._chain[-1].event.at if self._chain else None),
            details=copy.deepcopy(event.details),
        )
        self._chain.append(ChainedEvent(stored, prev, event_hash(prev, stored)))
        self._counts[(event.action, event.outcome)] += 1
        return len(self._chain)

    def events(self, where: EventFilter | None = None) -> list[AuditEvent]:
        w = where or EventFilter()
        found = [
            _copy(c.event)
            for c in self._chain
            if all(
                value is None or getattr(c.event, name) == value
                for name, value in (
                    ("component", w.component),
                    ("stage", w.stage),
                    ("actor", w.actor),
                    ("action", w.action),
                )
            )
            and (w.since is None or c.event.at >= w.since)
            and (w.until is None or c.event.at <= w.until)
        ]
        if w.newest_first:
            found.reverse()
        return found[: w.limit] if w.limit is not None else found

    def chain(self, after: int = 0) -> Iterator[ChainedEvent]:
        return iter([attrs.evolve(c, event=_copy(c.event)) for c in self._chain[after:]])

    def counts(self) -> StateCounts:
        comps = list(self._components.values())
        operations: dict[str, dict[str, int]] = {}
        for (action, outcome), n in self._counts.items():
            operations.setdefault(action, {})[outcome] = n
        return StateCounts(
            by_status=dict(Counter(c.status.value for c in comps)),
            by_type=dict(Counter(c.component_type for c in comps)),
            by_workspace=dict(Counter(c.workspace for c in comps)),
            operations=operations,
            events=len(self._chain),
        )

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ locks

    def lock(
        self, name: str, *, owner: LockOwner, lease: float, timeout: float, shared: bool = False
    ) -> contextlib.AbstractContextManager[LockOwner]:
        return self._locks.lock(name, owner=owner, lease=lease, timeout=timeout, shared=shared)

    def holder(self, name: str) -> LockOwner | None:
        return self._locks.holder(name)

    def break_lock(self, name: str) -> None:
        self._locks.break_lock(name)


class ThreadLocks:
    """Named shared/exclusive locks between the threads of one process.

    Each grant gets a ticket; releasing removes only its own ticket, so a holder whose
    lock was broken (:meth:`break_lock`) does not free a lock granted since.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._tickets = itertools.count(1)
        # name -> ticket -> (owner as granted, shared)
        self._held: dict[str, dict[int, tuple[LockOwner, bool]]] = {}

    @contextlib.contextmanager
    def lock(
        self, name: str, *, owner: LockOwner, lease: float, timeout: float, shared: bool = False
    ) -> Iterator[LockOwner]:
        """See ``StateStore.lock``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._free(name, shared):
                left = deadline - time.monotonic()
                if left <= 0:
                    holder = self._holder(name)
                    raise locked_error(
                        name, holder, shared=shared, waited=timeout, where=f"the {name} lock"
                    )
                self._changed.wait(left)
            granted = owner.stamped(lease)
            ticket = next(self._tickets)
            self._held.setdefault(name, {})[ticket] = (granted, shared)
        try:
            yield granted
        finally:
            with self._changed:
                self._held.get(name, {}).pop(ticket, None)
                self._changed.notify_all()

    def _free(self, name: str, shared: bool) -> bool:
        held = self._held.get(name, {})
        return not held or (shared and all(s for _, s in held.values()))

    def _holder(self, name: str) -> LockOwner | None:
        held = self._held.get(name, {})
        exclusive = [o for o, s in held.values() if not s]
        return exclusive[0] if exclusive else next((o for o, _ in held.values()), None)

    def holder(self, name: str) -> LockOwner | None:
        """See ``StateStore.holder``: the exclusive holder, else the first shared one."""
        with self._changed:
            return self._holder(name)

    def break_lock(self, name: str) -> None:
        """See ``StateStore.break_lock`` (``operation``: its component locks too)."""
        with self._changed:
            for held in list(self._held):
                if held == name or parent_lock(held) == name:
                    self._held.pop(held, None)
            self._changed.notify_all()


def _copy(event: AuditEvent) -> AuditEvent:
    """A reader's own copy, so editing what it got cannot rewrite the log."""
    return attrs.evolve(event, details=copy.deepcopy(event.details))
