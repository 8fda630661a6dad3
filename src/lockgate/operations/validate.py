"""The validate operation: run every enabled validator over components, safely, and report.

Validators are ``on_validate`` implementations (see hookspecs). For each component the
kernel builds a :class:`~lockgate.contracts.models.ValidationSubject` (the revision as a
read-only release directory, or the workspace itself), then calls every validator that
handles the component's type:

* in parallel, each call in its own daemon thread, at most ``validation.workers`` at once;
* with a deadline of ``validation.timeout`` seconds per call: a validator that has not
  answered by then is reported as timed out and abandoned (a thread cannot be killed,
  but nothing waits for it, and the process may exit while it still runs);
* failing closed: a validator that raises or times out is an error issue attributed to
  its plugin, and the other validators' results are still reported;
* unable to end the process: once validators run, ``os._exit``, ``os.abort`` and the
  ``os.exec*`` family refuse to act from any thread but the main one (of this process,
  not of a child it forks), so a validator that tries is a failed gate
  (``validator-exit``), reported and audited, never a command that "succeeds" having
  done nothing;
* through a cache: the issues of a validator that declares ``cache=True`` are kept per
  (revision, validator, version, settings, and the stage unless it declares
  ``per_stage=False``), in the state store when it offers ``ValidationResults`` (a
  promotion's gate reads those too), else under ``.lockgate/cache/validation/`` (which a
  gate never reads), so re-validating an unchanged revision does not call it again.

Each validated component appends one ``validate`` audit event (outcome ``ok`` when ready,
``failed`` when not), which the statistics count.

The calls themselves run on the pool of :mod:`lockgate.operations.validate_pool`
(deadlines, the exit guard) and the cache is :mod:`lockgate.operations.validate_cache`.
"""

from __future__ import annotations

import errno
import functools
import os
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lockgate.contracts.audit import verdict_digest
from lockgate.contracts.clock import now_iso
from lockgate.contracts.history import lineage_of, store_lineage, store_live_revisions
from lockgate.contracts.models import (
    ComponentReadiness,
    Decision,
    Issue,
    PeerComponent,
    ReadinessReport,
    Severity,
    ValidationContext,
    ValidationSubject,
)
from lockgate.contracts.peers import StagedPeers, StagePointers, store_components_by_id
from lockgate.contracts.read_batch import Ask
from lockgate.contracts.records import record
from lockgate.contracts.refs import ComponentRef
from lockgate.contracts.source import ComponentSpec
from lockgate.contracts.state import (
    AuditEvent,
    ComponentRecord,
    EventFilter,
    StateStore,
    store_results,
)
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.core.specs import read_spec
from lockgate.errors import LockedError, LockgateError, NotFoundError
from lockgate.operations.announce import failed
from lockgate.operations.approve import authors_of
from lockgate.operations.gates import closed_gates
from lockgate.operations.lifecycle import next_stage
from lockgate.operations.read_memo import READ_EACH
from lockgate.operations.recover import settle
from lockgate.operations.revisions import release_dir, revision_handle, revision_spec
from lockgate.operations.signatures import signed_decisions
from lockgate.operations.validate_cache import (
    FileResults,
    StoreResults,
    ValidationCache,
    cache_key,
)
from lockgate.operations.validate_context import ContextReads
from lockgate.operations.validate_pool import Call, exit_issue, run_calls

if TYPE_CHECKING:
    from lockgate.core.hooks import Validator

__all__ = ["ComponentReadiness", "ReadinessReport", "Validation", "gate_asks"]

_ACTIVE_STATUSES = ("staged", "approved", "promoted")


@record
class _Prepared:
    """One component, ready to be validated."""

    subject: ValidationSubject
    stage: str
    validators: tuple[Validator, ...]
    problems: tuple[Issue, ...] = ()


_Base = tuple[ComponentRef, str, ValidationSubject | None, tuple[Issue, ...]]
"""A component's first preparation: its ref, stage, subject (None: it has none) and the
issues found meanwhile."""


