"""What the state-store conformance suite builds its records and writes from.

Every timestamp is a fixed ISO 8601 UTC string in lockgate's format (:func:`at`), so
ordering by time is deterministic; the writes are made as the operations make them (a
stage records a revision with its component and event, a move compares and swaps).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pytest

from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.moves import store_move_with_events
from lockgate.contracts.state import (
    Approval,
    AuditEvent,
    ComponentRecord,
    Intent,
    Pointer,
    PointerChange,
    RevisionRecord,
    StateStore,
)
from lockgate.errors import ConflictError

__all__ = ["S", "_component", "_event", "_mixed_writes", "_move", "_revision", "_stage", "at"]

S = ComponentStatus


def at(minute: int, second: int = 0) -> str:
    """A fixed timestamp, ``2026-11-20T10:MM:SS.000000+00:00`` (sorts as time does)."""
    return f"2026-11-20T10:{minute:02d}:{second:02d}.000000+00:00"


def _component(
    ref: str,
    *,
    latest: str | None = "r1",
    status: ComponentStatus = S.STAGED,
    component_type: str = "scripts",
    updated_at: str | None = None,
) -> ComponentRecord:
    workspace, component_id = ref.split(":")
    return ComponentRecord(
        component=ref,
        workspace=workspace,
        component_id=component_id,
        component_type=component_type,
        status=status,
        latest_revision=latest,
        updated_at=updated_at or at(0),
    )


def _revision(
    ref: str,
    revision: str,
    *,
    created_at: str,
    parent: str | None = None,
    actor: str = "alice",
    stage: str = "development",
    files: int = 1,
    size: int = 10,
) -> RevisionRecord:
    return RevisionRecord(
        component=ref,
        revision=revision,
        created_at=created_at,
        actor=actor,
        stage=stage,
        files=files,
        size=size,
        parent=parent,
    )


def _event(
    action: str,
    when: str,
    *,
    actor: str = "alice",
    component: str | None = None,
    stage: str | None = None,
    revision: str | None = None,
    previous_revision: str | None = None,
    reason: str | None = None,
    details: dict[str, object] | None = None,
    outcome: str = "ok",
) -> AuditEvent:
    return AuditEvent(
        at=when,
        actor=actor,
        action=action,
        component=component,
        stage=stage,
        revision=revision,
        previous_revision=previous_revision,
        reason=reason,
        details=dict(details or {}),
        outcome=outcome,
    )


def _stage(
    store: StateStore,
    ref: str,
    revision: str,
    when: str,
    *,
    parent: str | None = None,
    status: ComponentStatus = S.STAGED,
    component_type: str = "scripts",
    actor: str = "alice",
    stage: str = "development",
) -> int:
    """Record ``revision`` of ``ref`` as a stage operation would; return the event's seq."""
    return store.record_revision(
        _revision(ref, revision, created_at=when, parent=parent, actor=actor, stage=stage),
        _component(
            ref,
            latest=revision,
            status=status,
            component_type=component_type,
            updated_at=when,
        ),
        _event(
            "stage",
            when,
            actor=actor,
            component=ref,
            stage=stage,
            revision=revision,
            previous_revision=parent,
        ),
    )


def _move(
    store: StateStore,
    stage: str,
    ref: str,
    revision: str | None,
    when: str,
    *,
    expected: int,
    action: str = "promote",
    actor: str = "alice",
    reason: str | None = None,
    status: ComponentStatus | None = None,
    before: Sequence[AuditEvent] | None = None,
    status_from: Collection[ComponentStatus] | None = None,
) -> Pointer:
    """Move ``ref``'s pointer in ``stage`` as the lifecycle does (with ``before`` or
    ``status_from``: with those events first, setting the status only from one of
    ``status_from``, through ``MoveWithEvents``, which the store must offer)."""
    component_id = ref.split(":")[1]
    current = store.pointer(stage, component_id)
    previous = current.revision if current else None
    change = PointerChange(
        stage=stage,
        component_id=component_id,
        component=ref,
        revision=revision,
        previous_revision=previous,
        generation=expected + 1,
        at=when,
        actor=actor,
        action=action,
        reason=reason,
    )
    event = _event(
        action,
        when,
        actor=actor,
        component=ref,
        stage=stage,
        revision=revision,
        previous_revision=previous,
        reason=reason,
        details={"generation": expected + 1},
    )
    if before is not None or status_from is not None:
        moves = store_move_with_events(store)
        assert moves is not None, "the store offers no MoveWithEvents"
        return moves.move_pointer_after(
            before or (),
            change,
            expected_generation=expected,
            status=status,
            event=event,
            status_from=status_from,
        )
    return store.move_pointer(change, expected_generation=expected, status=status, event=event)


def _mixed_writes(store: StateStore) -> None:
    """One of every kind of write, including refused and failed attempts."""
    _stage(store, "alice:etl", "r1", at(1))
    _stage(store, "bob:report", "q1", at(2), component_type="notebooks")
    store.set_status("alice:etl", S.STAGED, S.APPROVED, _event("approve", at(3)))
    store.add_approval(
        Approval("alice:etl", "r1", "carol", "approve", at(4), stage="staging"),
        _event("approve", at(4), actor="carol", component="alice:etl", revision="r1"),
    )
    _move(store, "staging", "alice:etl", "r1", at(5), expected=0, status=S.PROMOTED)
    store.append_event(_event("promote", at(6), component="bob:report", outcome="failed"))
    with pytest.raises(ConflictError):
        _move(store, "staging", "alice:etl", "r1", at(7), expected=0)
    store.open_intent(Intent("i1", "promote", "alice", at(8), {"stage": "staging"}))
    _stage(store, "alice:etl", "r2", at(9), parent="r1")
    _move(store, "staging", "alice:etl", None, at(10), expected=1, action="rollback")
    store.close_intent("i1", "completed")
    store.append_event(
        _event("unlock", at(11), reason="stale lock", details={"pid": 42, "paths": ["a", "b"]})
    )
