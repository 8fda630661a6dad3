"""A pipeline run's members switched together, on targets that can (``GroupSwitch``).

When every target of the stage offers :class:`~lockgate.contracts.target.GroupSwitch`
(the builtin ``directory`` target does: a new generation of the stage directory swapped
in by one rename), a run switches its members in one step instead of one by one, so a
reader never sees some members switched and others not:

1. every member is checked as its own switch would be (rejections, the status machine,
   its release verified and made durable);
2. each target prepares the whole group (invisible), then commits it (one atomic step);
   a transient failure retries the group, with backoff, up to the largest
   ``retry_count`` of the members; a member's ``timeout`` is held against the time the
   group took, before anything is recorded;
3. only then the pointers move, one audited compare-and-swap per member, tied to the
   run; then each member is announced.

The run's intent is open throughout: a crash anywhere is settled by recovery as any run
(``settle_run``: finished when every pointer moved, undone otherwise), and it brings the
members back with one group switch too (:func:`bring_group`). A failure puts the pointers
that moved back and the targets to what the pointers say, then raises.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from lockgate.contracts.clock import now_iso
from lockgate.contracts.records import record
from lockgate.contracts.refs import ComponentRef
from lockgate.contracts.target import GroupSwitch, PreparedGroup, RevisionHandle
from lockgate.core.failpoints import failpoint
from lockgate.errors import LockgateError, RefusedError
from lockgate.operations.lifecycle import move_pointer
from lockgate.operations.pipeline_report import RunReport
from lockgate.operations.recover import bring_group, group_targets
from lockgate.operations.switch import Switcher, SwitchResult

__all__ = [
    "GROUP_FAILPOINTS",
    "GroupSwitching",
    "Move",
    "backoff",
    "is_transient",
]

GROUP_FAILPOINTS = (
    "pipeline.group_after_prepare",
    "pipeline.group_after_switch",
    "pipeline.group_after_pointer",
)
"""Where the crash harness kills a run whose members switch together."""

BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0


@record
class Move:
    """One member's switch in a run: ``old`` → ``new``."""

    component: str
    component_id: str
    old: str | None
    new: str | None
    timeout: float = 0.0
    retry_count: int = 0