def gate_asks(session: Session, component: str, revision: str, stage: str) -> list[Ask]:
    """The state reads of a gate over stored ``revision`` of ``component`` into ``stage``
    (:meth:`Validation.run` with ``gate=True``), as it asks them: the component's record
    (:meth:`Validation._prepare`), the components of its id in every workspace (what the
    ``conflicts`` validator asks its context), the revision's approvals, their
    signatures' events, its lineage (its author and authors: ``RevisionLineage``, else the
    stagings, revisions and live revisions it is walked from; :meth:`Validation._context`),
    and the verdicts kept for it. A promotion reads them in
    one call beforehand (``read_memo.ask_together``); one missing here is read on its own
    when asked (``tests/test_read_batch.py`` counts them)."""
    state = session.state()
    ladder = tuple(session.stage_names)
    asks = [
        Ask("component", (component,)),
        Ask("approvals", (component, revision)),
        Ask("events", (EventFilter(component=component, action="approve"),)),
    ]
    if store_components_by_id(state) is not None:
        asks.append(Ask("components_by_id", ((ComponentRef.parse(component).component_id,),)))
    if store_lineage(state) is not None:
        asks.append(Ask("lineage", (component, revision, ladder)))
    else:
        asks += [
            Ask("events", (EventFilter(component=component, action="stage"),)),
            Ask("revisions", (component,)),
        ]
        if store_live_revisions(state) is not None:
            asks.append(Ask("live_revisions", (component, ladder)))
    if store_results(state) is not None:
        asks.append(Ask("validation_results", (revision,)))
    return asks


def _batch(
    bases: Sequence[_Base], records: Mapping[str, ComponentRecord]
) -> tuple[PeerComponent, ...]:
    """The components validated together, as each one's context shows them."""
    return tuple(
        PeerComponent(
            component=s.component,
            component_id=s.component_id,
            component_type=s.component_type,
            revision=s.revision,
            status=records[s.component].status.value if s.component in records else "pending",
            depends_on=tuple(s.metadata.get("depends_on", ())),
        )
        for _, _, s, _ in bases
        if s is not None
    )


def _placeholder(ref: ComponentRef, stage: str) -> ValidationSubject:
    """The subject reported for a component that could not be validated."""
    return ValidationSubject(
        component=str(ref),
        workspace=ref.workspace,
        component_id=ref.component_id,
        component_type="unknown",
        stage=stage,
        root=Path(),
        files=(),
    )


