"""Remove: retire a component, taking it out of every stage.

``lockgate remove WS:ID --reason TEXT`` switches the component out of every stage that
holds it, highest stage first, each by the switch promote and rollback use
(``operations/switch.py``: intent, every target, the pointer moved to nothing, an audit
event ``remove``), all under one operation lock; then its status becomes ``retired``
(an audit event ``retire``). A retired component is no longer reported missing by
``ls``, ``sync`` leaves it alone when its directory is still in a workspace, a pipeline
naming it is refused, and ``gc`` no longer keeps its latest revision for its own sake:
its revisions go under the usual retention rules (the last ``gc.keep`` revisions live in
each stage, the previous and last-good ones, stay). ``lockgate stage WS:ID`` brings it
back. A process killed midway leaves the switch's intent to recovery, and the stages it
did not reach yet and the status to running ``lockgate remove`` again.
"""

from __future__ import annotations

from typing import Any

from lockgate.contracts.clock import now_iso
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.records import record
from lockgate.contracts.refs import check_text, short
from lockgate.contracts.state import AuditEvent
from lockgate.core.failpoints import failpoint
from lockgate.errors import InputError, NotFoundError
from lockgate.operations.lifecycle import next_status
from lockgate.operations.recover import recover_pending, settle
from lockgate.operations.switch import Switcher, SwitchResult

__all__ = ["Removal", "RemoveResult"]


@record
class RemoveResult:
    """What ``lockgate remove`` did (or, with ``dry_run``, would do)."""

    component: str
    reason: str
    switches: tuple[SwitchResult, ...]
    retired: bool
    already_retired: bool
    at: str
    actor: str
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "reason": self.reason,
            "removed_from": [
                {"stage": s.stage, "revision": s.previous_revision} for s in self.switches
            ],
            "retired": self.retired,
            "already_retired": self.already_retired,
            "dry_run": self.dry_run,
            "at": self.at,
            "actor": self.actor,
            "warnings": [w for s in self.switches for w in s.warnings],
        }

    def summary(self) -> str:
        stages = ", ".join(f"{s.stage} ({short(s.previous_revision)})" for s in self.switches)
        if self.already_retired and not self.switches:
            return f"{self.component} is already retired; nothing to do"
        if self.dry_run:
            out = f"would take it out of {stages}" if stages else "no stage holds it"
            return f"{self.component}: {out}, then retire it (dry run)"
        out = f"taken out of {stages}" if stages else "no stage held it"
        return f"{self.component}: {out}; retired (its revisions stay for gc's retention)"


class Removal(Switcher):
    """Retiring components for one session."""

    def remove(self, target: str, *, reason: str | None, dry_run: bool = False) -> RemoveResult:
        """Take ``target`` (``WS:ID`` or a bare id) out of every stage and retire it."""
        session = self.session
        if not reason or not reason.strip():
            raise InputError(
                f"lockgate remove {target}: give --reason TEXT (retiring a component is audited)"
            )
        check_text("--reason", reason)
        session.actor  # noqa: B018 - checked (UTF-8) before anything moves
        settle(session)
        if not dry_run:
            recover_pending(session)
        ref = self.resolve(target)
        state = session.state()
        record = state.component(str(ref))
        if record is None:
            raise NotFoundError(f"{ref} has never been staged; nothing to remove")
        already = record.status is ComponentStatus.RETIRED
        if dry_run:
            bases = [self._base(str(ref), stage, reason) for stage in self._holding(ref)]
            return RemoveResult(
                str(ref), reason, tuple(bases), False, already, now_iso(), session.actor, True
            )
        switches: list[SwitchResult] = []
        with self.holding("remove"):
            recover_pending(session, locked=True)
            for stage in self._holding(ref):
                base = self._base(str(ref), stage, reason)
                pointer = state.pointer(stage, ref.component_id)
                switches.append(
                    self._switch(
                        base,
                        ref=ref,
                        expected_generation=pointer.generation if pointer else 0,
                        action="remove",
                        details={"retire": True},
                    )
                )
                failpoint("remove.after_stage")
            record = state.component(str(ref))
            if record is not None and record.status is not ComponentStatus.RETIRED:
                state.set_status(
                    str(ref),
                    record.status,
                    next_status(str(ref), record.status, "retire"),
                    AuditEvent(
                        at=now_iso(),
                        actor=session.actor,
                        action="retire",
                        component=str(ref),
                        revision=record.latest_revision,
                        reason=reason,
                        details={"stages": [s.stage for s in switches]},
                    ),
                )
        return RemoveResult(
            str(ref), reason, tuple(switches), True, already, now_iso(), session.actor
        )

    def _holding(self, ref: Any) -> list[str]:
        """The stages where ``ref``'s id is current with one of ``ref``'s revisions,
        highest first (a stage entry another workspace's component holds is not ours)."""
        state = self.session.state()
        stages = []
        for stage in reversed(self.session.stage_names):
            pointer = state.pointer(stage, ref.component_id)
            if pointer is not None and pointer.revision and pointer.component == str(ref):
                stages.append(stage)
        return stages

    def _base(self, component: str, stage: str, reason: str) -> SwitchResult:
        component_id = component.split(":", 1)[1]
        pointer = self.session.state().pointer(stage, component_id)
        return SwitchResult(
            action="remove",
            component=component,
            component_id=component_id,
            stage=stage,
            revision=None,
            previous_revision=pointer.revision if pointer else None,
            changed=True,
            at=now_iso(),
            actor=self.session.actor,
            reason=reason,
            locations=tuple(t.location(component_id) for t in self.targets(stage)),
        )
