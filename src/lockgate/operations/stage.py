"""The stage operation: a component's files become an immutable revision.

plan (find, scan through the stat cache, check limits) → store (ingest the files the
cache cannot vouch for, in parallel; write the manifest; flush) → record (one state-store
transaction: component, revision, audit event) → announce (``on_stage``). A failure at
any point before *record* leaves no revision behind; objects already stored are complete
and unreferenced, for ``gc`` to take.

From the first look at what is stored to the recorded revision, a staging holds the
staging lock shared (:mod:`lockgate.contracts.locks`) and ``gc`` takes it
exclusive: an object that staging reuses because it exists (de-duplication) is not
refreshed, so without the lock gc could remove it, as unneeded and old, between the
staging's check and its record.

The store half (hashing, the thread crew that ingests large files) is
:mod:`lockgate.operations.stage_store`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Collection, Sequence

import attrs

from lockgate.contracts.clock import elapsed_ms, now_iso
from lockgate.contracts.content import store_lost, store_missing_objects
from lockgate.contracts.manifest import (
    CanonicalManifest,
    FileEntry,
    Manifest,
    ManifestDiff,
    check_path_limits,
    digest_bytes,
)
from lockgate.contracts.models import ChangeEvent, ComponentStatus, StageResult, SyncResult
from lockgate.contracts.refs import ComponentRef, check_text
from lockgate.contracts.source import Component, ScanResult
from lockgate.contracts.state import AuditEvent, ComponentRecord, RevisionRecord
from lockgate.core.failpoints import failpoint
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import InputError, LockedError, LockgateError, NotFoundError
from lockgate.operations.announce import announce, failed
from lockgate.operations.recover import settle
from lockgate.operations.stage_store import Progress, hash_files, store_files

__all__ = ["Progress", "StageResult", "Stager", "SyncResult"]

LIMITS_PLUGIN = "limits"
"""The plugin whose settings hold the caps staging enforces before storing
(``staging_max_files``, ``staging_max_file_size``, ``staging_max_component_size``)."""


class Stager:
    """Runs stage and sync in one session."""

    def __init__(self, session: Session | Project) -> None:
        self.session = as_session(session)
        self.settings = self.session.config.staging
        self._started: float | None = None  # when the staging being recorded began

    # ------------------------------------------------------------------ public

    def stage(
        self,
        ref: ComponentRef | str,
        *,
        to: str | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
        reason: str | None = None,
    ) -> StageResult:
        """Stage one component for stage ``to`` (default: the first stage)."""
        check_text("--reason", reason)
        if isinstance(ref, str):
            ref = ComponentRef.parse(ref)
        stage = self.session.check_stage(to)
        component = self.session.source().find(ref)
        try:
            settle(self.session)  # in the try: a failure is recorded as this staging's
            result = self._stage(
                component, stage, dry_run=dry_run, progress=progress, reason=reason
            )
            if not dry_run and not result.created:
                self._bring_back(str(ref), stage, reason)
            return result
        except LockgateError as exc:
            if not dry_run:
                self._record_failure(str(ref), stage, exc, reason)
            raise

    def stage_component(
        self, component: Component, *, to: str | None = None, reason: str | None = None
    ) -> StageResult:
        """Stage a component found earlier, without discovering its workspace again.

        For a caller that keeps its own view of the components (``lockgate watch``); a
        directory that went away since is a :class:`~lockgate.errors.NotFoundError`.
        """
        check_text("--reason", reason)
        stage = self.session.check_stage(to)
        try:
            settle(self.session)
            return self._stage(component, stage, dry_run=False, progress=None, reason=reason)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{component.ref}: {component.path} is gone") from exc
        except LockgateError as exc:
            self._record_failure(str(component.ref), stage, exc, reason)
            raise

    def sync(
        self,
        workspaces: Sequence[str] | None = None,
        *,
        to: str | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
        reason: str | None = None,
    ) -> SyncResult:
        """Stage every component whose files changed; one failure never stops the others."""
        check_text("--reason", reason)
        stage = self.session.check_stage(to)
        discovery = self.session.source().discover(list(workspaces) if workspaces else None)
        results: list[StageResult] = []
        failures: list[tuple[str, str]] = [(p.path or "?", p.message) for p in discovery.problems]
        retired: list[str] = []
        for component in discovery.components:
            if self._retired(str(component.ref)):
                retired.append(str(component.ref))  # 'lockgate stage' brings one back
                continue
            try:
                settle(self.session)  # a failure is this component's, as any other
                results.append(
                    self._stage(component, stage, dry_run=dry_run, progress=progress, reason=reason)
                )
            except LockgateError as exc:
                failures.append((str(component.ref), exc.message))
                if not dry_run:
                    self._record_failure(str(component.ref), stage, exc, reason)
        found = len(discovery.components) + len(discovery.problems)
        return SyncResult(found, tuple(results), tuple(failures), dry_run, tuple(retired))

    def _retired(self, ref: str) -> bool:
        """Whether ``ref`` was retired (``lockgate remove``): ``sync`` leaves it alone."""
        record = self.session.state().component(ref)
        return record is not None and record.status is ComponentStatus.RETIRED

    def _bring_back(self, ref: str, stage: str, reason: str | None) -> None:
        """Staging a retired component by name brings it back (status ``staged``) even
        when its files are those of its latest revision: no new revision is needed."""
        if not self._retired(ref):
            return
        self.session.state().set_status(
            ref,
            ComponentStatus.RETIRED,
            ComponentStatus.STAGED,
            AuditEvent(
                at=now_iso(),
                actor=self.session.actor,
                action="stage",
                component=ref,
                stage=stage,
                reason=reason,
                details={"unretired": True},
            ),
        )

    def _record_failure(
        self, ref: str, stage: str, error: LockgateError, reason: str | None
    ) -> None:
        """Audit a failed staging (statistics give success rates); never masks ``error``."""
        if isinstance(error, LockedError):
            return  # the state store itself is unavailable
        with contextlib.suppress(LockgateError):
            failed(
                self.session,
                AuditEvent(
                    at=now_iso(),
                    actor=self.session.actor,
                    action="stage",
                    component=ref,
                    stage=stage,
                    reason=reason,
                    details={"error": error.message, **self.session.identity.details()},
                    outcome="failed",
                ),
            )

    def workspace_scan(self, component: Component) -> ScanResult:
        """The component's files now, within the staging limits (with the revision they
        make up when the source vouches for it: ``ScanResult.revision``)."""
        scan = self.session.source().scan(component)
        self._check_limits(scan)
        return scan

    def workspace_manifest(
        self, component: Component, scan: ScanResult | None = None, latest: str | None = None
    ) -> tuple[ScanResult, Manifest]:
        """The manifest the component's files would have now (hashing, storing nothing).

        The digests it learns are handed to the source (its stat cache), with ``latest``
        when the files make up that revision, so that the next scan of an unchanged tree
        hashes nothing; a cache that cannot be written (read-only) costs only that."""
        scan = self.workspace_scan(component) if scan is None else scan
        source = self.session.source()
        todo = [f for f in scan.files if f.digest is None and f.kind != "symlink"]
        digests = hash_files(source, component, todo, None)
        manifest = _manifest(scan, digests)
        if todo:
            same = latest is not None and manifest.revision_id() == latest
            with contextlib.suppress(OSError):
                source.remember(scan, digests, latest if same else None)
        return scan, manifest

    # ------------------------------------------------------------------ the operation

    def _stage(
        self,
        component: Component,
        stage: str,
        *,
        dry_run: bool,
        progress: Progress | None,
        reason: str | None = None,
    ) -> StageResult:
        session = self.session
        self._started = time.perf_counter()  # the event's duration_ms counts from here
        # Opened (and recovered, under the operation lock) before the staging lock is
        # taken: gc takes the staging lock while it holds the operation lock.
        session.state()
        if dry_run:
            return self._stage_locked(component, stage, dry_run, progress, reason)[0]
        with session.lock("stage", name="staging", shared=True):
            result, at = self._stage_locked(component, stage, dry_run, progress, reason)
        if at is None:
            return result
        # Announced outside the lock: a plugin's on_stage may take its time (or run gc).
        failures = announce(  # recorded in the audit log when a plugin fails to hear it
            session,
            session.hooks.on_stage,
            ChangeEvent(
                action="stage",
                component=result.component,
                stage=stage,
                revision=result.revision,
                previous_revision=result.previous,
                actor=session.actor,
                at=dt.datetime.fromisoformat(at),
                reason=reason,
            ),
        )
        return attrs.evolve(result, warnings=tuple(str(f) for f in failures))

    def _stage_locked(
        self,
        component: Component,
        stage: str,
        dry_run: bool,
        progress: Progress | None,
        reason: str | None,
    ) -> tuple[StageResult, str | None]:
        """Plan, store and record (no announcement); returns the result and, when a
        revision was recorded, the time it was recorded at."""
        session = self.session
        source, state = session.source(), session.state()
        scan = source.scan(component)
        self._check_limits(scan)
        record = state.component(str(component.ref))
        previous = record.latest_revision if record else None
        lost = self._missing_here(previous)
        if scan.revision is not None and scan.revision == previous and not lost:
            # The source vouches the files are exactly the latest revision: nothing to do.
            return self._unchanged(component, stage, scan, previous), None
        todo = [
            f for f in scan.files if (f.digest is None or f.digest in lost) and f.kind != "symlink"
        ]
        if not todo:
            manifest = _manifest(scan, {})
            if manifest.revision_id() == previous and previous not in lost:
                source.remember(scan, {}, previous)
                result = self._result(component, stage, manifest, previous, None, {}, dry_run)
                return result, None
        old = _latest(session, previous) if previous and previous not in lost else None
        if dry_run:
            digests = hash_files(source, component, todo, progress)
        else:
            kept = old.digests() if old is not None else set()
            digests = store_files(session, component, scan, todo, kept, progress)
        manifest = _manifest(scan, digests)
        result = self._result(component, stage, manifest, previous, old, digests, dry_run)
        if dry_run:
            return result, None
        if not result.created:
            return self._repaired(scan, manifest, digests, result, lost), None
        return result, self._record(component, stage, scan, manifest, digests, result, reason)

    def _repaired(
        self,
        scan: ScanResult,
        manifest: Manifest,
        digests: dict[str, str],
        result: StageResult,
        lost: Collection[str],
    ) -> StageResult:
        """The latest revision staged again: what was stored closes the store's batch, and
        the result counts the objects (and manifest) that were lost and are stored again."""
        if digests or result.revision in lost:
            # Files were stored (touched but equal, or lost and stored again): the
            # manifest closes the store's batch like any other, and is kept if lost.
            self.session.content().put_manifest(manifest)
        self.session.source().remember(scan, digests, result.revision)
        repaired = sum(1 for d in set(digests.values()) if d in lost)
        repaired += result.revision in lost
        return attrs.evolve(result, repaired=repaired)

    def _record(
        self,
        component: Component,
        stage: str,
        scan: ScanResult,
        manifest: Manifest,
        digests: dict[str, str],
        result: StageResult,
        reason: str | None,
    ) -> str:
        """Store the manifest and record the new revision in one state transaction;
        returns the time it was recorded at."""
        session = self.session
        state, ref, previous = session.state(), str(component.ref), result.previous
        failpoint("stage.after_objects")
        session.content().put_manifest(manifest)  # the objects are stored before the manifest
        failpoint("stage.after_manifest")
        at, actor = now_iso(), session.actor
        revision = result.revision
        # A rejection belongs to the digest: the same files staged again are still rejected.
        rejected = any(a.decision == "reject" for a in state.approvals(ref, revision))
        state.record_revision(
            RevisionRecord(ref, revision, at, actor, stage, result.files, result.size, previous),
            ComponentRecord(
                component=ref,
                workspace=component.ref.workspace,
                component_id=component.ref.component_id,
                component_type=component.component_type,
                status=ComponentStatus.REJECTED if rejected else ComponentStatus.STAGED,
                latest_revision=revision,
                updated_at=at,
            ),
            AuditEvent(
                at=at,
                actor=actor,
                action="stage",
                component=ref,
                stage=stage,
                revision=revision,
                previous_revision=previous,
                reason=reason,
                details={
                    "files": result.files,
                    "size": result.size,
                    **result.diff.counts(),
                    **self.session.identity.details(),
                    **elapsed_ms(self._started),
                },
            ),
        )
        failpoint("stage.after_record")
        # Every object is stored (and gc is kept out by the staging lock): the store may
        # note it, so the next unchanged restage looks at no object.
        mark = getattr(session.content(), "mark_complete", None)
        if callable(mark):
            mark(revision, manifest)
        session.source().remember(scan, digests, revision)
        return at

    def _missing_here(self, previous: str | None) -> frozenset[str]:
        """Objects the latest revision needs that the store does not have (usually none).

        Cached digests, and the "unchanged" answer, are trusted only for objects that
        exist: those a restart took (``lost``) and any that went some other way (removed
        by hand, or by a gc that raced a staging before they excluded each other) are
        stored again from the workspace. The latest revision's manifest is among them
        when it is gone. A store with the ``CompletenessCheck`` capability answers without
        a ``stat`` per object; for others, that is what it costs.
        """
        content = self.session.content()
        lost = store_lost(content)
        if previous is None or previous in lost:
            return lost
        check = store_missing_objects(content)  # the local store's: no stat per object
        if check is not None and not lost:  # after a restart's losses (rare): look at each
            missing: Collection[str] = check(previous)
        else:
            try:
                manifest = content.get_manifest(previous)
            except NotFoundError:
                return lost | {previous}
            needed = {e.digest for e in manifest.entries if e.kind != "symlink"}
            missing = {d for d in needed if d in lost or not content.has(d)}
        return lost | frozenset(missing) if missing else frozenset()

    @staticmethod
    def _unchanged(
        component: Component, stage: str, scan: ScanResult, revision: str
    ) -> StageResult:
        return _stage_result(
            component, stage, revision, revision, len(scan.files), scan.total_size, 0, None
        )

    @staticmethod
    def _result(
        component: Component,
        stage: str,
        manifest: Manifest,
        previous: str | None,
        old: CanonicalManifest | None,
        digests: dict[str, str],
        dry_run: bool,
    ) -> StageResult:
        revision = manifest.revision_id()
        diff = None
        if revision != previous:
            diff = old.diff(manifest) if old is not None else ManifestDiff.between(None, manifest)
        return _stage_result(
            component,
            stage,
            revision,
            previous,
            len(manifest.entries),
            manifest.total_size,
            len(digests),
            diff,
            dry_run=dry_run,
        )

    def _check_limits(self, scan: ScanResult) -> None:
        # The caps are the ``limits`` plugin's ``staging_max_*`` settings (the gate's own
        # limits are its validator's business); with that plugin disabled, none.
        s = self.session.project.settings.get(LIMITS_PLUGIN)
        if s is None:
            return
        ref = scan.component.ref
        key = f"plugins.{LIMITS_PLUGIN}.staging_max"
        if len(scan.files) > s.staging_max_files:
            raise InputError(
                f"{ref}: {len(scan.files)} files, more than {key}_files "
                f"({s.staging_max_files}); ignore some in .lockgateignore or raise the limit"
            )
        for f in scan.files if scan.largest > s.staging_max_file_size else ():
            if f.stat.size > s.staging_max_file_size:
                raise InputError(
                    f"{scan.component.path / f.path}: {f.stat.size} bytes, more than "
                    f"{key}_file_size ({s.staging_max_file_size}); ignore it or raise the limit"
                )
        if scan.total_size > s.staging_max_component_size:
            raise InputError(
                f"{ref}: {scan.total_size} bytes, more than {key}_component_size "
                f"({s.staging_max_component_size}); ignore large files or raise the limit"
            )


def _stage_result(
    component: Component,
    stage: str,
    revision: str,
    previous: str | None,
    files: int,
    size: int,
    hashed: int,
    diff: ManifestDiff | None,
    *,
    dry_run: bool = False,
) -> StageResult:
    return StageResult(
        component=str(component.ref),
        component_type=component.component_type,
        stage=stage,
        revision=revision,
        previous=previous,
        created=revision != previous,
        files=files,
        size=size,
        hashed=hashed,
        diff=diff or ManifestDiff((), (), ()),
        dry_run=dry_run,
    )


def _manifest(scan: ScanResult, digests: dict[str, str]) -> Manifest:
    entries = []
    root = scan.component.path
    for f in scan.files:
        # Any source: a revision too deep or with a path too long to materialize later is
        # refused now, never a RecursionError when it is promoted.
        check_path_limits(f.path, f"{root}/{f.path}")
        if f.kind == "symlink":
            target = str(f.target)
            entries.append(
                FileEntry(
                    f.path, "symlink", len(target.encode()), digest_bytes(target.encode()), target
                )
            )
            continue
        digest = f.digest or digests[f.path]
        entries.append(FileEntry(f.path, f.kind, f.stat.size, digest))
    return Manifest(tuple(entries))


def _latest(session: Session, revision: str) -> CanonicalManifest:
    """The latest revision's manifest as its canonical bytes, cheap to compare with the
    new one (see :class:`CanonicalManifest`): read as an object and checked against the
    revision id, or, from a store that does not serve it so, decoded as usual."""
    content = session.content()
    where = f"revision {revision[:12]}"
    try:
        with content.open(revision) as stream:
            data = stream.read()
    except (NotFoundError, OSError):
        data = None
    if data is None or digest_bytes(data) != revision:
        return CanonicalManifest(content.get_manifest(revision).canonical(), where=where)
    return CanonicalManifest(data, where=where)
