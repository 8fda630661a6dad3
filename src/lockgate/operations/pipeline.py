"""Pipeline runs: the members of a pipeline climb a rung together, all or nothing.

A run of ``lockgate pipeline promote NAME --to STAGE``:

1. **plan** (``operations/pipeline_spec.py``) — members, topological levels, the revision
   each will get (as a single promotion picks it), what is already current;
2. **gate** — every member that changes is checked as a single promotion would be (its
   status, rejections, a protected stage) and the validators run over all of them
   together, before anything moves; ``fail_fast: false`` reports every problem,
   ``true`` the first member's;
3. **switch** — under the operation lock, held for the whole run (so a single promotion
   of a member waits for it, or is refused when the wait is over: never interleaved), a
   run intent is written, then each member is switched in level order by the switch
   every promotion uses (``operations/switch.py``: its own intent, deploy, record,
   announce). A failure a target marks transient (``lockgate.plugin.TransientError``, or
   any exception with ``transient = True``) is retried ``retry_count`` times with
   exponential backoff and jitter; a switch over its ``timeout`` fails the run;
4. **all or nothing** — when a member fails, the members already switched in this run are
   switched back (the same switch, action ``rollback``), and the run is recorded
   ``rolled_back`` with the cause;
5. **record** — the run's report is one audit event tied to its members' events by the
   run id (``operations/pipeline_report.py``), and the run intent closes.

A process killed in steps 3 to 5 leaves the run intent open: the next command that
changes something (or ``lockgate recover``) finishes or undoes the whole run
(``operations/recover.py``, ``settle_run``). ``lockgate pipeline rollback NAME`` is a run
too: every member back to what it was before the last completed run.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from lockgate.contracts.clock import now_iso
from lockgate.contracts.refs import ComponentRef, check_text, short
from lockgate.contracts.state import AuditEvent, Intent
from lockgate.core.failpoints import failpoint
from lockgate.errors import ConflictError, LockgateError, PluginError, RefusedError
from lockgate.operations.announce import failed
from lockgate.operations.approve import rejection
from lockgate.operations.gates import gate_record
from lockgate.operations.pipeline_group import (
    GROUP_FAILPOINTS,
    GroupSwitching,
    Move,
    backoff,
    is_transient,
)
from lockgate.operations.pipeline_report import UNDO_ACTION, RunReport, record_run, run_events
from lockgate.operations.pipeline_spec import PipelinePlan, plan_pipeline
from lockgate.operations.recover import group_targets, holding, recover_pending, settle
from lockgate.operations.switch import SwitchResult
from lockgate.operations.validate import Validation

__all__ = ["FAILPOINTS", "PipelineRunner", "is_transient"]

FAILPOINTS = (
    "pipeline.after_intent",
    "pipeline.after_step",
    "pipeline.after_undo_step",
    "pipeline.before_record",
    *GROUP_FAILPOINTS,
)
"""Where the crash harness kills a run (besides every member switch's own failpoints);
``pipeline.after_step`` and ``after_undo_step`` on targets that switch member by member,
``pipeline.group_*`` on targets that switch the members together."""


def _describe(exc: BaseException) -> str:
    return exc.message if isinstance(exc, LockgateError) else f"{type(exc).__name__}: {exc}"


def _undo_failed(pipeline: str, cause: str, exc: Exception) -> Exception:
    """The error when switching a failed run's members back failed too: the run intent
    stays open, and the next command that changes something finishes undoing it."""
    then = (
        f"pipeline {pipeline} failed ({cause}) and switching its members back failed too; "
        "the next lockgate command that changes something (or 'lockgate recover') "
        "finishes undoing the run"
    )
    if isinstance(exc, LockgateError):
        exc.message = f"{then}: {exc.message}"
        exc.args = (exc.message,)
        return exc
    return PluginError(f"{then}: {_describe(exc)}")


class PipelineRunner(GroupSwitching):
    """Pipeline runs for one session."""

    on_step: Callable[[dict[str, Any]], None] | None = None
    """Called with a member's step result each time one settles (a progress display)."""

    # ------------------------------------------------------------------ entry points

    def plan(self, name: str, to: str) -> PipelinePlan:
        """What a run of ``name`` into ``to`` would do (changes nothing)."""
        settle(self.session)
        return plan_pipeline(self.session, name, to)

    def promote(
        self, name: str, *, to: str, dry_run: bool = False, reason: str | None = None
    ) -> dict[str, Any]:
        """Promote every member of pipeline ``name`` into ``to``, all or nothing; the
        run's report (``status``: completed, failed or rolled_back)."""
        session = self.session
        check_text("--reason", reason)
        session.actor  # noqa: B018 - checked (UTF-8) before anything moves
        settle(session)
        if not dry_run:
            recover_pending(session)
        plan = plan_pipeline(session, name, to)
        report = RunReport(name, uuid.uuid4().hex, plan.stage, "promote", dry_run=dry_run)
        report.definition = plan.digest
        report.levels = [[s.component for s in level] for level in plan.levels]
        for step in plan.steps:
            status = "current" if step.action == "current" else "pending"
            report.add_step(
                step.component, step.action, step.previous_revision, step.revision, status
            )
        details = self._gate_all(plan, report, dry_run)
        if report.issues or any(s["status"] == "refused" for s in report.steps):
            refused = [s["component"] for s in report.steps if s["status"] == "refused"]
            first = next((i for s in report.steps for i in s["issues"]), None) or report.issues[0]
            report.finish(
                "failed",
                f"gates refused {', '.join(refused) or 'the run'} before anything moved "
                f"(first: {first})",
            )
            if not dry_run:
                self._record(report, reason)
            return report.to_dict()
        if dry_run:
            report.finish("planned")
            return report.to_dict()
        moves = [
            Move(
                s.component,
                s.component_id,
                s.previous_revision,
                s.revision,
                s.timeout,
                s.retry_count,
            )
            for s in plan.changing
        ]
        if not moves:  # every member already current: a run that moved nothing
            report.finish("completed")
            self._record(report, reason)
            return report.to_dict()
        expected = {s.component_id: s.generation for s in plan.changing}
        return self._execute(moves, report, reason, "promote", details, expected)

    def rollback(
        self,
        name: str,
        *,
        stage: str | None = None,
        dry_run: bool = False,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Return every member to what it was before the last completed run of ``name``
        (into ``stage``, or its last run's stage), as one run."""
        session = self.session
        check_text("--reason", reason)
        session.actor  # noqa: B018
        settle(session)
        if not dry_run:
            recover_pending(session)
        if stage is not None:
            stage = session.check_stage(stage)
        last = self._last_run(name, stage)
        state = session.state()
        moves, expected = [], {}
        for step in reversed(last["step_results"]):
            if step["status"] != "completed":
                continue
            ref = ComponentRef.parse(step["component"])
            pointer = state.pointer(last["stage"], ref.component_id)
            now = pointer.revision if pointer else None
            if now != step["revision_to"]:
                raise RefusedError(
                    f"{ref} in {last['stage']} is at {short(now) if now else 'nothing'}, not "
                    f"{short(step['revision_to'])} as run {last['run']} of pipeline {name} left "
                    f"it: it changed since; roll it back by itself with 'lockgate rollback'"
                )
            expected[ref.component_id] = pointer.generation if pointer else 0
            moves.append(Move(str(ref), ref.component_id, now, step["revision_from"]))
        report = RunReport(name, uuid.uuid4().hex, last["stage"], "rollback", dry_run=dry_run)
        report.definition = last.get("definition")
        for move in moves:
            report.add_step(move.component, "rollback", move.old, move.new, "pending")
        if dry_run or not moves:
            report.finish("planned" if dry_run else "completed")
            return report.to_dict()
        return self._execute(
            moves, report, reason, "rollback", {"undoes_run": last["run_id"]}, expected
        )

    def _last_run(self, name: str, stage: str | None) -> dict[str, Any]:
        """The report of the last completed promote run of ``name`` (into ``stage``)."""
        events = run_events(self.session.state(), name)
        for number in range(len(events), 0, -1):
            report: dict[str, Any] = dict(events[number - 1].details.get("report") or {})  # type: ignore[call-overload]
            if report.get("kind") != "promote" or report.get("status") != "completed":
                continue
            if stage is not None and report.get("stage") != stage:
                continue
            report["run"] = number
            return report
        where = f" into {stage}" if stage else ""
        raise RefusedError(f"pipeline {name} has no completed run{where} to roll back")

    # ------------------------------------------------------------------ gates

    def _gate_all(self, plan: PipelinePlan, report: RunReport, dry_run: bool) -> dict[str, Any]:
        """Check every changing member as a single promotion would, and run the
        validators over all of them together; problems go into ``report``. Returns what
        the audit records of the gates."""
        session, stage = self.session, plan.stage
        changing = plan.changing
        if not changing:
            return {}
        try:
            self._protect(
                self._base(
                    changing[0].component, changing[0].component_id, stage, "promote", None, None
                ),
                dry_run=dry_run,
            )
        except LockgateError as exc:
            report.issues.append(exc.message)
            return {}
        failing = 0
        for step in changing:
            if failing and plan.options.fail_fast:
                break
            base = self._base(
                step.component,
                step.component_id,
                stage,
                "promote",
                step.previous_revision,
                step.revision,
            )
            try:
                if dry_run:  # the same refusal, but a dry run writes nothing (not even it)
                    self._rejected(step.component, step.revision)
                else:
                    self._check_admissible(base, ComponentRef.parse(step.component))
            except LockgateError as exc:
                entry = report.step(step.component)
                entry["status"] = "refused"
                entry["issues"].append(exc.message)
                failing += 1
        if failing and plan.options.fail_fast:
            return {}
        section = session.config.stages[stage]
        gate = None
        if section.gates.validate:
            gate = Validation(session).run(
                [s.component for s in changing],
                stage,
                revisions={s.component: s.revision for s in changing},
                skip=section.gates.skip,
                record=not dry_run,
                gate=True,  # verdicts reused from the state store only, as for one promotion
            )
            for verdict in gate.components:
                blocking = [i.describe() for i in verdict.issues if i.blocking]
                if blocking and not (failing and plan.options.fail_fast):
                    entry = report.step(verdict.component)
                    entry["status"] = "refused"
                    entry["issues"].extend(blocking)
                    failing += 1
        return {"gates": gate_record(session, stage, gate)}

    def _progress(self, entry: dict[str, Any]) -> None:
        if self.on_step is not None:
            self.on_step(dict(entry))

    def _rejected(self, component: str, revision: str) -> None:
        """Refuse (without recording it) a revision someone rejected."""
        rejected = rejection(self.session.state(), component, revision)
        if rejected is not None:
            raise RefusedError(
                f"{component} {short(revision)} was rejected by {rejected.actor}"
                + (f" ({rejected.comment})" if rejected.comment else "")
                + "; stage a new revision"
            )

    def _base(
        self,
        component: str,
        component_id: str,
        stage: str,
        action: str,
        old: str | None,
        new: str | None,
        reason: str | None = None,
    ) -> SwitchResult:
        return SwitchResult(
            action=action,
            component=component,
            component_id=component_id,
            stage=stage,
            revision=new,
            previous_revision=old,
            changed=old != new,
            at=now_iso(),
            actor=self.session.actor,
            reason=reason,
            locations=tuple(t.location(component_id) for t in self.targets(stage)),
        )

    # ------------------------------------------------------------------ the run

    def _execute(
        self,
        moves: Sequence[Move],
        report: RunReport,
        reason: str | None,
        action: str,
        details: dict[str, Any],
        expected: dict[str, int],
    ) -> dict[str, Any]:
        """Under the operation lock: the run intent, each member switched, every switched
        member undone on a failure, the run recorded."""
        session, state = self.session, self.session.state()
        with self.holding("pipeline"):
            recover_pending(session, locked=True)
            self._check_planned(moves, report, expected)
            intent = self._open_run(moves, report)
            with holding(intent.id):
                failpoint("pipeline.after_intent")
                tied = {"pipeline": report.pipeline, "run": report.run_id, **details}
                done: list[Move] = []
                current: Move | None = None
                together = len(moves) > 1 and group_targets(session, report.stage) is not None
                try:
                    if together:  # one atomic step per target; put back on a failure
                        self._switch_together(moves, report, reason, action, tied, intent.id)
                    for current in [] if together else moves:
                        self._step(current, report, reason, action, tied, done)
                        failpoint("pipeline.after_step")
                except Exception as exc:  # any failure undoes the whole run
                    self._fail_run(exc, together, current, done, report, reason, tied)
                    state.close_intent(intent.id, "undone")
                    return report.to_dict()
                failpoint("pipeline.before_record")
                report.finish("completed")
                self._record(report, reason)
                state.close_intent(intent.id, "completed")
        return report.to_dict()

    def _check_planned(
        self, moves: Sequence[Move], report: RunReport, expected: dict[str, int]
    ) -> None:
        """Refuse the run when a member's pointer moved since the plan read it."""
        state, stage = self.session.state(), report.stage
        for move in moves:
            pointer = state.pointer(stage, move.component_id)
            generation = pointer.generation if pointer else 0
            if generation != expected[move.component_id]:
                raise ConflictError(
                    f"{stage}/{move.component_id} changed while pipeline {report.pipeline} "
                    "was being planned: another change won; look again and retry"
                )

    def _record(self, report: RunReport, reason: str | None) -> None:
        """Record the run; one that did not complete is announced through ``on_failure``."""
        session = self.session
        event = record_run(
            session.state(),
            session.actor,
            report.to_dict(),
            reason=reason,
            identity=session.identity,
        )
        if event is not None and event.outcome != "ok":
            failed(session, event, recorded=True)

    def _fail_run(
        self,
        exc: Exception,
        together: bool,
        current: Move | None,
        done: list[Move],
        report: RunReport,
        reason: str | None,
        tied: dict[str, Any],
    ) -> None:
        """A run that failed (``exc``): every member switched is put back, and the run is
        recorded ``rolled_back`` (something had moved) or ``failed`` with its cause."""
        session, state = self.session, self.session.state()
        if together:
            if not hasattr(exc, "switched"):  # putting it back failed too
                raise _undo_failed(report.pipeline, _describe(exc), exc) from exc
            member = getattr(exc, "member", None) or "the group"
            switched = bool(getattr(exc, "switched", False))
            report.finish("rolled_back" if switched else "failed", f"{member}: {_describe(exc)}")
            self._record(report, reason)
            return
        cause = f"{current.component if current else report.pipeline}: {_describe(exc)}"
        if done:  # recovery undoes (never finishes) a run that decided so
            state.append_event(
                AuditEvent(
                    at=now_iso(),
                    actor=session.actor,
                    action=UNDO_ACTION,
                    stage=report.stage,
                    reason=reason,
                    details={
                        "pipeline": report.pipeline,
                        "run": report.run_id,
                        "cause": cause,
                        **session.identity.details(),
                    },
                    outcome="failed",
                )
            )
        try:
            self._compensate(done, report, cause, tied)
        except Exception as second:
            raise _undo_failed(report.pipeline, cause, second) from second
        report.finish("rolled_back" if done else "failed", cause)
        self._record(report, reason)

    def _open_run(self, moves: Sequence[Move], report: RunReport) -> Intent:
        """Write (durably) the run's intent: what recovery finishes or undoes."""
        intent = Intent(
            id=uuid.uuid4().hex,
            operation="pipeline",
            owner=f"{os.getpid()}@{socket.gethostname()}",
            created_at=now_iso(),
            payload={
                "pipeline": report.pipeline,
                "run": report.run_id,
                "kind": report.kind,
                "stage": report.stage,
                "members": [
                    {
                        "component": m.component,
                        "component_id": m.component_id,
                        "from": m.old,
                        "to": m.new,
                    }
                    for m in moves
                ],
            },
        )
        self.session.state().open_intent(intent)
        return intent

    def _step(
        self,
        move: Move,
        report: RunReport,
        reason: str | None,
        action: str,
        details: dict[str, Any],
        done: list[Move],
    ) -> None:
        """Switch one member, retrying a transient failure; a switch over its timeout
        counts as switched (it is undone with the rest) and fails the run."""
        entry = report.step(move.component)
        state, stage = self.session.state(), report.stage
        for attempt in range(1, move.retry_count + 2):
            entry["attempts"] = attempt
            started = time.perf_counter()
            pointer = state.pointer(stage, move.component_id)
            base = self._base(
                move.component, move.component_id, stage, action, move.old, move.new, reason
            )
            if move.timeout:
                self.deadline = (time.monotonic() + move.timeout, move.timeout)
            try:
                result = self._switch(
                    base,
                    ref=ComponentRef.parse(move.component),
                    expected_generation=pointer.generation if pointer else 0,
                    action=action,
                    details=dict(details),
                )
            except Exception as exc:
                entry["duration"] = round(entry["duration"] + time.perf_counter() - started, 4)
                entry["issues"].append(_describe(exc))
                if attempt <= move.retry_count and is_transient(exc):
                    time.sleep(backoff(attempt))
                    continue
                entry["status"] = "failed"
                self._progress(entry)
                raise
            finally:
                self.deadline = None
            entry["duration"] = round(entry["duration"] + time.perf_counter() - started, 4)
            entry["issues"].extend(result.warnings)
            entry["status"] = "completed"
            self._progress(entry)
            done.append(move)
            took = time.perf_counter() - started
            if move.timeout and took > move.timeout:
                entry["status"] = "failed"
                raise RefusedError(
                    f"{move.component} took {took:.2f} s to switch, over its timeout of "
                    f"{move.timeout:g} s"
                )
            return

    def _compensate(
        self, done: Sequence[Move], report: RunReport, cause: str, details: dict[str, Any]
    ) -> None:
        """Switch back every member this run switched, last first (the switch every
        rollback uses). A failure here leaves the run intent open: recovery finishes it."""
        state, stage = self.session.state(), report.stage
        for move in reversed(done):
            pointer = state.pointer(stage, move.component_id)
            base = self._base(
                move.component,
                move.component_id,
                stage,
                "rollback",
                move.new,
                move.old,
                f"pipeline {report.pipeline}: {cause}",
            )
            self._switch(
                base,
                ref=ComponentRef.parse(move.component),
                expected_generation=pointer.generation if pointer else 0,
                action="rollback",
                details={**details, "undo": True, "cause": cause},
            )
            report.step(move.component)["status"] = "rolled_back"
            self._progress(report.step(move.component))
            failpoint("pipeline.after_undo_step")
