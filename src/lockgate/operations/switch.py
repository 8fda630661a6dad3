"""The switch that promote and rollback share: plan → gate → deploy → record → announce.

Every switch runs under the lock of its component (the project's operation lock held
shared, and the component lock; see ``lockgate.contracts.locks``), so switches of
different components run side by side, and follows the same steps:

1. **plan** — resolve the component, the stage and the revision; read the stage pointer
   (its generation is what the switch will compare-and-swap against);
2. **gate** (promote only) — the validators, for this stage; ``--force`` with a reason
   skips a failing gate and the audit log says so;
3. **intent** — an intent record is written (durably) before any target is touched;
4. **deploy** — the release is materialized and its bytes verified against their
   digests, the content store makes them durable (``sync``), every target prepares,
   then every target commits (one atomic rename each);
5. **record** — one state transaction: the pointer (compare-and-swap on its generation),
   the component's status, the pointer history and the audit event; the intent closes;
6. **announce** — ``on_promote`` / ``on_rollback``; a failing plugin is reported, the
   change stands.

A process killed anywhere in steps 3 to 5 leaves an open intent. The next command that
touches the project (or ``lockgate recover``) takes the locks the intent was written
under — so its owner is certainly dead — and settles it: when the pointer already
moved, the targets are brought to it (completed); otherwise they are put back to what
the pointer says (undone). The audit log records which.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import attrs

from lockgate.contracts.clock import elapsed_ms, now_iso
from lockgate.contracts.content import (
    store_is_durable,
    store_release_cache,
    store_sync,
)
from lockgate.contracts.locks import LockOwner, hostname
from lockgate.contracts.manifest import ManifestDiff
from lockgate.contracts.models import ChangeEvent
from lockgate.contracts.read_batch import Ask, store_read_batch
from lockgate.contracts.records import record
from lockgate.contracts.refs import ComponentRef, short
from lockgate.contracts.state import AuditEvent, ComponentRecord, Intent, Pointer, PointerChange
from lockgate.contracts.target import RevisionHandle, Target, target_concurrent_switches
from lockgate.core.failpoints import failpoint
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import (
    EnvironmentFault,
    LockgateError,
    PluginError,
    RefusedError,
    environment_fault,
)
from lockgate.operations.announce import announce, failed
from lockgate.operations.approve import rejection
from lockgate.operations.gates import check_protected
from lockgate.operations.lifecycle import move_pointer, next_status
from lockgate.operations.locked_reads import recheck, switch_asks
from lockgate.operations.recover import recover_pending
from lockgate.operations.resolve import resolve_component
from lockgate.operations.revisions import (
    deployed_anywhere,
    prepare,
    release_problems,
    revision_handle,
)

if TYPE_CHECKING:
    from lockgate.operations.validate import ReadinessReport

__all__ = ["SwitchResult", "Switcher", "last_good"]


@record
class SwitchResult:
    """What a promote or rollback did (or, with ``dry_run``, would do)."""

    action: str
    component: str
    component_id: str
    stage: str
    revision: str | None
    previous_revision: str | None
    changed: bool
    at: str
    actor: str
    dry_run: bool = False
    forced: bool = False
    reason: str | None = None
    locations: tuple[str, ...] = ()
    gate: ReadinessReport | None = None
    diff: ManifestDiff | None = None
    note: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "action": self.action,
            "component": self.component,
            "component_id": self.component_id,
            "stage": self.stage,
            "revision": self.revision,
            "previous_revision": self.previous_revision,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "forced": self.forced,
            "reason": self.reason,
            "at": self.at,
            "actor": self.actor,
            "locations": list(self.locations),
            "note": self.note,
            "warnings": list(self.warnings),
        }
        if self.gate is not None:
            data["gate"] = self.gate.to_dict()
        if self.diff is not None:
            data["diff"] = self.diff.to_dict()
        return data

    def summary(self) -> str:
        new = short(self.revision) if self.revision else "nothing"
        old = short(self.previous_revision) if self.previous_revision else "nothing"
        where = f"{self.component_id} in {self.stage}"
        if not self.changed and not self.dry_run:
            return f"{where}: {new} is already current; nothing to do"
        verb = {"promote": "promoted", "rollback": "rolled back"}.get(self.action, self.action)
        if self.dry_run:
            return f"{where}: would switch {old} → {new} ({self.action}, dry run)"
        forced = " (forced past failing gates)" if self.forced else ""
        note = f" ({self.note})" if self.note else ""
        return f"{where}: {verb} {old} → {new}{forced}{note}"


class Switcher:
    """The machinery promote and rollback share: targets, the lock, intent → deploy →
    record, and undoing a switch that failed."""

    deadline: tuple[float, float] | None = None
    """When set (``time.monotonic()`` at which it ends, and the timeout it came from), a
    switch still running then stops before its change becomes visible (a pipeline step's
    ``timeout``)."""

    def __init__(self, session: Session | Project) -> None:
        self.session = as_session(session)

    def check_deadline(self, component: str, doing: str) -> None:
        """Refuse to go on when the deadline passed: nothing is visible yet."""
        if self.deadline is not None and time.monotonic() > self.deadline[0]:
            raise RefusedError(
                f"{component} ran over its timeout of {self.deadline[1]:g} s while {doing}; "
                "stopped before the switch was made visible"
            )

    def targets(self, stage: str) -> list[Target]:
        """The targets of ``stage``, built once per session."""
        return self.session.targets(stage)

    _owner: LockOwner | None = None

    def lock(
        self,
        operation: str,
        *,
        components: Collection[str] | None = None,
        reads: Sequence[Ask] = (),
    ) -> AbstractContextManager[LockOwner]:
        """The lock a switch of ``components`` holds: the project's operation lock
        shared and their component locks; without components the operation lock
        exclusive (waits up to ``state.lock_timeout``); inside :meth:`holding`, nothing.
        ``reads``: what the switch reads first under it (``Session.lock``)."""
        if self._owner is not None:
            return nullcontext(self._owner)
        return self.session.lock(operation, components=components, reads=reads)

    @contextmanager
    def holding(self, operation: str) -> Iterator[None]:
        """The operation lock, exclusive, across many switches (a pipeline run, a removal)."""
        with self.session.lock(operation) as owner:
            self._owner = owner
            try:
                yield
            finally:
                self._owner = None

    def lockable(self, stage: str, component_id: str) -> tuple[str, ...] | None:
        """The components whose locks a switch in ``stage`` holds: ``component_id`` when
        every target of the stage takes switches of different components at once
        (``target_concurrent_switches``), else None (the operation lock, exclusive)."""
        targets = self.targets(stage)
        if targets and all(target_concurrent_switches(t) for t in targets):
            return (component_id,)
        return None

    def resolve(self, target: str) -> ComponentRef:
        """``WS:ID`` as given; a bare ID when exactly one workspace has that component."""
        return resolve_component(self.session, target)

    def _check_admissible(self, base: SwitchResult, ref: ComponentRef) -> None:
        """Refuse (and audit) a switch to a rejected revision, or one the status forbids.

        Called when the switch is planned and again under the operation lock just before
        any target is touched: approve and reject take that lock too, so a rejection that
        landed while the gates ran is seen here. No ``--force`` skips this: a rejection
        belongs to the revision's digest, whatever was staged since.
        """
        revision = base.revision
        if revision is None:
            return  # removing a component from a stage puts nothing into it
        state = self.session.state()
        record = state.component(str(ref))
        if base.action == "promote" and record is not None and record.latest_revision == revision:
            try:
                next_status(str(ref), record.status, "promote")
            except RefusedError as exc:
                self._refused(base, exc.message)
                raise
        rejected = rejection(state, str(ref), revision)
        if rejected is not None:
            why = f"{short(revision)} was rejected by {rejected.actor}" + (
                f" ({rejected.comment})" if rejected.comment else ""
            )
            self._refused(base, why)
            verb = "promoted" if base.action == "promote" else "rolled back to"
            other = "" if base.action == "promote" else ", or pick another with --to"
            raise RefusedError(
                f"{ref} {why} and cannot be {verb} in {base.stage}; stage a new revision{other}"
            )

    def _diff(self, old: str | None, new: str | None) -> ManifestDiff:
        content = self.session.content()
        return ManifestDiff.between(
            content.get_manifest(old) if old else None,
            content.get_manifest(new) if new else None,
        )

    # ------------------------------------------------------------------ the switch

    def _switch(
        self,
        base: SwitchResult,
        *,
        ref: ComponentRef,
        expected_generation: int,
        action: str,
        details: dict[str, object],
        started: float | None = None,
        before: list[AuditEvent] | None = None,
    ) -> SwitchResult:
        """Under the operation lock: check nothing changed, deploy, record; then announce.
        ``started``: ``time.perf_counter()`` when the operation began; the record's event
        then carries ``duration_ms``, the time from there to the commit (``lockgate
        metrics`` reports them). ``before``: events recorded with the switch (emptied
        once they are)."""
        session, state = self.session, self.session.state()
        components = self.lockable(base.stage, base.component_id)
        # What its checks read first under the locks may go with them (ReadBatch's asks).
        batched = store_read_batch(state) is not None
        asks = switch_asks(base.stage, base.component_id, str(ref), base.revision)
        with self.lock(action, components=components, reads=asks if batched else ()):
            seen = recheck(
                session,
                base,
                str(ref),
                expected_generation,
                action,
                lambda: self._check_admissible(base, ref),
            )
            generation = expected_generation  # recheck refused any other
            # The switch happens now: its record's time follows every event before it.
            base = attrs.evolve(base, at=now_iso())
            handle = self._ready_release(base)
            self.check_deadline(base.component, "verifying its release")
            intent = self._open_intent(base, ref, action, generation)
            self._deploy_and_record(
                base, ref, action, intent, handle, generation, details, started, before, seen
            )
            failpoint(f"{action}.after_record")
            state.close_intent(intent.id, "completed")
        return self._announce(base, ref, action, details)

    def _ready_release(self, base: SwitchResult) -> RevisionHandle | None:
        """Refuse (and audit) a damaged revision; make what will be deployed durable; the
        handle targets read it through (None: the switch removes the component)."""
        revision = base.revision
        content = self.session.content()
        cache = store_release_cache(content)
        if revision is not None:
            problems = release_problems(self.session, revision)
            if problems and cache is not None and not deployed_anywhere(self.session, revision):
                # A release is a cache of the store. One no stage uses is rebuilt: it
                # may have been built (by a gate) from objects a restart then tore,
                # and which staging has since stored again.
                cache.remove_release(revision)
                problems = release_problems(self.session, revision)
            if problems:
                self._refused(base, f"damaged: {problems[0]}")
                raise RefusedError(
                    f"{short(revision)} is damaged and will not be deployed: {problems[0]}"
                    f"{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; "
                    "run 'lockgate verify'"
                )
        # Staging may leave objects to the kernel's write-back, and a release may hold
        # copies (executables) or be new: what is deployed is on the disk before the
        # intent is written. A release already flushed in this boot is not flushed
        # again, and none is when the store's durability is off (fsync: false).
        store_sync(content)
        if revision is not None and cache is not None and store_is_durable(content):
            cache.make_release_durable(revision)
        return revision_handle(self.session, revision) if revision is not None else None

    def _open_intent(
        self, base: SwitchResult, ref: ComponentRef, action: str, generation: int
    ) -> Intent:
        """Write (durably) the intent recovery settles should this process die."""
        intent = Intent(
            id=uuid.uuid4().hex,
            operation=action,
            owner=f"{os.getpid()}@{hostname()}",
            created_at=now_iso(),
            payload={
                "stage": base.stage,
                "component_id": base.component_id,
                "component": str(ref),
                "revision": base.revision,
                "previous_revision": base.previous_revision,
                "generation": generation + 1,
            },
        )
        self.session.state().open_intent(intent)
        failpoint(f"{action}.after_intent")
        return intent

    def _deploy_and_record(
        self,
        base: SwitchResult,
        ref: ComponentRef,
        action: str,
        intent: Intent,
        handle: RevisionHandle | None,
        generation: int,
        details: dict[str, object],
        started: float | None = None,
        before: list[AuditEvent] | None = None,
        seen: tuple[ComponentRecord, Pointer | None] | None = None,
    ) -> None:
        """Prepare every target, commit each, record the switch (from ``seen``: the
        component and its pointer as read under the locks); undo it on any failure."""
        session, stage = self.session, base.stage
        step = "record"
        try:
            targets = self.targets(stage)
            step = "prepare"
            prepared = [prepare(t, base.component_id, handle) for t in targets]
            failpoint(f"{action}.after_prepare")
            self.check_deadline(base.component, "preparing the targets")
            step = "commit"
            for target, ready in zip(targets, prepared, strict=True):
                target.commit(ready)
                failpoint(f"{action}.after_switch")
            step = "record"
            # Promoting the latest revision moves its status by the status machine
            # (checked before anything was touched); any other switch leaves it alone
            # unless the machine allows the action.
            move_pointer(
                session,
                stage=stage,
                component=str(ref),
                revision=base.revision,
                action=action,
                expected_generation=generation,
                reason=base.reason,
                details={"intent": intent.id, **details, **elapsed_ms(started)},
                strict=False,
                at=base.at,
                before=tuple(before or ()),
                seen=seen,
            )
            if before:
                before.clear()  # recorded
        except BaseException as exc:
            error = self._undo(session, intent, step, exc)
            if step in ("prepare", "commit") and isinstance(exc, Exception):
                self._target_failed(base, step, error)
            if error is exc:
                raise
            raise error from exc

    def _announce(
        self, base: SwitchResult, ref: ComponentRef, action: str, details: dict[str, object]
    ) -> SwitchResult:
        """``on_promote`` or ``on_rollback``; a failing plugin is a warning (and an audit
        event naming it), the switch stands."""
        hooks = self.session.hooks
        failures = announce(  # recorded in the audit log when a plugin fails to hear it
            self.session,
            hooks.on_promote if action == "promote" else hooks.on_rollback,
            ChangeEvent(
                action=action,
                component=str(ref),
                stage=base.stage,
                revision=base.revision,
                previous_revision=base.previous_revision,
                actor=base.actor,
                at=dt.datetime.fromisoformat(base.at),
                reason=base.reason,
                details=details,
            ),
        )
        return attrs.evolve(base, warnings=tuple(str(f) for f in failures))

    def _undo(
        self, session: Session, intent: Intent, step: str, exc: BaseException
    ) -> BaseException:
        """Put the targets back after a switch failed, and say what failed in one line.

        The targets are brought to what the pointer says, exactly as recovery would
        (the pointer did not move unless the record was written): the stage never serves
        an unrecorded revision. When the state store can still be written the intent is
        settled too; otherwise it stays open and the next command settles it once the
        fault is gone. Returns the error to raise.
        """
        payload = intent.payload
        where = f"{payload.get('stage')}/{payload.get('component_id')}"
        try:
            # Under the lock, with every earlier intent settled on entry: this is ours.
            settled = recover_pending(session, locked=True)
            back = "; ".join(r.summary() for r in settled)
        except Exception as second:  # the first failure is the one reported
            try:
                self._put_back(str(payload["stage"]), str(payload["component_id"]), payload)
                why = _describe(second)
                back = f"{where} is back at its recorded revision; {_NEXT} " + (
                    "records that" if why == _describe(exc) else f"records that (not now: {why})"
                )
            except Exception as third:
                back = f"{where} could not be put back ({_describe(third)}); {_NEXT} settles it"
        if isinstance(exc, LockgateError) and not isinstance(exc, PluginError):
            if back:  # the same error (class, exit code, attributes), told what was done
                exc.message = f"{exc.message} ({back})"
                exc.args = (exc.message,)
            return exc
        fault = environment_fault(exc)
        if fault is not None:
            return EnvironmentFault(f"{fault.message}; {back}" if back else fault.message)
        if step in ("prepare", "commit") and isinstance(exc, Exception):
            kinds = ", ".join(
                t.kind for t in session.config.stages[str(payload["stage"])].target_list()
            )
            return PluginError(
                f"stage target ({kinds}) of {where} failed in {step}: "
                f"{_describe(exc)}; {back}; fix the target and retry"
            )
        return exc

    def _put_back(self, stage: str, component_id: str, payload: dict[str, Any]) -> None:
        """Bring the targets back to the revision the pointer held before this switch.

        Only when the state store cannot even be read to settle the switch: the pointer
        did not move (its write failed), so the revision before is the recorded one.
        """
        previous = payload.get("previous_revision")
        revision = str(previous) if previous else None
        handle = revision_handle(self.session, revision) if revision else None
        for target in self.targets(stage):
            prepared = prepare(target, component_id, handle)
            if target.deployed().get(component_id) == revision:
                target.abort(prepared)
            else:
                target.commit(prepared)

    def _protect(self, base: SwitchResult, *, dry_run: bool) -> None:
        """Refuse, and audit the refusal, when the environment weakens a protected stage."""
        try:
            check_protected(self.session, base.stage)
        except RefusedError as exc:
            if not dry_run:
                self._refused(base, exc.message)
            raise

    def _refused(self, base: SwitchResult, why: str) -> None:
        """Record an operation the gates or the integrity checks refused (and announce it
        through ``on_failure``)."""
        failed(
            self.session,
            AuditEvent(
                at=now_iso(),
                actor=base.actor,
                action=base.action,
                component=base.component,
                stage=base.stage,
                revision=base.revision,
                previous_revision=base.previous_revision,
                reason=base.reason,
                details={"refused": why, **self.session.identity.details()},
                outcome="refused",
            ),
        )

    def _target_failed(self, base: SwitchResult, step: str, error: BaseException) -> None:
        """Record a switch a stage target failed (it was undone), and announce it; a
        state store that cannot record it now leaves the error as the command's."""
        event = AuditEvent(
            at=now_iso(),
            actor=base.actor,
            action=base.action,
            component=base.component,
            stage=base.stage,
            revision=base.revision,
            previous_revision=base.previous_revision,
            reason=base.reason,
            details={"step": step, "error": _describe(error)},
            outcome="failed",
        )
        try:
            failed(self.session, event)
        except Exception as exc:
            if not isinstance(exc, LockgateError) and environment_fault(exc) is None:
                raise


_NEXT = "the next lockgate command that changes something (or 'lockgate recover')"
"""Who settles a switch left open: commands that only read never recover."""


def _describe(exc: BaseException) -> str:
    """An error as a short phrase for a message about another one."""
    fault = environment_fault(exc)
    if fault is not None:
        return fault.message
    if isinstance(exc, LockgateError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def last_good(
    history: Sequence[PointerChange], exclude: str | None, skip: Collection[str] = ()
) -> str | None:
    """The most recent revision that was live and not rolled back for cause (nor in
    ``skip``).

    A rollback condemns the revision it moved away from, unless it restores a condemned
    revision (a roll forward: the restored one is rehabilitated and the one left is not
    condemned); promoting a condemned revision again rehabilitates it too.
    """
    condemned: set[str] = set()
    for change in history:
        if change.action == "rollback":
            if change.revision in condemned:
                condemned.discard(change.revision)
            elif change.previous_revision:
                condemned.add(change.previous_revision)
        elif change.revision:
            condemned.discard(change.revision)
    for change in reversed(history):
        revision = change.revision
        if revision and revision != exclude and revision not in condemned and revision not in skip:
            return revision
    return None
