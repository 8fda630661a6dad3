"""Promote: make a revision current in a stage (by default one rung up the ladder).

Plan (the component, the stage, the candidate from the stage below or ``--rev``, the
expected current revision), then the switch of ``operations/switch.py``: gate, intent,
deploy, record, announce. :class:`Promoter` is promotion and rollback together, under the
name the Python API has always used.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import attrs

from lockgate.contracts.clock import now_iso
from lockgate.contracts.history import store_lineage
from lockgate.contracts.read_batch import Ask
from lockgate.contracts.refs import (
    ComponentRef,
    check_text,
    short,
)
from lockgate.errors import (
    ConflictError,
    InputError,
    LockgateError,
    NotReadyError,
    RefusedError,
)
from lockgate.operations.gates import gate_record
from lockgate.operations.lifecycle import next_stage
from lockgate.operations.read_memo import ask_together, memo
from lockgate.operations.recover import recover_pending, settle
from lockgate.operations.resolve import resolve_revision
from lockgate.operations.rollback import Rollback
from lockgate.operations.switch import Switcher, SwitchResult
from lockgate.operations.validate import Validation, gate_asks

if TYPE_CHECKING:
    from lockgate.contracts.models import ReadinessReport
    from lockgate.contracts.state import AuditEvent
    from lockgate.core.config import StageSection

__all__ = ["Promoter", "Promotion"]


class Promotion(Switcher):
    """Promotion for one session."""

    def promote(
        self,
        target: str,
        *,
        to: str | None = None,
        rev: str | None = None,
        expect_current: str | None = None,
        dry_run: bool = False,
        force: bool = False,
        reason: str | None = None,
    ) -> SwitchResult:
        """Make a revision current in a stage (by default: one rung up the ladder)."""
        started = time.perf_counter()
        session = self.session
        if force and not reason:
            raise InputError("--force needs --reason TEXT: skipping a gate is audited")
        # Every input that ends up in the record is checked before anything is touched.
        check_text("--reason", reason)
        session.actor  # noqa: B018 - checked (UTF-8) here, not after the targets switched
        # Planning reads each answer once (read_memo), what it can foresee in one call
        # (two: before and after the revision is known); the switch reads again under
        # its locks.
        with memo(session):
            ask_together(session, self._first_asks(target, to, rev, dry_run))
            settle(session)
            if not dry_run:  # even when the project does not settle: never over an intent
                recover_pending(session)
            ref = self.resolve(target)
            stage = session.check_stage(to) if to else next_stage(session, str(ref))
            revision, ref = self._candidate(ref, stage, rev)
            section = session.config.stages[stage]
            pointer = session.state().pointer(stage, ref.component_id)
            current = pointer.revision if pointer else None
            generation = pointer.generation if pointer else 0
            self._check_expected(stage, ref.component_id, current, expect_current)
            base = SwitchResult(
                action="promote",
                component=str(ref),
                component_id=ref.component_id,
                stage=stage,
                revision=revision,
                previous_revision=current,
                changed=current != revision,
                at=now_iso(),
                actor=session.actor,
                dry_run=dry_run,
                reason=reason,
                locations=tuple(t.location(ref.component_id) for t in self.targets(stage)),
            )
            if current == revision:
                return attrs.evolve(base, note="already current")
            ask_together(session, self._then_asks(str(ref), revision, stage, section, dry_run))
            if not dry_run:
                self._check_admissible(base, ref)
            self._protect(base, dry_run=dry_run)
            report, gate_events = self._gate(ref, stage, revision, section, dry_run)
            if dry_run:
                return attrs.evolve(base, gate=report, diff=self._diff(current, revision))
            forced = self._forced(base, ref, report, section, force)
            details: dict[str, object] = {}
            if forced and report is not None:
                details = {
                    "forced": True,
                    "skipped_issues": [
                        i.describe() for c in report.components for i in c.issues if i.blocking
                    ],
                }
            details["gates"] = gate_record(session, stage, report, forced=forced)
        result = self._switch_after(base, ref, generation, details, started, gate_events)
        return attrs.evolve(result, gate=report, forced=forced)

    def _switch_after(
        self,
        base: SwitchResult,
        ref: ComponentRef,
        generation: int,
        details: dict[str, object],
        started: float,
        gate_events: list[AuditEvent],
    ) -> SwitchResult:
        """The switch, recording the gate's passing events in its own transaction (one
        commit, one hold of the chain head); when it fails before its record, they are
        appended on their own: the gate ran all the same."""
        try:
            return self._switch(
                base,
                ref=ref,
                expected_generation=generation,
                action="promote",
                details=details,
                started=started,
                before=gate_events,
            )
        except BaseException:
            if gate_events:  # still there: the switch did not record them
                with contextlib.suppress(Exception):  # the switch's error is the one told
                    self.session.state().append_events(gate_events)
            raise

    def _first_asks(self, target: str, to: str | None, rev: str | None, dry_run: bool) -> list[Ask]:
        """What planning reads before the revision is known, as it asks it, when the
        target names its workspace and ``--to`` a stage (else what it can't foresee is
        read when asked): the open intents, the component, for ``--rev`` the revisions it
        may name (every revision without ``RevisionLineage``), and its pointers in the
        stage and the one below. With ``--rev``, what it reads once the revision is known
        too (:meth:`_then_asks`), taking ``--rev`` for the whole id: a prefix costs those
        of them that name the revision, asked again."""
        asks = [Ask("open_intents")]
        ladder = self.session.stage_names
        if ":" not in target or to is None or to not in ladder:
            return asks
        try:
            ref = ComponentRef.parse(target)
        except LockgateError:
            return asks  # resolve() says why
        asks += [Ask("component", (str(ref),)), Ask("pointer", (to, ref.component_id))]
        if rev == "latest":
            return asks  # the component's record names it
        if rev is not None:
            if store_lineage(self.session.state()) is None:
                asks.append(Ask("revisions", (str(ref),)))
            else:  # resolve_revision's ask: the revisions --rev may name
                asks.append(Ask("revisions_starting", (str(ref), rev.lower(), 2)))
            section = self.session.config.stages[to]
            asks += self._then_asks(str(ref), rev.lower(), to, section, dry_run)
        elif ladder.index(to) > 0:
            asks.append(Ask("pointer", (ladder[ladder.index(to) - 1], ref.component_id)))
        return asks

    def _then_asks(
        self, component: str, revision: str, stage: str, section: StageSection, dry_run: bool
    ) -> list[Ask]:
        """What planning reads once the revision is known: its approvals (whether it is
        admissible) and what its gate reads (``validate.gate_asks``)."""
        asks = [] if dry_run else [Ask("approvals", (component, revision))]
        if section.gates.validate:
            asks += gate_asks(self.session, component, revision, stage)
        return asks

    def _gate(
        self,
        ref: ComponentRef,
        stage: str,
        revision: str,
        section: StageSection,
        dry_run: bool,
    ) -> tuple[ReadinessReport | None, list[AuditEvent]]:
        """The validators for ``stage`` over ``revision`` (None: the stage has no gate),
        and the passing ``validate`` events left for the switch to record."""
        if not section.gates.validate:
            return None, []
        validation = Validation(self.session)
        report = validation.run(
            [ref],
            stage,
            revisions={str(ref): revision},
            skip=section.gates.skip,
            record=not dry_run,
            # Verdicts are reused only from the state store: the cache under .lockgate/ is
            # writable by whoever can write the project, so it never turns a failure
            # into a pass.
            gate=True,
            defer=not dry_run,
        )
        return report, validation.deferred

    def _forced(
        self,
        base: SwitchResult,
        ref: ComponentRef,
        report: ReadinessReport | None,
        section: StageSection,
        force: bool,
    ) -> bool:
        """Whether the switch goes past a failing gate; refuses (and audits) when the gate
        failed without ``--force``, or the stage does not allow it."""
        if report is None or report.ready:
            return False
        stage, revision = base.stage, str(base.revision)
        if not force:
            self._refused(base, report.summary())
            first = next(i for c in report.components for i in c.issues if i.blocking)
            raise NotReadyError(
                f"{ref} {short(revision)} is not ready for {stage} "
                f"({report.summary().removeprefix('not ready: ')}) "
                f"(first: {first.describe()}); see 'lockgate validate {ref} --stage {stage}'"
            )
        if not section.gates.allow_force:
            self._refused(base, f"--force is not allowed into {stage}")
            raise RefusedError(f"stage {stage} does not allow --force (gates.allow_force)")
        return True

    def _candidate(
        self, ref: ComponentRef, stage: str, rev: str | None
    ) -> tuple[str, ComponentRef]:
        """The revision to promote into ``stage`` and the component that supplied it."""
        session, state = self.session, self.session.state()
        if rev is not None:
            return resolve_revision(session, ref, rev), ref
        ladder = session.stage_names
        index = ladder.index(stage)
        if index == 0:
            return resolve_revision(session, ref, "latest"), ref
        below = ladder[index - 1]
        pointer = state.pointer(below, ref.component_id)
        if pointer is None or pointer.revision is None:
            raise RefusedError(
                f"nothing is current for {ref.component_id} in {below}: promote it to {below} "
                f"first, or name a revision with --rev"
            )
        return pointer.revision, ComponentRef.parse(pointer.component)

    @staticmethod
    def _check_expected(
        stage: str, component_id: str, current: str | None, expected: str | None
    ) -> None:
        if expected is None:
            return
        if expected == "none":
            ok = current is None
        else:
            if len(expected) < 4:
                raise InputError(
                    f"--expect-current {expected!r} is too short; give at least 4 characters "
                    "of the revision, or 'none'"
                )
            ok = current is not None and current.startswith(expected.lower())
        if not ok:
            now = short(current) if current else "none"
            raise ConflictError(
                f"{stage}/{component_id} is at {now}, not {expected} as expected: another "
                "change won; look again and retry"
            )


class Promoter(Promotion, Rollback):
    """Promotion and rollback for one session (a project is accepted and opens one)."""
