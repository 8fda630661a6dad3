"""The component status machine, and moving stage pointers by compare-and-swap.

Statuses (``ComponentStatus``) and the actions that move between them::

    pending ──stage──▶ staged ──approve──▶ approved ──promote──▶ promoted ──rollback──▶ rolled_back
                          │  ╲──reject──▶ rejected ◀──reject──╯        ▲                   │
                          ╰──promote──────────────────────────────────╯◀──promote──────────╯

``stage`` is allowed from every status (a new revision starts over); ``reject`` from
staged, approved and promoted; ``promote`` from staged, approved, promoted (further up the
ladder) and rolled_back (roll forward); ``rollback`` from promoted and rolled_back;
``retire`` (``lockgate remove``, once the component is out of every stage) from every
status but retired, and only ``stage`` leads out of retired again. Whether a promotion is
*ready* (approvals, validators) is for the gates to say, not this table. A pointer move
whose action is not in the table (``remove``: taking a component out of one stage) never
moves the status.
"""

from __future__ import annotations

from collections.abc import Sequence

from lockgate.contracts.clock import now_iso
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.moves import store_move_with_events
from lockgate.contracts.read_batch import Ask
from lockgate.contracts.state import (
    AuditEvent,
    ComponentRecord,
    Pointer,
    PointerChange,
    StateStore,
)
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import ConflictError, NotFoundError, RefusedError
from lockgate.operations.read_memo import read_together

__all__ = [
    "TRANSITIONS",
    "allowed_actions",
    "move_pointer",
    "next_stage",
    "next_status",
]

S = ComponentStatus
TRANSITIONS: dict[str, tuple[frozenset[ComponentStatus], ComponentStatus]] = {
    "stage": (frozenset(S), S.STAGED),
    "approve": (frozenset({S.STAGED, S.APPROVED}), S.APPROVED),
    "reject": (frozenset({S.STAGED, S.APPROVED, S.PROMOTED}), S.REJECTED),
    "promote": (frozenset({S.STAGED, S.APPROVED, S.PROMOTED, S.ROLLED_BACK}), S.PROMOTED),
    "rollback": (frozenset({S.PROMOTED, S.ROLLED_BACK}), S.ROLLED_BACK),
    "retire": (frozenset(S) - {S.RETIRED}, S.RETIRED),
}


def allowed_actions(status: ComponentStatus) -> list[str]:
    """The actions allowed from ``status``."""
    return [action for action, (sources, _) in TRANSITIONS.items() if status in sources]


def next_status(component: str, status: ComponentStatus, action: str) -> ComponentStatus:
    """The status after ``action``; a :class:`RefusedError` naming what is allowed if not."""
    sources, target = TRANSITIONS[action]
    if status not in sources:
        allowed = ", ".join(allowed_actions(status)) or "nothing"
        raise RefusedError(
            f"{component} is {status.value}: cannot {action}; allowed from {status.value}: "
            f"{allowed}"
        )
    return target


