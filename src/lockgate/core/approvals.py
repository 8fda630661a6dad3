"""The approve and reject operations: decisions bound to one revision's digest.

An approval counts only for the exact revision it names, so restaging (a new digest)
voids it. The revision's author cannot approve it. A rejection needs a reason and blocks
the revision (the ``approvals`` validator reports it). Both are recorded in the approval
history and the audit log, in one transaction with the status change they cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from lockgate.core.contracts import Approval, AuditEvent
from lockgate.core.lifecycle import TRANSITIONS, now_iso
from lockgate.core.models import ComponentStatus
from lockgate.core.records import record
from lockgate.core.refs import ComponentRef, short
from lockgate.errors import InputError, NotFoundError, RefusedError

if TYPE_CHECKING:
    from lockgate.core.project import Project

__all__ = ["DecisionResult", "decide"]


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
    project: Project,
    ref: ComponentRef | str,
    decision: Literal["approve", "reject"],
    *,
    revision: str | None = None,
    comment: str | None = None,
    reason: str | None = None,
) -> DecisionResult:
    """Approve or reject ``revision`` of ``ref`` (default: its latest revision)."""
    from lockgate.core.listing import resolve_revision

    if isinstance(ref, str):
        ref = ComponentRef.parse(ref)
    if decision == "reject" and not (reason or comment):
        raise InputError(f"reject {ref}: give a reason with --reason TEXT")
    state = project.state()
    record = state.component(str(ref))
    if record is None or record.latest_revision is None:
        raise NotFoundError(f"{ref} has never been staged; run 'lockgate stage {ref}' first")
    chosen = resolve_revision(project, ref, revision or "latest")
    author = next(r.actor for r in state.revisions(str(ref)) if r.revision == chosen)
    actor = project.actor
    if decision == "approve" and actor == author:
        raise RefusedError(
            f"{actor} staged {ref} {short(chosen)} and cannot approve it; ask another reviewer"
        )
    existing = state.approvals(str(ref), chosen)
    if decision == "approve" and any(
        a.actor == actor and a.decision == "approve" for a in existing
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
        details={"comment": comment} if comment else {},
    )
    state.add_approval(approval, event, status=status_move)
    status = status_move[1] if status_move else record.status
    return _result(ref, chosen, decision, actor, True, status, [*existing, approval], None)


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
