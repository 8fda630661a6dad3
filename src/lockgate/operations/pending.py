"""Pending approvals: revisions waiting for approvals before they can climb a rung.

A component's latest revision waits in the first stage of the ladder where it is not
live yet (the stage an approval is for, as :func:`~lockgate.operations.signatures.next_stage`
says) when that stage requires approvals (``plugins.approvals``) and the revision has
fewer approvals that count than required. What counts follows the ``approvals``
validator: an approval by one of the revision's authors never counts, and a stage's
allowlist limits who may give one; a rejected revision waits for nothing (it is
rejected for good). Signatures are not checked here: the gate checks them at promotion.
"""

from __future__ import annotations

from typing import Any

import attrs

from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.records import record
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.operations.approve import authors, revision_owners
from lockgate.operations.signatures import next_stage

__all__ = ["PendingApproval", "pending_approvals"]


@record
class PendingApproval:
    """A revision that needs ``required`` approvals to enter ``stage`` and has
    ``approved_by`` (the approvals that count)."""

    component: str
    component_id: str
    revision: str
    stage: str
    required: int
    approved_by: tuple[str, ...]
    authors: tuple[str, ...]
    staged_at: str

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def pending_approvals(session: Session | Project) -> list[PendingApproval]:
    """Every latest revision that waits for approvals, oldest change first."""
    session = as_session(session)
    # The approvals plugin's settings say which stages need approvals; read by duck type,
    # as the operations import no plugin (absent or disabled: no stage needs any).
    settings = session.project.settings.get("approvals")
    for_stage = getattr(settings, "for_stage", None)
    if for_stage is None:
        return []
    state = session.state()
    stages = session.stage_names
    found = []
    for comp in state.components():
        revision = comp.latest_revision
        if revision is None or comp.status == ComponentStatus.REJECTED:
            continue
        if all(
            (p := state.pointer(s, comp.component_id)) is not None and p.revision == revision
            for s in stages
        ):
            continue  # live everywhere: nothing left to approve
        stage = next_stage(session, comp.component, revision)
        required, allowed = for_stage(stage)
        if required <= 0:
            continue
        who = authors(state, comp.component, revision, revision_owners(session, revision), stages)
        counted = sorted(
            {
                a.actor
                for a in state.approvals(comp.component, revision)
                if a.decision == "approve"
                and a.actor not in who
                and (allowed is None or a.actor in allowed)
            }
        )
        if len(counted) < required:
            found.append(
                PendingApproval(
                    component=comp.component,
                    component_id=comp.component_id,
                    revision=revision,
                    stage=stage,
                    required=required,
                    approved_by=tuple(counted),
                    authors=tuple(who),
                    staged_at=comp.updated_at,
                )
            )
    return sorted(found, key=lambda p: (p.staged_at, p.component))
