"""Recover: settle the operations a crash interrupted.

A switch writes an intent before it touches a target and closes it after the record; an
open intent therefore means its process died in between. Recovery takes the operation
lock — so the intent's owner is certainly gone — and settles each: when the pointer
already moved, the targets are brought to it (completed); otherwise they are put back to
what the pointer says (undone). :func:`settle` is the first step of every operation, once
per session; ``lockgate recover`` runs :func:`recover_pending` on its own.
"""

from __future__ import annotations

from lockgate.contracts.clock import now_iso
from lockgate.contracts.records import record
from lockgate.contracts.refs import (
    ComponentRef,
    check_revision,
    name_problem,
    short,
)
from lockgate.contracts.state import AuditEvent, EventFilter, Intent, corrupt_record
from lockgate.core.failpoints import failpoint
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import (
    InputError,
)
from lockgate.operations.revisions import prepare, revision_handle

__all__ = ["Recovered", "recover_pending", "settle"]


@record
class Recovered:
    """One interrupted operation, settled."""

    intent: str
    operation: str
    stage: str
    component_id: str
    outcome: str  # "completed" or "undone"
    revision: str | None

    def summary(self) -> str:
        rev = short(self.revision) if self.revision else "nothing"
        return (
            f"interrupted {self.operation} of {self.component_id} in {self.stage}: "
            f"{self.outcome} ({self.stage} has {rev})"
        )


def recover_pending(session: Session | Project, *, locked: bool = False) -> list[Recovered]:
    """Settle every open intent (an operation a crash interrupted); cheap when none is."""
    session = as_session(session)
    state = session.state()
    if not state.open_intents():
        return []
    if not locked:
        with session.lock("recover"):
            return _recover(session)
    return _recover(session)


def _intent_names(intent: Intent) -> tuple[str, str, str, str | None, int]:
    """Stage, component id, component, revision and generation of an intent, checked like
    user input before recovery joins them to a path (the state store may have been edited)."""
    payload = intent.payload
    kind = f"intent {intent.id!r}"
    names = [payload.get("stage"), payload.get("component_id")]
    for field, value in zip(("stage", "component_id"), names, strict=True):
        problem = name_problem(value)
        if problem is not None:
            raise corrupt_record(kind, f"payload {field}", value, problem)
    component = payload.get("component")
    try:
        ComponentRef.parse(str(component))
    except InputError:
        raise corrupt_record(kind, "payload component", component, "is not WORKSPACE:ID") from None
    revision = payload.get("revision")
    if revision is not None:
        try:
            revision = check_revision(revision)
        except InputError:
            raise corrupt_record(
                kind, "payload revision", revision, "is not a revision id"
            ) from None
    generation = payload.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise corrupt_record(kind, "payload generation", generation, "is not a positive integer")
    return str(names[0]), str(names[1]), str(component), revision, generation


def _recover(session: Session) -> list[Recovered]:
    state = session.state()
    settled = []
    for intent in state.open_intents():
        stage, component_id, component, intended, generation = _intent_names(intent)
        if stage not in session.config.stages:
            state.close_intent(intent.id, "undone")
            continue
        pointer = state.pointer(stage, component_id)
        now = pointer.revision if pointer else None
        moved = pointer is not None and pointer.generation >= generation
        outcome = "completed" if moved and now == intended else "undone"
        handle = revision_handle(session, now) if now else None
        for target in session.targets(stage):
            prepared = prepare(target, component_id, handle)  # also sweeps leftovers
            if target.deployed().get(component_id) == now:
                target.abort(prepared)
            else:
                target.commit(prepared)
        failpoint("recover.after_switch")
        # One recover event per intent, even when a recovery died between writing it and
        # closing the intent (the next one decides the same from the same pointer).
        earlier = state.events(EventFilter(component=component, stage=stage, action="recover"))
        if not any(e.details.get("intent") == intent.id for e in earlier):
            state.append_event(
                AuditEvent(
                    at=now_iso(),
                    actor=session.actor,
                    action="recover",
                    component=component,
                    stage=stage,
                    revision=now,
                    details={
                        "intent": intent.id,
                        "operation": intent.operation,
                        "interrupted_owner": intent.owner,
                        "outcome": outcome,
                        "intended_revision": intended,
                    },
                )
            )
        failpoint("recover.after_event")
        state.close_intent(intent.id, "completed" if outcome == "completed" else "undone")
        settled.append(Recovered(intent.id, intent.operation, stage, component_id, outcome, now))
    return settled


def settle(session: Session) -> list[Recovered]:
    """Settle interrupted operations, once per session: the first step of an operation.

    Every operation calls this before it reads the state, so every command finds the
    project consistent; a project opened with ``recover_on_open=False`` skips it.
    """
    if session.settled is None:
        # Marked first: a recovery that fails (a damaged intent) is reported by the
        # operation that tried it, and not tried again by every later step of the session.
        session.settled = []
        if session.project.recover_on_open:
            session.settled = recover_pending(session)
    return list(session.settled)
