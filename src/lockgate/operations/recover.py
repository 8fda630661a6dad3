"""Recover: settle the operations a crash interrupted.

A switch writes an intent before it touches a target and closes it after the record; an
open intent whose owner no longer holds its locks therefore means its process died in
between. Recovery takes the locks the intent was written under — the operation lock, and
the intent's component locks (see :func:`recover_pending`) — so the intent's owner is
certainly gone, and settles each: when the pointer
already moved, the targets are brought to it (completed); otherwise they are put back to
what the pointer says (undone). :func:`settle` is the first step of every operation that
changes something, once per session; ``lockgate recover`` runs :func:`recover_pending` on
its own. Operations that only read (ls, log, history, summary, stats, verify, diff, the
audit check) never recover: they call :func:`note_pending`, which warns when recovery is
pending, so one failing target cannot stop anyone from looking at the project. A target
that fails during recovery is named: "recovery pending: target X of STAGE failing: …".
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Sequence

from lockgate.contracts.clock import now_iso
from lockgate.contracts.locks import LockOwner, component_lock, hostname
from lockgate.contracts.records import record
from lockgate.contracts.refs import (
    ComponentRef,
    check_revision,
    name_problem,
    short,
)
from lockgate.contracts.state import AuditEvent, EventFilter, Intent, corrupt_record
from lockgate.contracts.target import GroupSwitch, RevisionHandle, target_group_switch
from lockgate.core.failpoints import failpoint
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import (
    EnvironmentFault,
    InputError,
    LockedError,
    LockgateError,
    PluginError,
    environment_fault,
)
from lockgate.operations.lifecycle import move_pointer
from lockgate.operations.pipeline_report import UNDO_ACTION, RunReport, record_run
from lockgate.operations.revisions import prepare, revision_handle

__all__ = [
    "Recovered",
    "bring_group",
    "bring_targets",
    "group_targets",
    "holding",
    "note_pending",
    "recover_pending",
    "settle",
]


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
        if self.operation == "pipeline":
            return (
                f"interrupted run of pipeline {self.component_id} in {self.stage}: {self.outcome}"
            )
        rev = short(self.revision) if self.revision else "nothing"
        return (
            f"interrupted {self.operation} of {self.component_id} in {self.stage}: "
            f"{self.outcome} ({self.stage} has {rev})"
        )


def recover_pending(
    session: Session | Project, *, locked: bool = False, thorough: bool = False
) -> list[Recovered]:
    """Settle every open intent whose owner is gone (an operation a crash interrupted);
    cheap when there is none.

    An intent belongs to a live operation while its owner holds the locks it was written
    under: the component lock of each component it names (a switch on a stage whose
    targets switch components concurrently), or the operation lock exclusively (every
    other switch, a pipeline run, a removal). So an intent is settled under the project's
    operation lock (held exclusively: every intent is dead; or shared) and, when shared,
    only when the component lock of each of its components is held by this session or can
    be taken at once; an intent whose component lock is busy belongs to a live switch (or
    to one that will settle it itself) and is left alone. Unless ``thorough`` (``lockgate
    recover``) or the operation lock is held exclusively, an intent whose owner is
    another process of this host that still runs is left alone without asking the store.
    ``locked``: the caller holds its locks in this session (the operation lock is then
    not taken again).

    The intents this process holds open (a pipeline run in progress, see
    :func:`holding`) are not interrupted and are left alone."""
    session = as_session(session)
    state = session.state()
    held = _HELD.get()
    intents = [i for i in state.open_intents() if i.id not in held]
    if intents and session.holds("operation", exclusive=True):
        return _recover(session, intents)  # no switch runs: every intent is dead
    if not thorough:
        intents = [i for i in intents if not _running_elsewhere(i)]
    if not intents:
        return []
    if locked and session.holds("operation"):
        return _recover_dead(session, intents)
    with session.lock("recover", shared=True):
        return _recover_dead(session, intents)


def _running_elsewhere(intent: Intent) -> bool:
    """Whether the intent's owner (``pid@host``) is another process of this host that
    still runs (its switch is most likely in progress)."""
    pid, _, host = intent.owner.partition("@")
    if host != hostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    return LockOwner(pid=int(pid), host=host).within_lease()


def _intent_components(intent: Intent) -> list[str]:
    """The component ids an intent names (checked like user input)."""
    if intent.operation == "pipeline":
        return [cid for _, cid, _, _ in _run_members(intent)[2]]
    return [_intent_names(intent)[1]]


def _recover_dead(session: Session, intents: list[Intent]) -> list[Recovered]:
    """Under the operation lock held shared: settle each intent whose components' locks
    this session holds or can take at once (see :func:`recover_pending`)."""
    dead = []
    with contextlib.ExitStack() as stack:
        for intent in intents:
            wanted = [c for c in _intent_components(intent) if not session.holds(component_lock(c))]
            try:
                stack.enter_context(session.lock("recover", components=wanted, timeout=0))
            except LockedError:
                continue  # a live switch holds one of them
            dead.append(intent)
        return _recover(session, dead) if dead else []


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


@contextlib.contextmanager
def holding(intent_id: str) -> Iterator[None]:
    """Mark ``intent_id`` as this process's own while the block runs: the switches a
    pipeline run makes settle interrupted intents, never the run's."""
    token = _HELD.set(_HELD.get() | {intent_id})
    try:
        yield
    finally:
        _HELD.reset(token)