def move_pointer(
    session: Session | Project,
    *,
    stage: str,
    component: str,
    revision: str | None,
    action: str,
    expected_generation: int | None = None,
    reason: str | None = None,
    details: dict[str, object] | None = None,
    strict: bool = True,
    at: str | None = None,
    before: Sequence[AuditEvent] = (),
    seen: tuple[ComponentRecord, Pointer | None] | None = None,
) -> Pointer:
    """Make ``revision`` current for ``component`` in ``stage`` (None removes it).

    The component's status moves by ``action`` (checked against the status machine).
    With ``strict=False`` an action the status does not allow leaves the status as it is
    instead of being refused: the pointer of a stage may move for a revision that is not
    the component's latest (whose standing the status describes).
    ``expected_generation`` is the pointer generation the caller based its decision on;
    when omitted, the generation read here is used, so only a change that lands between
    this read and the write is a conflict. Either way a lost update raises
    :class:`ConflictError` (exit 4), never a silent overwrite. ``before``: audit events
    to record first (a promotion's gate event), in the move's own transaction when the
    store offers ``MoveWithEvents``, else appended just before it. ``seen``: the record
    and the pointer as the caller read them under its locks, not read again when the
    store offers ``MoveWithEvents``, which moves the status from the one it finds."""
    session = as_session(session)
    checked = seen if store_move_with_events(session.state()) is not None else None
    record, current = checked if checked is not None else _read_afresh(session, stage, component)
    state = session.state()
    if strict:
        status: ComponentStatus | None = next_status(component, record.status, action)
    else:
        sources, target = TRANSITIONS.get(action, (frozenset(), record.status))
        status = target if record.status in sources else None
    # Decided by the store, from the status at the move, when it was not read just now.
    status_from, status = (
        TRANSITIONS[action] if checked is not None and action in TRANSITIONS else (None, status)
    )
    component_id = record.component_id
    generation = current.generation if current else 0
    if expected_generation is not None and expected_generation != generation:
        raise ConflictError(
            f"{stage}/{component_id} is at generation {generation}, not {expected_generation}: "
            "another change won; look again and retry"
        )
    at, actor = at or now_iso(), session.actor
    previous = current.revision if current else None
    event = AuditEvent(
        at=at,
        actor=actor,
        action=action,
        component=component,
        stage=stage,
        revision=revision,
        previous_revision=previous,
        reason=reason,
        details={
            "generation": generation + 1,
            **(details or {}),
            **session.identity.details(),
        },
    )
    change = PointerChange(
        stage=stage,
        component_id=component_id,
        component=component,
        revision=revision,
        previous_revision=previous,
        generation=generation + 1,
        at=at,
        actor=actor,
        action=action,
        reason=reason,
    )
    return _record_move(state, before, change, generation, (status, status_from), event)


def _read_afresh(
    session: Session, stage: str, component: str
) -> tuple[ComponentRecord, Pointer | None]:
    """The component's record and its pointer in ``stage``, read now, in one call (the
    status moved from is the one at the record)."""
    reads = [Ask("component", (component,)), Ask("pointer", (stage, component.split(":")[-1]))]
    with read_together(session, reads):
        record = session.state().component(component)
        if record is None:
            raise NotFoundError(f"{component} has never been staged; stage it first")
        return record, session.state().pointer(stage, record.component_id)


def _record_move(
    state: StateStore,
    before: Sequence[AuditEvent],
    change: PointerChange,
    generation: int,
    statuses: tuple[ComponentStatus | None, frozenset[ComponentStatus] | None],
    event: AuditEvent,
) -> Pointer:
    """The move, with ``before`` in its transaction when the store can (else first);
    ``statuses``: the status to set and those it may be set from (None: any)."""
    status, status_from = statuses
    moves = store_move_with_events(state) if before or status_from is not None else None
    if moves is not None:
        return moves.move_pointer_after(
            before,
            change,
            expected_generation=generation,
            status=status,
            event=event,
            status_from=status_from,
        )
    if before:
        state.append_events(before)
    return state.move_pointer(change, expected_generation=generation, status=status, event=event)


def next_stage(session: Session, component: str) -> str:
    """The stage a promotion of ``component`` would enter next.

    Walking up the ladder, the candidate for the first stage is the component's latest
    revision, and for every later stage the revision current in the stage below; the
    answer is the first stage whose current revision is not its candidate (the last
    stage when every rung already holds it).
    """
    state = session.state()
    record = state.component(component)
    if record is None:
        raise NotFoundError(f"{component} has never been staged; stage it first")
    ladder = session.stage_names
    candidate = record.latest_revision
    for stage in ladder:
        pointer = state.pointer(stage, record.component_id)
        current = pointer.revision if pointer else None
        if current != candidate:
            return stage
        candidate = current
    return ladder[-1]
