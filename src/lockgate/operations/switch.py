"""Promote and roll back: plan → gate → deploy → record → announce, crash-safe.

Every switch runs under the project's operation lock (core/locking.py) and follows the
same steps:

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

A process killed anywhere in steps 3 to 5 leaves an open intent. The next command that touches the
project (or ``lockgate recover``) takes the lock — so the intent's owner is certainly
dead — and settles it: when the pointer already moved, the targets are brought to it
(completed); otherwise they are put back to what the pointer says (undone). The audit
log records which.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from lockgate.core.contracts import (
    AuditEvent,
    EventFilter,
    Intent,
    Pointer,
    PointerChange,
    Target,
    corrupt_record,
    store_is_durable,
)
from lockgate.core.failpoints import failpoint
from lockgate.core.gates import check_protected, gate_record
from lockgate.core.lifecycle import move_pointer, next_status, now_iso
from lockgate.core.locking import OperationLock
from lockgate.core.models import ChangeEvent
from lockgate.core.records import record
from lockgate.core.refs import (
    ComponentRef,
    check_name,
    check_revision,
    check_text,
    name_problem,
    short,
)
from lockgate.errors import (
    ConflictError,
    EnvironmentFault,
    InputError,
    LockgateError,
    NotFoundError,
    NotReadyError,
    PluginError,
    RefusedError,
    environment_fault,
)

if TYPE_CHECKING:
    from lockgate.core.manifest import ManifestDiff
    from lockgate.core.project import Project
    from lockgate.core.validation import ReadinessReport

__all__ = ["Promoter", "SwitchResult", "recover_pending"]


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


class Promoter:
    """Promotion and rollback for one project."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._targets: dict[str, list[Target]] = {}

    # ------------------------------------------------------------------ targets

    def targets(self, stage: str) -> list[Target]:
        """The targets of ``stage``, built once."""
        if stage not in self._targets:
            section = self.project.config.stages[stage]
            self._targets[stage] = [
                self.project.roles.build("target", t.kind, {**t.options, "stage": stage})
                for t in section.target_list()
            ]
        return self._targets[stage]

    def lock(self, operation: str) -> OperationLock:
        """The project's operation lock (waits up to ``state.lock_timeout``)."""
        state_dir = self.project.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        return OperationLock(state_dir, operation, self.project.config.state.lock_timeout)

    # ------------------------------------------------------------------ promote

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
        from lockgate.core.lifecycle import next_stage
        from lockgate.core.validation import Validation

        project = self.project
        if force and not reason:
            raise InputError("--force needs --reason TEXT: skipping a gate is audited")
        # Every input that ends up in the record is checked before anything is touched.
        check_text("--reason", reason)
        project.actor  # noqa: B018 - checked (UTF-8) here, not after the targets switched
        if not dry_run:
            recover_pending(project)
        state = project.state()
        ref = self.resolve(target)
        stage = project.check_stage(to) if to else next_stage(project, str(ref))
        revision, ref = self._candidate(ref, stage, rev)
        section = project.config.stages[stage]
        pointer = state.pointer(stage, ref.component_id)
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
            actor=project.actor,
            dry_run=dry_run,
            reason=reason,
            locations=tuple(t.location(ref.component_id) for t in self.targets(stage)),
        )
        if current == revision:
            return attrs.evolve(base, note="already current")
        if not dry_run:
            self._check_admissible(base, ref)
        self._protect(base, dry_run=dry_run)
        report = None
        if section.gates.validate:
            report = Validation(project).run(
                [ref],
                stage,
                revisions={str(ref): revision},
                skip=section.gates.skip,
                record=not dry_run,
                # A gate decision is re-derived: the cache under .lockgate/ is writable by
                # whoever can write the project, so it never turns a failure into a pass.
                use_cache=False,
            )
        if dry_run:
            return attrs.evolve(base, gate=report, diff=self._diff(current, revision))
        forced = False
        if report is not None and not report.ready:
            if not force:
                self._refused(base, f"not ready: {report.summary()}")
                first = next(i for c in report.components for i in c.issues if i.blocking)
                raise NotReadyError(
                    f"{ref} {short(revision)} is not ready for {stage} "
                    f"({report.summary().removeprefix('not ready: ')}) "
                    f"(first: {first.describe()}); see 'lockgate validate {ref} --stage {stage}'"
                )
            if not section.gates.allow_force:
                self._refused(base, f"--force is not allowed into {stage}")
                raise RefusedError(f"stage {stage} does not allow --force (gates.allow_force)")
            forced = True
        details: dict[str, object] = {}
        if forced and report is not None:
            details = {
                "forced": True,
                "skipped_issues": [
                    i.describe() for c in report.components for i in c.issues if i.blocking
                ],
            }
        details["gates"] = gate_record(project, stage, report, forced=forced)
        result = self._switch(
            base,
            ref=ref,
            expected_generation=generation,
            action="promote",
            details=details,
        )
        return attrs.evolve(result, gate=report, forced=forced)

    def resolve(self, target: str) -> ComponentRef:
        """``WS:ID`` as given; a bare ID when exactly one workspace has that component."""
        if ":" in target:
            return ComponentRef.parse(target)
        check_name("component id", target)
        owners = [
            r.component for r in self.project.state().components() if r.component_id == target
        ]
        if len(owners) == 1:
            return ComponentRef.parse(owners[0])
        if not owners:
            raise NotFoundError(f"no staged component has id '{target}'; stage it first")
        raise InputError(
            f"'{target}' is staged from several workspaces ({', '.join(sorted(owners))}); "
            "name one as WS:ID"
        )

    def _candidate(
        self, ref: ComponentRef, stage: str, rev: str | None
    ) -> tuple[str, ComponentRef]:
        """The revision to promote into ``stage`` and the component that supplied it."""
        from lockgate.core.listing import resolve_revision

        project, state = self.project, self.project.state()
        if rev is not None:
            return resolve_revision(project, ref, rev), ref
        ladder = project.stage_names
        index = ladder.index(stage)
        if index == 0:
            return resolve_revision(project, ref, "latest"), ref
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

    def _check_admissible(self, base: SwitchResult, ref: ComponentRef) -> None:
        """Refuse (and audit) a switch to a rejected revision, or one the status forbids.

        Called when the switch is planned and again under the operation lock just before
        any target is touched: approve and reject take that lock too, so a rejection that
        landed while the gates ran is seen here. No ``--force`` skips this: a rejection
        belongs to the revision's digest, whatever was staged since.
        """
        from lockgate.core.approvals import rejection

        revision = base.revision
        if revision is None:
            return  # removing a component from a stage puts nothing into it
        state = self.project.state()
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
        from lockgate.core.manifest import ManifestDiff

        content = self.project.content()
        return ManifestDiff.between(
            content.get_manifest(old) if old else None,
            content.get_manifest(new) if new else None,
        )

    # ------------------------------------------------------------------ rollback

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
        from lockgate.core.reports import parse_time

        project = self.project
        check_text("--reason", reason)
        project.actor  # noqa: B018 - checked (UTF-8) here, not after the targets switched
        if not dry_run:
            recover_pending(project)
        state = project.state()
        component_id = target.split(":", 1)[-1]
        check_name("component id", component_id)
        stage = project.check_stage(stage) if stage else self._live_stage(component_id)
        pointer = state.pointer(stage, component_id)
        if pointer is None or pointer.revision is None:
            raise RefusedError(
                f"nothing is current for {component_id} in {stage}; nothing to roll back"
            )
        history = state.pointer_history(stage, component_id)
        skipped: list[str] = []
        if at is not None:
            when = parse_time(at)
            live = state.live_at(stage, when, component_id)
            if not live:
                raise NotFoundError(f"nothing was live for {component_id} in {stage} at {at}")
            revision: str | None = live[0].revision
        elif (to or "last-good") == "last-good":
            # The most recent good revision gc has not collected: each collected one is
            # skipped, and the result says which.
            while True:
                revision = last_good(history, exclude=pointer.revision, skip=skipped)
                if revision is None or self._deployable(revision):
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
        if revision is not None and not skipped and not self._deployable(revision):
            from lockgate.core.integrity import collected_revisions

            if revision in collected_revisions(project):
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
            actor=project.actor,
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
        if not base.changed:
            return attrs.evolve(base, note="already current")
        if not dry_run:
            self._check_admissible(base, ComponentRef.parse(owner))
        if dry_run:
            return attrs.evolve(base, diff=self._diff(pointer.revision, revision))
        return self._switch(
            base,
            ref=ComponentRef.parse(owner),
            expected_generation=pointer.generation,
            action="rollback",
            details={"to": to or ("at " + at if at else "last-good")}
            | ({"skipped": skipped} if skipped else {}),
        )

    def _deployable(self, revision: str) -> bool:
        """Whether ``revision`` can still be deployed: its release exists (a switch
        verifies it), or its manifest and every object it needs are stored."""
        from lockgate.core.releases import release_path

        if release_path(self.project, revision).is_dir():
            return True
        content = self.project.content()
        try:
            manifest = content.get_manifest(revision)
        except LockgateError:
            return False
        lost = content.lost()
        digests = {e.digest for e in manifest.entries if e.digest and e.kind != "symlink"}
        return all(d not in lost and content.has(d) for d in digests)

    def _live_stage(self, component_id: str) -> str:
        """The highest stage where ``component_id`` is current."""
        state = self.project.state()
        for stage in reversed(self.project.stage_names):
            pointer = state.pointer(stage, component_id)
            if pointer is not None and pointer.revision is not None:
                return stage
        raise RefusedError(f"{component_id} is not current in any stage; nothing to roll back")

    def _rollback_target(
        self, history: Sequence[PointerChange], pointer: Pointer, to: str, stage: str
    ) -> str | None:
        from lockgate.core.listing import resolve_revision

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
            candidate = resolve_revision(self.project, ComponentRef.parse(pointer.component), to)
        except LockgateError:
            candidate = None
        hint = f"; promote it with 'lockgate promote {pointer.component} --to {stage} --rev {to}'"
        raise NotFoundError(
            f"revision {to!r} was never live for {pointer.component_id} in {stage}"
            + (hint if candidate else "; see 'lockgate history'")
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
    ) -> SwitchResult:
        from lockgate.core.releases import (
            discard_release,
            ensure_release,
            make_durable,
            verify_release,
        )

        project, state = self.project, self.project.state()
        stage, component_id, revision = base.stage, base.component_id, base.revision
        with self.lock(action):
            recover_pending(project, locked=True)
            pointer = state.pointer(stage, component_id)
            generation = pointer.generation if pointer else 0
            if generation != expected_generation:
                raise ConflictError(
                    f"{stage}/{component_id} changed while this {action} was being planned "
                    f"(generation {generation}, expected {expected_generation}): another "
                    "change won; look again and retry"
                )
            # What the gates saw may be stale: a rejection can have landed while they ran.
            self._check_admissible(base, ref)
            # The switch happens now: its record's time follows every event before it.
            base = attrs.evolve(base, at=now_iso())
            release = None
            if revision is not None:
                release = ensure_release(project, revision)
                problems = verify_release(project, revision)
                if problems and not self._deployed(revision):
                    # A release is a cache of the store. One no stage uses is rebuilt: it
                    # may have been built (by a gate) from objects a restart then tore,
                    # and which staging has since stored again.
                    discard_release(project, revision)
                    release = ensure_release(project, revision)
                    problems = verify_release(project, revision)
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
            content = project.content()
            content.sync()
            if revision is not None and store_is_durable(content):
                make_durable(project, revision)
            intent = Intent(
                id=uuid.uuid4().hex,
                operation=action,
                owner=f"{os.getpid()}@{socket.gethostname()}",
                created_at=now_iso(),
                payload={
                    "stage": stage,
                    "component_id": component_id,
                    "component": str(ref),
                    "revision": revision,
                    "previous_revision": base.previous_revision,
                    "generation": generation + 1,
                },
            )
            state.open_intent(intent)
            failpoint(f"{action}.after_intent")
            step = "record"
            try:
                targets = self.targets(stage)
                step = "prepare"
                prepared = [t.prepare(component_id, revision, release) for t in targets]
                failpoint(f"{action}.after_prepare")
                step = "commit"
                for target, ready in zip(targets, prepared, strict=True):
                    target.commit(ready)
                    failpoint(f"{action}.after_switch")
                step = "record"
                # Promoting the latest revision moves its status by the status machine
                # (checked before anything was touched); any other switch leaves it alone
                # unless the machine allows the action.
                move_pointer(
                    project,
                    stage=stage,
                    component=str(ref),
                    revision=revision,
                    action=action,
                    expected_generation=generation,
                    reason=base.reason,
                    details={"intent": intent.id, **details},
                    strict=False,
                    at=base.at,
                )
            except BaseException as exc:
                error = self._undo(project, intent, step, exc)
                if error is exc:
                    raise
                raise error from exc
            failpoint(f"{action}.after_record")
            state.close_intent(intent.id, "completed")
        hooks = project.hooks.on_promote if action == "promote" else project.hooks.on_rollback
        failures = hooks(
            ChangeEvent(
                action=action,
                component=str(ref),
                stage=stage,
                revision=revision,
                previous_revision=base.previous_revision,
                actor=base.actor,
                at=dt.datetime.fromisoformat(base.at),
                reason=base.reason,
                details=details,
            )
        )
        return attrs.evolve(base, warnings=tuple(str(f) for f in failures))

    def _undo(
        self, project: Project, intent: Intent, step: str, exc: BaseException
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
            settled = _recover(project, self)
            back = "; ".join(r.summary() for r in settled)
        except Exception as second:  # the first failure is the one reported
            try:
                self._put_back(str(payload["stage"]), str(payload["component_id"]), payload)
                why = _describe(second)
                back = f"{where} is back at its recorded revision; the next lockgate command " + (
                    "records that" if why == _describe(exc) else f"records that (not now: {why})"
                )
            except Exception as third:
                back = (
                    f"{where} could not be put back ({_describe(third)}); the next "
                    "lockgate command settles it"
                )
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
                t.kind for t in project.config.stages[str(payload["stage"])].target_list()
            )
            return PluginError(
                f"stage target ({kinds}) of {where} failed in {step}: "
                f"{type(exc).__name__}: {exc}; {back}; fix the target and retry"
            )
        return exc

    def _put_back(self, stage: str, component_id: str, payload: dict[str, Any]) -> None:
        """Bring the targets back to the revision the pointer held before this switch.

        Only when the state store cannot even be read to settle the switch: the pointer
        did not move (its write failed), so the revision before is the recorded one.
        """
        from lockgate.core.releases import ensure_release

        previous = payload.get("previous_revision")
        revision = str(previous) if previous else None
        for target in self.targets(stage):
            release = ensure_release(self.project, revision) if revision else None
            prepared = target.prepare(component_id, revision, release)
            if target.deployed().get(component_id) == revision:
                target.abort(prepared)
            else:
                target.commit(prepared)

    def _deployed(self, revision: str) -> bool:
        """True when some stage's pointer holds ``revision`` (its release is in use)."""
        state = self.project.state()
        return any(
            p.revision == revision
            for stage in self.project.stage_names
            for p in state.pointers(stage)
        )

    def _protect(self, base: SwitchResult, *, dry_run: bool) -> None:
        """Refuse, and audit the refusal, when the environment weakens a protected stage."""
        try:
            check_protected(self.project, base.stage)
        except RefusedError as exc:
            if not dry_run:
                self._refused(base, exc.message)
            raise

    def _refused(self, base: SwitchResult, why: str) -> None:
        """Record an operation the gates or the integrity checks refused."""
        self.project.state().append_event(
            AuditEvent(
                at=now_iso(),
                actor=base.actor,
                action=base.action,
                component=base.component,
                stage=base.stage,
                revision=base.revision,
                previous_revision=base.previous_revision,
                reason=base.reason,
                details={"refused": why},
                outcome="refused",
            )
        )


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