_HELD: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "lockgate_held_intents", default=frozenset()
)


def _recover(session: Session, intents: list[Intent]) -> list[Recovered]:
    """Settle each switch's intent, then each pipeline run's (whose members' switches
    are settled by then)."""
    settled = _recover_switches(session, [i for i in intents if i.operation != "pipeline"])
    for intent in intents:
        if intent.operation == "pipeline":
            settled.extend(settle_run(session, intent))
    return settled


def _recover_switches(session: Session, intents: list[Intent]) -> list[Recovered]:
    state = session.state()
    settled = []
    for intent in intents:
        stage, component_id, component, intended, generation = _intent_names(intent)
        if stage not in session.config.stages:
            state.close_intent(intent.id, "undone")
            continue
        pointer = state.pointer(stage, component_id)
        now = pointer.revision if pointer else None
        moved = pointer is not None and pointer.generation >= generation
        outcome = "completed" if moved and now == intended else "undone"
        handle = revision_handle(session, now) if now else None
        bring_targets(session, stage, component_id, now, handle)
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
                        **session.identity.details(),
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


def bring_targets(
    session: Session, stage: str, component_id: str, now: str | None, handle: RevisionHandle | None
) -> None:
    """Bring every target of ``stage`` to ``now``; a target that fails is named."""
    kinds = [t.kind for t in session.config.stages[stage].target_list()]
    failing = ", ".join(kinds)
    try:
        targets = session.targets(stage)
        for failing, target in zip(kinds, targets, strict=True):  # noqa: B007 - named below
            prepared = prepare(target, component_id, handle)  # also sweeps leftovers
            if target.deployed().get(component_id) == now:
                target.abort(prepared)
            else:
                target.commit(prepared)
    except Exception as exc:
        error = _target_failing(stage, failing, exc)
        if error is exc:
            raise
        raise error from exc


def group_targets(session: Session, stage: str) -> list[GroupSwitch] | None:
    """The targets of ``stage`` as group switches (``GroupSwitch``), when every one of
    them is one; else None."""
    found = [target_group_switch(t) for t in session.targets(stage)]
    if not found or any(g is None for g in found):
        return None
    return [g for g in found if g is not None]


def bring_group(session: Session, stage: str, component_ids: Sequence[str]) -> bool:
    """Bring the targets of ``stage`` to what the pointers of ``component_ids`` say, in
    one group switch per target (a reader sees all of them move at once); False, with
    nothing done, when a target cannot switch a group. A target that fails is named."""
    groups = group_targets(session, stage)
    if groups is None:
        return False
    state = session.state()
    wanted: dict[str, str | None] = {}
    for cid in component_ids:
        pointer = state.pointer(stage, cid)
        wanted[cid] = pointer.revision if pointer else None
    kinds = [t.kind for t in session.config.stages[stage].target_list()]
    for kind, target, group in zip(kinds, session.targets(stage), groups, strict=True):
        try:
            deployed = target.deployed()
            changes = {
                cid: revision_handle(session, rev) if rev else None
                for cid, rev in wanted.items()
                if deployed.get(cid) != rev
            }
            if changes:
                group.commit_group(group.prepare_group(changes))
        except Exception as exc:
            error = _target_failing(stage, kind, exc)
            if error is exc:
                raise
            raise error from exc
    return True


def _target_failing(stage: str, kind: str, exc: Exception) -> Exception:
    """``exc``, a target's failure while recovering, as one line saying that recovery is
    pending, which target fails, and what to do (a kernel bug is left as it is)."""
    what = f"recovery pending: target {kind!r} of {stage} failing"
    then = (
        "then run 'lockgate recover' (commands that only read, such as ls, log and verify, "
        "keep working meanwhile)"
    )
    fault = environment_fault(exc)
    if fault is not None:
        return EnvironmentFault(f"{what}: {fault.message.removesuffix(' and retry')}, {then}")
    if isinstance(exc, PluginError):
        return PluginError(f"{what}: {exc.message}; fix or disable the plugin, {then}")
    if isinstance(exc, LockgateError):  # the same error, told what it stops
        exc.message = f"{what}: {exc.message}; fix the target, {then}"
        exc.args = (exc.message,)
    return exc