def is_transient(exc: BaseException) -> bool:
    """Whether a target marked ``exc`` (or an error it caused) as worth retrying."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if getattr(current, "transient", False) is True:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): exponential, with full jitter."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def _describe(exc: BaseException) -> str:
    return exc.message if isinstance(exc, LockgateError) else f"{type(exc).__name__}: {exc}"


def _switch_group(
    groups: Sequence[GroupSwitch],
    changes: dict[str, RevisionHandle | None],
    check: Callable[[], None],
) -> int:
    """Prepare the group on every target, ``check`` (the deadline), then commit it on
    each; the number of targets committed when one failed (the exception is re-raised,
    the rest aborted)."""
    prepared: list[PreparedGroup] = []
    committed = 0
    try:
        for group in groups:
            prepared.append(group.prepare_group(changes))
            check()
        failpoint("pipeline.group_after_prepare")
        for group, ready in zip(groups, prepared, strict=True):
            group.commit_group(ready)
            committed += 1
        failpoint("pipeline.group_after_switch")
    except BaseException as exc:
        for group, ready in list(zip(groups, prepared, strict=False))[committed:]:
            # The first failure is the one reported; what an abort leaves is invisible,
            # and the next group switch sweeps it.
            with contextlib.suppress(Exception):
                group.abort_group(ready)
        exc.committed = committed  # type: ignore[attr-defined]
        raise
    return committed


def _check_timeouts(moves: Sequence[Move], started: float) -> None:
    """Refuse to commit a group once it ran over a member's timeout (nothing is visible
    yet); the error names the member (``late``)."""
    took = time.perf_counter() - started
    late = next((m for m in moves if m.timeout and took > m.timeout), None)
    if late is not None:
        error = RefusedError(
            f"{late.component} ran over its timeout of {late.timeout:g} s while its group "
            "was prepared; stopped before the switch was made visible"
        )
        error.late = late  # type: ignore[attr-defined]
        raise error


class GroupSwitching(Switcher):
    """A run's members switched in one step per target (see the module docstring)."""

    def _switch_together(
        self,
        moves: Sequence[Move],
        report: RunReport,
        reason: str | None,
        action: str,
        details: dict[str, Any],
        intent_id: str,
    ) -> list[Move]:
        """Check, switch and record every member; on a failure put everything back and
        raise, with ``switched`` (whether readers saw the new members) on the error."""
        session, stage = self.session, report.stage
        groups = group_targets(session, stage)
        assert groups is not None
        bases, changes = self._ready_all(moves, report, reason, action)
        started = self._group_attempts(groups, changes, moves, report)
        took = time.perf_counter() - started
        late = next((m for m in moves if m.timeout and took > m.timeout), None)
        if late is not None:
            error = RefusedError(
                f"{late.component} took {took:.2f} s to switch (with the rest of its group), "
                f"over its timeout of {late.timeout:g} s"
            )
            self._put_group_back(moves, [], report, reason, details)
            self._fail(report, moves, late, error, switched=True)
            raise error
        moved: list[Move] = []
        try:
            for move in moves:
                base = attrs.evolve(bases[move.component_id], at=now_iso())
                bases[move.component_id] = base
                pointer = session.state().pointer(stage, move.component_id)
                move_pointer(
                    session,
                    stage=stage,
                    component=move.component,
                    revision=move.new,
                    action=action,
                    expected_generation=pointer.generation if pointer else 0,
                    reason=reason,
                    details={"intent": intent_id, **details},
                    strict=False,
                    at=base.at,
                )
                moved.append(move)
                failpoint("pipeline.group_after_pointer")
        except Exception as exc:
            self._put_group_back(moves, moved, report, reason, details)
            self._fail(report, moves, move, exc, switched=True)
            raise
        for move in moves:
            entry = report.step(move.component)
            entry["duration"] = round(took, 4)
            entry["status"] = "completed"
            base = bases[move.component_id]
            done = self._announce(base, ComponentRef.parse(move.component), action, details)
            entry["issues"].extend(done.warnings)
            self._progress(entry)
        return list(moves)

    def _ready_all(
        self, moves: Sequence[Move], report: RunReport, reason: str | None, action: str
    ) -> tuple[dict[str, SwitchResult], dict[str, RevisionHandle | None]]:
        """Check every member as its own switch would, and ready its release (verified,
        durable); each member's switch record and handle, by component id."""
        stage = report.stage
        bases: dict[str, SwitchResult] = {}
        changes: dict[str, RevisionHandle | None] = {}
        for move in moves:
            base = SwitchResult(
                action=action,
                component=move.component,
                component_id=move.component_id,
                stage=stage,
                revision=move.new,
                previous_revision=move.old,
                changed=True,
                at=now_iso(),
                actor=self.session.actor,
                reason=reason,
                locations=tuple(t.location(move.component_id) for t in self.targets(stage)),
            )
            try:
                self._check_admissible(base, ComponentRef.parse(move.component))
                changes[move.component_id] = self._ready_release(base)
            except Exception as exc:
                self._fail(report, moves, move, exc, switched=False)
                raise
            bases[move.component_id] = base
        return bases, changes

    def _group_attempts(
        self,
        groups: Sequence[GroupSwitch],
        changes: dict[str, RevisionHandle | None],
        moves: Sequence[Move],
        report: RunReport,
    ) -> float:
        """Switch the group, retrying a transient failure; when it started (the last
        attempt). A final failure puts the targets back and is raised."""
        retries = max(m.retry_count for m in moves)
        for attempt in range(1, retries + 2):
            for move in moves:
                report.step(move.component)["attempts"] = attempt
            started = time.perf_counter()
            try:
                _switch_group(groups, changes, functools.partial(_check_timeouts, moves, started))
            except Exception as exc:
                for move in moves:
                    report.step(move.component)["issues"].append(_describe(exc))
                if getattr(exc, "committed", 0):
                    self._put_group_back(moves, [], report, None, {})
                if attempt <= retries and is_transient(exc):
                    time.sleep(backoff(attempt))
                    continue
                late = getattr(exc, "late", None)
                switched = bool(getattr(exc, "committed", 0))
                self._fail(report, moves, late, exc, switched=switched)
                raise
            return started
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _put_group_back(
        self,
        moves: Sequence[Move],
        moved: Sequence[Move],
        report: RunReport,
        reason: str | None,
        details: dict[str, Any],
    ) -> None:
        """The pointers this run moved back to where they were, then every target to
        what the pointers say, in one group switch."""
        session, stage = self.session, report.stage
        for move in reversed(moved):
            pointer = session.state().pointer(stage, move.component_id)
            move_pointer(
                session,
                stage=stage,
                component=move.component,
                revision=move.old,
                action="rollback",
                expected_generation=pointer.generation if pointer else 0,
                reason=f"pipeline {report.pipeline}: switched back" if reason is None else reason,
                details={**details, "undo": True},
                strict=False,
            )
        bring_group(session, stage, [m.component_id for m in moves])

    def _fail(
        self,
        report: RunReport,
        moves: Sequence[Move],
        failing: Move | None,
        exc: BaseException,
        *,
        switched: bool,
    ) -> None:
        """Mark the steps: the failing member ``failed`` (every member when the group as
        a whole failed), the others ``rolled_back`` when readers saw them switched."""
        exc.switched = switched  # type: ignore[attr-defined]
        exc.member = failing.component if failing else None  # type: ignore[attr-defined]
        for move in moves:
            entry = report.step(move.component)
            if failing is None or move is failing:
                entry["status"] = "failed"
                if failing is not None:
                    entry["issues"].append(_describe(exc))
            elif switched:
                entry["status"] = "rolled_back"
            self._progress(entry)

    def _progress(self, entry: dict[str, Any]) -> None:  # replaced by the runner's
        """Report a step that settled (a progress display)."""
