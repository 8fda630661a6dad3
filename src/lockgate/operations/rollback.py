"""Rollback: switch a stage back to a revision it had: instant, verified, audited.

Picks the revision (``last-good``, ``previous``, ``none``, a prefix, or what was live at
a time), then the switch of ``operations/switch.py`` without a gate: a rollback restores.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs

from lockgate.contracts.clock import now_iso, parse_time
from lockgate.contracts.read_batch import Ask
from lockgate.contracts.refs import (
    ComponentRef,
    check_name,
    check_text,
    short,
)
from lockgate.contracts.state import Pointer, PointerChange
from lockgate.errors import (
    InputError,
    LockgateError,
    NotFoundError,
    RefusedError,
)
from lockgate.operations.gc import collected_revisions
from lockgate.operations.read_memo import ask_together, memo
from lockgate.operations.recover import recover_pending, settle
from lockgate.operations.resolve import resolve_revision
from lockgate.operations.revisions import deployable
from lockgate.operations.switch import Switcher, SwitchResult, last_good

__all__ = ["Rollback"]


class Rollback(Switcher):
    """Rollback for one session."""

    def rollback(
        self,
        target: str,
        *,
        stage: str | None = None,
        to: str | None = None,
        at: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
        remove_if_none: bool = False,
    ) -> SwitchResult:
        """Switch a stage back to a retained revision: no copy, verified first.

        ``to``: ``previous`` (what was current before the current one), ``last-good``
        (the default: the most recent other revision that was live and not rolled back
        for cause), ``none`` (remove the component from the stage) or a revision prefix
        that was live in the stage. ``at``: the revision live at that time.
        ``remove_if_none``: with nothing earlier to go back to, remove the component
        (the integration manager's "production cleanup") instead of refusing.
        """
        started = time.perf_counter()
        session = self.session
        check_text("--reason", reason)
        session.actor  # noqa: B018 - checked (UTF-8) here, not after the targets switched
        # Planning reads each answer once (read_memo), what it can foresee in one call
        # (two: before and after the revision is known); the switch reads again under
        # its locks.
        with memo(session):
            base, generation, skipped = self._plan(
                target, stage, to, at, reason, dry_run=dry_run, remove_if_none=remove_if_none
            )
            if not base.changed:
                return attrs.evolve(base, note="already current")
            if not dry_run:
                if base.revision is not None:  # what the admissibility check reads
                    asks = [Ask("component", (base.component,))]
                    asks.append(Ask("approvals", (base.component, base.revision)))
                    ask_together(session, asks)
                self._check_admissible(base, ComponentRef.parse(base.component))
            if dry_run:
                return attrs.evolve(base, diff=self._diff(base.previous_revision, base.revision))
        return self._switch(
            base,
            ref=ComponentRef.parse(base.component),
            expected_generation=generation,
            action="rollback",
            details={"to": to or ("at " + at if at else "last-good")}
            | ({"skipped": skipped} if skipped else {}),
            started=started,
        )

    def _plan(
        self,
        target: str,
        stage: str | None,
        to: str | None,
        at: str | None,
        reason: str | None,
        *,
        dry_run: bool,
        remove_if_none: bool,
    ) -> tuple[SwitchResult, int, list[str]]:
        """The rollback planned (its revision chosen), the pointer's generation it moves
        from, and the good revisions skipped because gc collected them."""
        session = self.session
        component_id = target.split(":", 1)[-1]
        check_name("component id", component_id)
        ask_together(session, self._rollback_asks(target, component_id, stage))
        settle(session)
        if not dry_run:  # even when the project does not settle: never switch over an intent
            recover_pending(session)
        state = session.state()
        stage = session.check_stage(stage) if stage else self._live_stage(component_id)
        pointer = state.pointer(stage, component_id)
        if pointer is None or pointer.revision is None:
            raise RefusedError(
                f"nothing is current for {component_id} in {stage}; nothing to roll back"
            )
        history = state.pointer_history(stage, component_id)
        revision, skipped = self._choose(history, pointer, stage, to, at, remove_if_none)
        owner = pointer.component
        if revision is not None:
            owner = next(
                (c.component for c in reversed(history) if c.revision == revision),
                pointer.component,
            )
        base = SwitchResult(
            action="rollback",
            component=owner,
            component_id=component_id,
            stage=stage,
            revision=revision,
            previous_revision=pointer.revision,
            changed=revision != pointer.revision,
            at=now_iso(),
            actor=session.actor,
            dry_run=dry_run,
            reason=reason,
            locations=tuple(t.location(component_id) for t in self.targets(stage)),
        )
        if skipped:
            base = attrs.evolve(
                base,
                note="skipped "
                + ", ".join(short(r) for r in skipped)
                + ": collected by gc, no longer deployable",
            )
        return base, pointer.generation, skipped

    def _rollback_asks(self, target: str, component_id: str, stage: str | None) -> list[Ask]:
        """What planning reads first, as it asks it: the open intents, the pointer of the
        stage (of every stage when none is named: the highest where it is current), its
        history, and the component named."""
        ladder = self.session.stage_names
        stages = ladder if stage is None else [stage] if stage in ladder else []
        asks = [Ask("open_intents"), *(Ask("pointer", (s, component_id)) for s in stages)]
        if stage in ladder:
            asks.append(Ask("pointer_history", (stage, component_id)))
        if ":" in target:
            asks.append(Ask("component", (target,)))
        return asks

    def _choose(
        self,
        history: Sequence[PointerChange],
        pointer: Pointer,
        stage: str,
        to: str | None,
        at: str | None,
        remove_if_none: bool,
    ) -> tuple[str | None, list[str]]:
        """The revision to go back to (None: remove the component from the stage), and the
        good revisions skipped because gc collected them; refuses when there is none."""
        component_id = pointer.component_id
        skipped: list[str] = []
        if at is not None:
            when = parse_time(at)
            live = self.session.state().live_at(stage, when, component_id)
            if not live:
                raise NotFoundError(f"nothing was live for {component_id} in {stage} at {at}")
            revision: str | None = live[0].revision
        elif (to or "last-good") == "last-good":
            # The most recent good revision gc has not collected: each collected one is
            # skipped, and the result says which.
            while True:
                revision = last_good(history, exclude=pointer.revision, skip=skipped)
                if revision is None or deployable(self.session, revision):
                    break
                skipped.append(revision)
        else:
            revision = self._rollback_target(history, pointer, to or "last-good", stage)
        if at is None and revision is None and (to or "last-good") != "none" and not remove_if_none:
            gone = f" (gc collected {', '.join(short(r) for r in skipped)})" if skipped else ""
            raise RefusedError(
                f"{component_id} has no earlier revision in {stage} to roll back to{gone}; "
                f"use --to none to remove it from {stage}"
            )
        if revision is not None and not skipped and not deployable(self.session, revision):
            self._refuse_undeployable(revision, component_id, stage)
        return revision, skipped

    def _refuse_undeployable(self, revision: str, component_id: str, stage: str) -> None:
        """Refuse a rollback to ``revision``, whose stored objects are gone: collected by
        gc, or missing."""
        if revision in collected_revisions(self.session):
            raise RefusedError(
                f"revision {short(revision)} of {component_id} in {stage} was collected "
                "by gc (its stored files are gone); roll back to a retained revision "
                "(--to last-good skips collected ones) or stage and promote it again"
            )
        raise RefusedError(
            f"revision {short(revision)} of {component_id} in {stage} misses stored "
            "objects (see 'lockgate verify'); stage its files again to store them, or "
            "roll back to another revision"
        )

    def _live_stage(self, component_id: str) -> str:
        """The highest stage where ``component_id`` is current."""
        state = self.session.state()
        for stage in reversed(self.session.stage_names):
            pointer = state.pointer(stage, component_id)
            if pointer is not None and pointer.revision is not None:
                return stage
        raise RefusedError(f"{component_id} is not current in any stage; nothing to roll back")

    def _rollback_target(
        self, history: Sequence[PointerChange], pointer: Pointer, to: str, stage: str
    ) -> str | None:
        if to == "none":
            return None
        if to == "previous":
            return history[-1].previous_revision if history else None
        # A revision prefix: it must have been live in this stage (a rollback restores).
        live = {c.revision for c in history if c.revision}
        matches = sorted(r for r in live if r.startswith(to.lower()))
        if len(to) >= 4 and len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InputError(f"revision {to!r} is ambiguous in {stage}; give more characters")
        try:
            candidate = resolve_revision(self.session, ComponentRef.parse(pointer.component), to)
        except LockgateError:
            candidate = None
        hint = f"; promote it with 'lockgate promote {pointer.component} --to {stage} --rev {to}'"
        raise NotFoundError(
            f"revision {to!r} was never live for {pointer.component_id} in {stage}"
            + (hint if candidate else "; see 'lockgate history'")
        )