# --------------------------------------------------------------------------- recovery


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
        rev = short(self.revision) if self.revision else "nothing"
        return (
            f"interrupted {self.operation} of {self.component_id} in {self.stage}: "
            f"{self.outcome} ({self.stage} has {rev})"
        )


def recover_pending(project: Project, *, locked: bool = False) -> list[Recovered]:
    """Settle every open intent (an operation a crash interrupted); cheap when none is."""
    state = project.state()
    if not state.open_intents():
        return []
    promoter = Promoter(project)
    if not locked:
        with promoter.lock("recover"):
            return _recover(project, promoter)
    return _recover(project, promoter)


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


def _recover(project: Project, promoter: Promoter) -> list[Recovered]:
    from lockgate.core.releases import ensure_release

    state = project.state()
    settled = []
    for intent in state.open_intents():
        stage, component_id, component, intended, generation = _intent_names(intent)
        if stage not in project.config.stages:
            state.close_intent(intent.id, "undone")
            continue
        pointer = state.pointer(stage, component_id)
        now = pointer.revision if pointer else None
        moved = pointer is not None and pointer.generation >= generation
        outcome = "completed" if moved and now == intended else "undone"
        for target in promoter.targets(stage):
            release = ensure_release(project, now) if now else None
            prepared = target.prepare(component_id, now, release)  # also sweeps leftovers
            if target.deployed().get(component_id) == now:
                target.abort(prepared)
            else:
                target.commit(prepared)
        failpoint("recover.after_switch")
        # One recover event per intent, even when a recovery died between writing it and
        # closing the intent (the next one decides the same from the same pointer).
        earlier = state.events(EventFilter(component=component, stage=stage, action="recover"))
        if not any(e.details.get("intent") == intent.id for e in earlier):
            state.append_event(
                AuditEvent(
                    at=now_iso(),
                    actor=project.actor,
                    action="recover",
                    component=component,
                    stage=stage,
                    revision=now,
                    details={
                        "intent": intent.id,
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
