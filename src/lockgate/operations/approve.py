"""The approve and reject operations: decisions bound to one revision's digest.

An approval counts only for the exact revision it names, so restaging (a new digest)
voids it. None of the revision's authors (:func:`authors`) can approve it. A rejection
needs a reason and belongs to the digest for good: restaging the same files brings the
rejection back (status ``rejected``), and neither ``promote --force`` nor ``rollback``
puts a rejected revision into a stage. Both are recorded in the approval history and the
audit log, in one transaction with the status change they cause, under the operation
lock, so that a promotion which re-checks rejections under that lock cannot miss one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from lockgate.contracts.clock import now_iso
from lockgate.contracts.history import LineageStep, lineage_of
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.records import record
from lockgate.contracts.refs import ComponentRef, check_text, short
from lockgate.contracts.state import Approval, AuditEvent
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import InputError, LockgateError, NotFoundError, RefusedError
from lockgate.operations.lifecycle import TRANSITIONS
from lockgate.operations.recover import settle
from lockgate.operations.resolve import resolve_revision
from lockgate.operations.revisions import revision_spec
from lockgate.operations.signatures import signed_approval

if TYPE_CHECKING:
    from lockgate.contracts.state import StateStore

__all__ = [
    "DecisionResult",
    "authors",
    "authors_of",
    "decide",
    "rejection",
    "revision_owners",
]


@record
class DecisionResult:
    """What ``approve`` or ``reject`` recorded."""

    component: str
    revision: str
    decision: str
    actor: str
    recorded: bool
    status: str
    approvals: tuple[str, ...]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def summary(self) -> str:
        verb = "approved" if self.decision == "approve" else "rejected"
        if not self.recorded:
            return f"{self.component}: {short(self.revision)} {self.note}"
        who = f"; approvals: {', '.join(self.approvals)}" if self.approvals else ""
        return (
            f"{self.component}: {short(self.revision)} {verb} by {self.actor} ({self.status}{who})"
        )


def decide(
    session: Session | Project,
    ref: ComponentRef | str,
    decision: Literal["approve", "reject"],
    *,
    revision: str | None = None,
    comment: str | None = None,
    reason: str | None = None,
    sign_key: Path | None = None,
    signature: str | None = None,
    signed_stage: str | None = None,
) -> DecisionResult:
    """Approve or reject ``revision`` of ``ref`` (default: its latest revision).

    An approval is signed with ``sign_key`` (an SSH private key) or carries a
    ``signature`` made elsewhere, for ``signed_stage`` (default: the next stage the
    revision climbs to); it is verified against ``allowed_signers`` before it is
    recorded (see :mod:`lockgate.operations.signatures`)."""
    session = as_session(session)
    if isinstance(ref, str):
        ref = ComponentRef.parse(ref)
    if decision == "reject" and not (reason or comment):
        raise InputError(f"reject {ref}: give a reason with --reason TEXT")
    check_text("--reason", reason)
    check_text("--comment", comment)
    actor = session.actor
    settle(session)
    state = session.state()
    record = state.component(str(ref))
    if record is None or record.latest_revision is None:
        raise NotFoundError(f"{ref} has never been staged; run 'lockgate stage {ref}' first")
    chosen = resolve_revision(session, ref, revision or "latest")
    if decision == "approve":
        owners = revision_owners(session, chosen)
        who = authors(state, str(ref), chosen, owners, session.stage_names)
        if actor in who:
            raise RefusedError(
                f"{actor} is an author of {ref} {short(chosen)} (authors: {', '.join(who)}) "
                "and cannot approve it; ask another reviewer"
            )
    signed: dict[str, object] = {}
    if sign_key is not None or signature is not None:
        if decision != "approve":
            raise InputError(f"reject {ref}: only an approval is signed; drop --sign")
        signed = signed_approval(
            session, str(ref), chosen, key=sign_key, signature=signature, stage=signed_stage
        )
    # Decisions serialize with promotions and rollbacks: a switch re-checks rejections
    # under this lock before it touches a target, so a rejection either lands before that
    # check (and stops the switch) or after the switch is recorded.
    with session.lock(decision):
        return _decide(session, ref, decision, chosen, actor, comment, reason, signed)


def _decide(
    session: Session,
    ref: ComponentRef,
    decision: Literal["approve", "reject"],
    chosen: str,
    actor: str,
    comment: str | None,
    reason: str | None,
    signed: dict[str, object],
) -> DecisionResult:
    state = session.state()
    record = state.component(str(ref))
    assert record is not None  # checked by the caller; components are never deleted
    existing = state.approvals(str(ref), chosen)
    if (
        decision == "approve"
        and not signed
        and any(a.actor == actor and a.decision == "approve" for a in existing)
    ):
        return _result(
            ref, chosen, decision, actor, False, record.status, existing, "already approved by you"
        )
    # A decision is recorded for any revision; it moves the component's status only when
    # it concerns the latest revision and the status machine allows it.
    status_move = None
    sources, target = TRANSITIONS[decision]
    if chosen == record.latest_revision and record.status in sources and record.status != target:
        status_move = (record.status, target)
    at = now_iso()
    text = comment if decision == "approve" else (reason or comment)
    approval = Approval(
        component=str(ref), revision=chosen, actor=actor, decision=decision, at=at, comment=text
    )
    event = AuditEvent(
        at=at,
        actor=actor,
        action=decision,
        component=str(ref),
        revision=chosen,
        reason=reason,
        details={
            **({"comment": comment} if comment else {}),
            **signed,
            **session.identity.details(),
        },
    )
    state.add_approval(approval, event, status=status_move)
    status = status_move[1] if status_move else record.status
    return _result(ref, chosen, decision, actor, True, status, [*existing, approval], None)


def rejection(state: StateStore, component: str, revision: str) -> Approval | None:
    """The first rejection of ``revision`` of ``component``, if any: it stands for good."""
    return next((a for a in state.approvals(component, revision) if a.decision == "reject"), None)


def revision_owners(session: Session, revision: str) -> tuple[str, ...]:
    """The ``owners`` that ``component.yaml`` of ``revision`` declares (none without one)."""

    try:
        return tuple(revision_spec(session, revision).owners)
    except LockgateError:
        return ()  # a broken component.yaml is the manifest validator's to report


def authors(
    state: StateStore,
    component: str,
    revision: str,
    owners: Iterable[str] = (),
    stages: Iterable[str] | None = None,
) -> tuple[str, ...]:
    """Who counts as an author of ``revision`` of ``component`` (sorted).

    The owners its ``component.yaml`` declares, every actor who staged it (each time,
    not only the first), and every actor who staged one of the revisions it descends
    from since the last revision of the component that went live in a stage: their
    changes are in it. An automation that restages files (``sync``, ``watch``) adds
    itself and never replaces anyone. ``stages``: the project's stages (None: any).
    """
    ladder = None if stages is None else tuple(stages)
    return authors_of(lineage_of(state, component, revision, ladder), owners)


def authors_of(steps: Iterable[LineageStep], owners: Iterable[str] = ()) -> tuple[str, ...]:
    """The authors (sorted) that a lineage (``lineage_of``) and declared owners make."""
    found = set(owners)
    for step in steps:
        found.update(step.stagers)
        if step.record is not None:
            found.add(step.record.actor)
    return tuple(sorted(found))


def _result(
    ref: ComponentRef,
    revision: str,
    decision: str,
    actor: str,
    recorded: bool,
    status: ComponentStatus,
    decisions: list[Approval],
    note: str | None,
) -> DecisionResult:
    return DecisionResult(
        component=str(ref),
        revision=revision,
        decision=decision,
        actor=actor,
        recorded=recorded,
        status=status.value,
        approvals=tuple(sorted({a.actor for a in decisions if a.decision == "approve"})),
        note=note,
    )