def note_pending(session: Session) -> None:
    """What an operation that only reads does instead of :func:`settle`: nothing, but one
    warning when interrupted operations wait for recovery and no live process holds the
    operation lock (one that does is switching right now, not interrupted)."""
    if session.settled is not None or not session.project.recover_on_open:
        return
    state = session.state()
    intents = state.open_intents()
    holder = getattr(state, "holder", None)
    if not intents or (callable(holder) and holder("operation") is not None):
        return
    shown = ", ".join(_described(i) for i in intents[:3])
    more = f" and {len(intents) - 3} more" if len(intents) > 3 else ""
    session.project.warn(
        f"recovery pending: {len(intents)} interrupted operation(s) ({shown}{more}) not "
        "settled, so a stage may not show what the state says; run 'lockgate recover'"
    )


def _described(intent: Intent) -> str:
    """``promote of etl in staging``, naming only what is a valid name (a damaged or
    crafted intent is refused by recovery, not printed by a warning)."""
    names = [intent.payload.get(key) for key in ("component_id", "stage")]
    cid, stage = ("?" if name_problem(n) else str(n) for n in names)
    if intent.operation == "pipeline":
        name = intent.payload.get("pipeline")
        return f"pipeline run of {'?' if name_problem(name) else name}"
    known = ("promote", "rollback", "remove")
    operation = intent.operation if intent.operation in known else "operation"
    return f"{operation} of {cid} in {stage}"


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


# --------------------------------------------------------------------------- pipeline runs


def _run_members(intent: Intent) -> tuple[str, str, list[tuple[str, str, str | None, str | None]]]:
    """Pipeline name, stage and members (component, id, from, to) of a run's intent,
    checked like user input (the state store may have been edited)."""
    payload = intent.payload
    kind = f"intent {intent.id!r}"
    for field in ("pipeline", "stage"):
        problem = name_problem(payload.get(field))
        if problem is not None:
            raise corrupt_record(kind, f"payload {field}", payload.get(field), problem)
    members = payload.get("members")
    if not isinstance(members, list):
        raise corrupt_record(kind, "payload members", members, "is not a list")
    checked = []
    for member in members:
        if not isinstance(member, dict):
            raise corrupt_record(kind, "payload members", member, "is not a mapping")
        try:
            ref = ComponentRef.parse(str(member.get("component")))
            old, new = (
                None if member.get(k) is None else check_revision(member.get(k))
                for k in ("from", "to")
            )
        except InputError:
            raise corrupt_record(kind, "payload members", member, "is not a member") from None
        checked.append((str(ref), ref.component_id, old, new))
    return str(payload["pipeline"]), str(payload["stage"]), checked


def settle_run(session: Session, intent: Intent) -> list[Recovered]:
    """Finish or undo a pipeline run a crash interrupted: all or nothing.

    Its members' own switches are settled first, so each member's targets match its
    pointer. When every member's pointer holds the run's revision the run completed
    (only its record was missing); otherwise every member whose pointer moved is moved
    back to the revision it had before the run, and every member's targets are brought to
    its pointer. Each step can be repeated: a recovery killed midway is finished by the
    next one.
    """
    state = session.state()
    name, stage, members = _run_members(intent)
    if stage not in session.config.stages:
        state.close_intent(intent.id, "undone")
        return []
    run = str(intent.payload.get("run", intent.id))
    now = {cid: _current(session, stage, cid) for _, cid, _, _ in members}
    undoing = any(
        e.details.get("run") == run
        for e in state.events(EventFilter(action=UNDO_ACTION, stage=stage))
    )
    complete = not undoing and all(now[cid] == new for _, cid, _, new in members)
    for component, cid, old, _new in reversed(members):
        if complete or now[cid] == old:
            continue
        move_pointer(
            session,
            stage=stage,
            component=component,
            revision=old,
            action="rollback",
            reason=f"pipeline {name}: run interrupted, undone by recovery",
            details={"pipeline": name, "run": run, "intent": intent.id, "recovered": True},
            strict=False,
        )
        failpoint("recover.pipeline_after_pointer")
    if not bring_group(session, stage, [cid for _, cid, _, _ in members]):
        for _, cid, _, _ in members:
            revision = _current(session, stage, cid)
            handle = revision_handle(session, revision) if revision else None
            bring_targets(session, stage, cid, revision, handle)
    report = RunReport(name, run, stage, str(intent.payload.get("kind", "promote")))
    for component, _cid, old, new in members:
        status = ("completed" if complete else "rolled_back") if old != new else "current"
        report.add_step(component, str(report.kind), old, new, status)
    outcome = "completed" if complete else "rolled_back"
    report.finish(outcome, None if complete else f"interrupted (owner {intent.owner}); undone")
    record_run(state, session.actor, report.to_dict(), identity=session.identity)
    state.close_intent(intent.id, "completed" if complete else "undone")
    return [
        Recovered(intent.id, "pipeline", stage, name, "completed" if complete else "undone", None)
    ]


def _current(session: Session, stage: str, component_id: str) -> str | None:
    pointer = session.state().pointer(stage, component_id)
    return pointer.revision if pointer else None