class Validation:
    """Runs the validators in one session (a project is accepted and opens one)."""

    def __init__(self, session: Session | Project) -> None:
        self.session = as_session(session)
        self.settings = self.session.config.validation  # timeout > 0: checked with the config
        self.workers = self.settings.workers or min(16, 4 * (os.cpu_count() or 1))
        self._revisions: dict[str, str] = {}
        self._use_cache = True
        self._gate = False
        self._pending: ValidationCache | None = None
        self.deferred: list[AuditEvent] = []
        """With ``run(defer=True)``: the passing ``validate`` events left to the caller."""

    # ------------------------------------------------------------------ public

    def run(
        self,
        refs: Sequence[str | ComponentRef],
        stage: str | None = None,
        *,
        use_cache: bool = True,
        workspace: bool = False,
        record: bool = True,
        revisions: Mapping[str, str] | None = None,
        skip: Collection[str] = (),
        gate: bool = False,
        defer: bool = False,
    ) -> ReadinessReport:
        """Validate ``refs`` together for ``stage`` (None: each component's next stage).

        ``workspace=True`` validates the files as they are in the workspace now instead of
        the latest staged revision (nothing is cached or recorded then). A component that
        cannot be validated (never staged, unknown) is reported not ready with an issue.
        ``revisions`` picks another revision than the latest for some refs (promotion
        validates the revision it promotes); ``skip`` names validators not to run.
        ``gate=True`` is a promotion's gate: it reuses only verdicts the state store keeps
        (never a file under ``.lockgate/``, which whoever can write the project could edit)
        and reads component specs afresh. ``defer=True``: when every component passed and
        no new verdict awaits its event, the ``validate`` events are left in
        :attr:`deferred` for the caller to record (a promotion records them with its
        switch, in one transaction); otherwise they are recorded here, as without it.
        """
        started = time.perf_counter()
        settle(self.session)
        parsed = [r if isinstance(r, ComponentRef) else ComponentRef.parse(r) for r in refs]
        if stage is not None:
            stage = self.session.check_stage(stage)
        validators = [v for v in self.session.hooks.validators() if v.plugin not in skip]
        self._revisions = dict(revisions or {})
        use_cache = use_cache and self.settings.cache and not workspace
        # A gate decision reads nothing from caches under .lockgate/, component specs
        # included: their owners decide who counts as an author.
        self._use_cache = use_cache and not gate
        self._gate = gate
        reads = ContextReads(self.session)
        try:
            prepared = self._prepare(parsed, stage, validators, workspace, reads)
            executed = self._execute(prepared, use_cache, record)
        finally:
            reads.close()
        results = closed_gates(self.session, executed, skip)
        report = ReadinessReport(tuple(results), time.perf_counter() - started)
        if record and not workspace:
            self._record(report, defer)
        if self._pending is not None:  # after the events that vouch for them
            self._pending.flush()
        return report

    # ------------------------------------------------------------------ preparing

    def _prepare(
        self,
        refs: Sequence[ComponentRef],
        stage: str | None,
        validators: Sequence[Validator],
        workspace: bool,
        reads: ContextReads,
    ) -> list[_Prepared]:
        """Each component's subject, with its context, and the validators that handle it.
        The context's views of the rest of the project read through ``reads``."""
        state = self.session.state()
        unique = list(dict.fromkeys(refs))
        records = reads.records([str(ref) for ref in unique])
        # First pass: each component's subject without context (specs are needed first).
        bases = [self._base(ref, stage, records, workspace) for ref in unique]
        batch = _batch(bases, records)
        if len(unique) > READ_EACH:
            reads.read_whole({target for _, target, subject, _ in bases if subject is not None})
        prepared = []
        graphs: dict[str, Mapping[str, tuple[str, ...]]] = {}
        for ref, target, maybe, problems in bases:
            if maybe is None:
                prepared.append(_Prepared(_placeholder(ref, target), target, (), problems))
                continue
            subject = maybe
            current = reads.current(target)
            if target not in graphs:
                graphs[target] = self._graph(batch, current)
            context = self._context(state, subject, batch, current, reads.staged(), graphs[target])
            chosen = tuple(v for v in validators if v.applies_to(subject.component_type))
            prepared.append(
                _Prepared(attrs.evolve(subject, context=context), target, chosen, problems)
            )
        return prepared

    def _base(
        self,
        ref: ComponentRef,
        stage: str | None,
        records: Mapping[str, ComponentRecord],
        workspace: bool,
    ) -> _Base:
        """``ref``'s stage and subject (without context), or the issue that it has none."""
        target = stage
        try:
            if target is None:
                target = (
                    next_stage(self.session, str(ref))
                    if str(ref) in records
                    else self.session.stage_names[0]
                )
            subject = (
                self._workspace_subject(ref, target)
                if workspace
                else self._revision_subject(ref, target, records)
            )
            return (ref, target, subject, ())
        except LockgateError as exc:
            if isinstance(exc, LockedError):
                raise
            issue = Issue(
                Severity.ERROR,
                "cannot-validate",
                exc.message,
                plugin="lockgate",
                hint=_hint_for(exc, ref),
            )
            return (ref, target or self.session.stage_names[0], None, (issue,))

    def _context(
        self,
        state: StateStore,
        subject: ValidationSubject,
        batch: tuple[PeerComponent, ...],
        current: StagePointers,
        staged: StagedPeers,
        graph: Mapping[str, tuple[str, ...]],
    ) -> ValidationContext:
        """What a validator of ``subject`` sees beyond its files: the batch, the stage, the
        revision's author and decisions, and who counts as its authors."""
        decisions: tuple[Decision, ...] = ()
        author = None
        authors: tuple[str, ...] = ()
        if subject.revision is not None:
            decisions = tuple(
                Decision(a.actor, a.decision, a.at, a.comment)
                for a in state.approvals(subject.component, subject.revision)
            )
            decisions = signed_decisions(
                self.session, state, subject.component, subject.revision, subject.stage, decisions
            )
            ladder = tuple(self.session.stage_names)
            steps = lineage_of(state, subject.component, subject.revision, ladder)
            author = steps[0].record.actor if steps and steps[0].record else None
            owners = subject.metadata.get("owners") or ()
            declared = [str(o) for o in owners] if isinstance(owners, list | tuple) else ()
            authors = authors_of(steps, declared)
        return ValidationContext(
            batch=batch,
            current=current,
            staged=staged,
            graph=graph,
            author=author,
            decisions=decisions,
            authors=authors,
        )

    def _revision_subject(
        self, ref: ComponentRef, stage: str, records: Mapping[str, Any]
    ) -> ValidationSubject:

        record = records.get(str(ref))
        if record is None or record.latest_revision is None:
            raise NotFoundError(f"{ref} has never been staged; run 'lockgate stage {ref}' first")
        revision = self._revisions.get(str(ref), record.latest_revision)
        manifest = self.session.content().get_manifest(revision)
        root = release_dir(self.session, revision)
        return ValidationSubject(
            component=str(ref),
            workspace=ref.workspace,
            component_id=ref.component_id,
            component_type=record.component_type,
            stage=stage,
            root=root,
            files=tuple(e.path for e in manifest.entries),
            revision=revision,
            metadata=self._spec_data(revision, root),
            reader=None if root else functools.partial(_read_file, self.session, revision),
            sizes={e.path: e.size for e in manifest.entries},
            digests={e.path: e.digest for e in manifest.entries if e.digest},
        )

    def _workspace_subject(self, ref: ComponentRef, stage: str) -> ValidationSubject:
        component = self.session.source().find(ref)
        scan = self.session.source().scan(component)
        files = sorted(f.path for f in scan.files)
        return ValidationSubject(
            component=str(ref),
            workspace=ref.workspace,
            component_id=ref.component_id,
            component_type=component.component_type,
            stage=stage,
            root=component.path,
            files=tuple(files),
            revision=None,
            metadata=attrs.asdict(component.spec),
            sizes={f.path: f.stat.size for f in scan.files},
        )

    def _spec_data(self, revision: str, root: Path | None) -> dict[str, Any]:

        try:
            if root is None:  # a store without releases: read it from the store
                return attrs.asdict(revision_spec(self.session, revision))
            # Releases are immutable, so the YAML cache keyed by content is right here.
            cache_dir = self.session.state_dir / "cache" / "yaml" if self._use_cache else None
            return attrs.asdict(read_spec(root, cache_dir=cache_dir))
        except LockgateError:
            # A broken component.yaml is the manifest validator's to report, with its line.
            return attrs.asdict(ComponentSpec())

    def _graph(
        self, batch: Sequence[PeerComponent], current: StagePointers
    ) -> dict[str, tuple[str, ...]]:
        """depends_on for the batch, and for what the stage holds reachable from it (read a
        level at a time: the current revisions of one level's new ids together)."""
        graph: dict[str, tuple[str, ...]] = {}
        for peer in batch:
            graph[peer.component_id] = tuple(_dep_id(d) for d in peer.depends_on)
        frontier = {d for deps in graph.values() for d in deps} - graph.keys()
        while frontier:
            for component_id, revision in current.subset(sorted(frontier)).items():
                graph[component_id] = self._stage_deps(revision)
            reached = {d for component_id in frontier for d in graph.get(component_id, ())}
            frontier = reached - graph.keys()
        return graph

    def _stage_deps(self, revision: str) -> tuple[str, ...]:

        try:
            spec = self._spec_data(revision, release_dir(self.session, revision))
        except LockgateError:
            return ()
        return tuple(_dep_id(d) for d in spec.get("depends_on", ()))

    # ------------------------------------------------------------------ running

    def _cache(self) -> ValidationCache | None:
        """Where verdicts are kept: the state store when it can, else files under
        ``.lockgate/`` (never for a gate)."""
        results = store_results(self.session.state())
        if results is not None:
            return StoreResults(results)
        # A kernel cache lives in .lockgate/ only when some role keeps its data there
        # (sqlite, the local store, the workspace source's stat cache): a project whose
        # roles keep nothing on this machine gets no local directory, only slower
        # re-validation (as lockgate.yaml's parse cache, core/config.py).
        state_dir = self.session.state_dir
        if self._gate or not state_dir.is_dir():
            return None
        return FileResults(state_dir / "cache" / "validation")

    def _execute(
        self, prepared: Sequence[_Prepared], use_cache: bool, record: bool
    ) -> list[ComponentReadiness]:
        self._pending = None
        cache = self._cache() if use_cache else None
        outcomes: dict[tuple[int, int], list[Issue]] = {}
        tasks: dict[tuple[int, int], Call] = {}
        cached_counts = [0] * len(prepared)
        keys: dict[tuple[int, int], str] = {}
        for ci, item in enumerate(prepared):
            for vi, validator in enumerate(item.validators):
                if cache is not None and validator.info.cache and item.subject.revision:
                    key = cache_key(validator, item.stage)
                    keys[(ci, vi)] = key
                    hit = cache.get(item.subject.revision, key)
                    if hit is not None:
                        outcomes[(ci, vi)] = [attrs.evolve(i, plugin=validator.plugin) for i in hit]
                        cached_counts[ci] += 1
                        continue
                tasks[(ci, vi)] = (validator, item.subject)
        fresh, strays = run_calls(tasks, workers=self.workers, timeout=self.settings.timeout)
        outcomes.update(fresh)
        # With strays, whose result is trustworthy is unknown; a dry run writes nothing
        # to the state store.
        if cache is not None and not strays and (record or not cache.trusted):
            for (ci, vi), issues in fresh.items():
                wanted = keys.get((ci, vi))
                if wanted is not None and not any(i.code.startswith("validator-") for i in issues):
                    cache.put(prepared[ci].subject.revision or "", wanted, issues)
            self._pending = cache
        results = []
        for ci, item in enumerate(prepared):
            issues = list(item.problems)
            for vi in range(len(item.validators)):
                issues.extend(outcomes.get((ci, vi), ()))
            if strays and not any(i.code == "validator-exit" for i in issues):
                # A thread a validator started, not the call itself: which one is unknown,
                # so every component validated meanwhile fails.
                issues.append(exit_issue(None, ", ".join(strays)))
            results.append(
                ComponentReadiness(
                    component=item.subject.component,
                    stage=item.stage,
                    revision=item.subject.revision,
                    issues=tuple(issues),
                    validators=tuple(v.plugin for v in item.validators),
                    cached=cached_counts[ci],
                )
            )
        return results

    # ------------------------------------------------------------------ recording

    def _details(self, result: ComponentReadiness, elapsed: float) -> dict[str, Any]:
        details: dict[str, Any] = {
            "errors": result.count(Severity.ERROR),
            "warnings": result.count(Severity.WARNING),
            "cached": result.cached,
            # the run that validated it (the components of one run share it)
            "duration_ms": round(elapsed * 1000, 3),
            **self.session.identity.details(),
        }
        pending = self._pending
        if pending is not None and pending.trusted and result.revision:
            # The digest of each verdict the store is about to keep: `audit verify`
            # shows one that no validate event vouches for.
            written = pending.pending(result.revision)
            if written:
                details["verdicts"] = {k: verdict_digest(v) for k, v in sorted(written.items())}
        return details

    def _record(self, report: ReadinessReport, defer: bool = False) -> None:
        """One ``validate`` event per component in one write; each that did not pass is
        announced through ``on_failure``. ``defer``: see :meth:`run`."""
        actor, at = self.session.actor, now_iso()
        events = [
            AuditEvent(
                at=at,
                actor=actor,
                action="validate",
                component=result.component,
                stage=result.stage,
                revision=result.revision,
                details=self._details(result, report.elapsed),
                outcome="ok" if result.ready else "failed",
            )
            for result in report.components
            if result.revision is not None
        ]
        pending = self._pending
        if defer and all(
            e.outcome == "ok" and not (pending and e.revision and pending.pending(e.revision))
            for e in events
        ):
            self.deferred = events
            return
        self.session.state().append_events(events)
        for event in events:
            if event.outcome != "ok":
                failed(self.session, event, recorded=True)


def _dep_id(dep: str) -> str:
    return dep.split(":", 1)[1] if ":" in dep else dep


def _hint_for(exc: LockgateError, ref: ComponentRef) -> str | None:
    if "never been staged" in exc.message:
        return f"stage it: lockgate stage {ref}"
    return None


def _read_file(session: Session, revision: str, path: str) -> bytes:
    """File ``path`` of ``revision`` read from the content store (checked against its
    digest), for a subject without a release directory; OSError when it cannot be."""
    try:
        with revision_handle(session, revision).open(path) as stream:
            return stream.read()
    except LockgateError as exc:
        raise OSError(errno.EIO, exc.message) from exc
