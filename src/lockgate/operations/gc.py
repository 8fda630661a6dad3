"""``gc``: remove releases and objects no stage, last-good or retained revision needs.

Garbage collection keeps, for every component: its latest revision (staging relies on
it; not for a component ``lockgate remove`` retired), and for every stage and component
id every revision a rollback can select now: the current revision, the previous one
(``--to previous``), the last-good one and the last ``keep`` distinct revisions that
were live there (the retention window, which ``--at`` and ``--to REV`` select from),
plus anything an open intent names. Everything those revisions need stays; other release
directories go, and so do objects no kept revision needs, once they are older than the
grace period. gc holds the staging lock exclusive throughout (see
:mod:`lockgate.contracts.locks`), so no staging is between reusing an object it found
stored and recording its revision: what a staging records is never taken. Manifests of
every revision are kept: history is never pruned, and a revision whose objects were
collected can still be listed and diffed. Every target of every stage that keeps
something of its own per revision (the ``Collectable`` capability: the ``directory``
target's releases when the content store keeps none) is asked to remove what the kept
revisions do not need (``target_releases`` in the result).

A rollback moves the pointer, and with it what "previous" and "last-good" mean, onto
revisions gc may have collected before (the last-good of the revision rolled back to).
gc therefore records, in its audit event, every revision that was live somewhere and
that it made undeployable (``details.collected``): ``rollback`` skips such a revision for
``last-good`` and refuses it for the others, saying so, and ``verify`` does not report
the objects they lost as damage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from lockgate.contracts.clock import now_iso
from lockgate.contracts.content import (
    store_forget_lost,
    store_object_path,
    store_release_cache,
    store_tmp,
)
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.records import record
from lockgate.contracts.refs import check_text
from lockgate.contracts.state import AuditEvent, EventFilter
from lockgate.contracts.target import target_collect
from lockgate.core.project import Project
from lockgate.core.session import Session, as_session
from lockgate.errors import LockgateError
from lockgate.operations.recover import recover_pending, settle
from lockgate.operations.switch import last_good

__all__ = [
    "GcResult",
    "collect_garbage",
    "collected_revisions",
    "retained_revisions",
]


def retained_revisions(session: Session, keep: int | None = None) -> set[str]:
    """Revisions whose bytes garbage collection keeps (see the module docstring)."""
    state = session.state()
    keep = session.config.gc.keep if keep is None else keep
    kept = {
        r.latest_revision
        for r in state.components()
        if r.latest_revision and r.status is not ComponentStatus.RETIRED
    }
    histories: dict[tuple[str, str], list[Any]] = {}
    for change in state.pointer_history():
        histories.setdefault((change.stage, change.component_id), []).append(change)
    for history in histories.values():
        current = history[-1].revision
        if current:
            kept.add(current)
        if history[-1].previous_revision:
            kept.add(history[-1].previous_revision)  # rollback --to previous
        good = last_good(history, exclude=current)
        if good:
            kept.add(good)
        window: list[str] = []
        for change in reversed(history):
            if change.revision and change.revision not in window:
                window.append(change.revision)
            if len(window) >= keep:
                break
        kept.update(window)
    for intent in state.open_intents():
        for key in ("revision", "previous_revision"):
            value = intent.payload.get(key)
            if isinstance(value, str):
                kept.add(value)
    return kept


def collected_revisions(session: Session) -> set[str]:
    """Revisions that were live in a stage and that a gc made undeployable (from the
    ``collected`` detail of every ``gc`` audit event)."""
    found: set[str] = set()
    for event in session.state().events(EventFilter(action="gc")):
        value = event.details.get("collected") if isinstance(event.details, dict) else None
        if isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
    return found


def _newly_collected(session: Session, kept: set[str], doomed: set[str], content: Any) -> list[str]:
    """Revisions that were live in a stage, are not kept, and lose an object now (or
    already miss one): rollback must not select them any more."""
    state = session.state()
    live = {c.revision for c in state.pointer_history() if c.revision}
    found = []
    for revision in sorted(live - kept - collected_revisions(session)):
        try:
            manifest = content.get_manifest(revision)
        except LockgateError:
            found.append(revision)
            continue
        digests = {e.digest for e in manifest.entries if e.digest and e.kind != "symlink"}
        if any(d in doomed or not content.has(d) for d in digests):
            found.append(revision)
    return found


@record
class GcResult:
    """What garbage collection removed (or, with ``dry_run``, would remove)."""

    releases: tuple[str, ...]
    objects: int
    bytes: int
    kept_revisions: int
    dry_run: bool
    target_releases: tuple[str, ...] = ()
    """Revisions whose releases (or whatever a target keeps per revision) the stages'
    targets removed (``Collectable.collect``), each once however many targets did."""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self) | {
            "releases": list(self.releases),
            "target_releases": list(self.target_releases),
        }

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        text = (
            f"{verb} {len(self.releases)} release(s) and {self.objects} object(s) "
            f"({self.bytes} bytes); kept {self.kept_revisions} revision(s)"
        )
        if self.target_releases:
            text += f"; {verb} {len(self.target_releases)} release(s) targets laid out"
        return text


def collect_garbage(
    session: Session | Project,
    *,
    keep: int | None = None,
    dry_run: bool = False,
    grace: float | None = None,
    reason: str | None = None,
) -> GcResult:
    """Remove releases and objects no kept revision needs (see the module docstring)."""
    session = as_session(session)
    check_text("--reason", reason)
    grace = session.config.gc.grace if grace is None else grace
    # Settled before gc takes its lock: recovery takes the operation lock itself, and
    # under gc's lock it would wait for gc.
    settle(session)
    # Exclusive against staging: no staging is between reusing an existing object and
    # recording its revision while gc decides what is unneeded and removes it.
    with session.lock("gc"), session.lock("gc", name="staging"):
        recover_pending(session, locked=True)
        state, content = session.state(), session.content()
        kept = retained_revisions(session, keep)
        every_revision = {
            r.revision for c in state.components() for r in state.revisions(c.component)
        }
        needed: set[str] = set(every_revision)  # manifests are kept for every revision
        for revision in kept:
            try:
                manifest = content.get_manifest(revision)
            except LockgateError:
                continue
            needed.update(e.digest for e in manifest.entries if e.digest and e.kind != "symlink")
        cache = store_release_cache(content)
        laid_out = cache.releases() if cache is not None else []
        doomed_releases = [revision for revision in laid_out if revision not in kept]
        cutoff = time.time() - grace
        doomed_objects = []
        size = 0
        object_path = store_object_path(content)
        for digest, mtime in content.objects():
            if digest not in needed and mtime < cutoff:
                doomed_objects.append(digest)
                size += _size(object_path, digest)
        by_targets = _collect_targets(session, frozenset(kept), dry_run=dry_run)
        if not dry_run:
            collected = _newly_collected(session, kept, set(doomed_objects), content)
            for revision in doomed_releases:
                cache.remove_release(revision)  # type: ignore[union-attr]  # listed by it
            for digest in doomed_objects:
                content.delete(digest)
            # A store that records objects lost in a restart (the local one) forgets those
            # no kept revision needs: they would have been removed here anyway.
            forget_lost = store_forget_lost(content)
            forgotten = forget_lost(needed) if forget_lost is not None else 0
            # A writer may be busy with a temporary this very moment (a promotion laying
            # out a release): leftovers are only ever taken once old, whatever the grace.
            leftovers = _sweep_leftovers(session, min(cutoff, time.time() - LEFTOVER_AGE))
            state.append_event(
                AuditEvent(
                    at=now_iso(),
                    actor=session.actor,
                    action="gc",
                    reason=reason,
                    details={
                        "releases": len(doomed_releases),
                        **session.identity.details(),
                        "target_releases": len(by_targets),
                        "objects": len(doomed_objects),
                        "bytes": size,
                        "leftovers": leftovers,
                        "lost_forgotten": forgotten,
                        "collected": collected,
                        "keep": session.config.gc.keep if keep is None else keep,
                    },
                )
            )
    return GcResult(
        tuple(doomed_releases), len(doomed_objects), size, len(kept), dry_run, by_targets
    )


def _collect_targets(session: Session, keep: frozenset[str], *, dry_run: bool) -> tuple[str, ...]:
    """Ask every target of every stage that offers ``collect`` to remove what it keeps
    for revisions not in ``keep``; the revisions any of them named, sorted, each once."""
    removed: set[str] = set()
    for stage in session.project.stage_names:
        for target in session.targets(stage):
            collector = target_collect(target)
            if collector is not None:
                removed.update(collector.collect(keep, dry_run))
    return tuple(sorted(removed))


LEFTOVER_AGE = 600.0
"""Seconds a temporary must be left untouched before gc takes it as an interrupted
writer's leftover (``gc --grace 0`` included: the grace applies to objects)."""


def _sweep_leftovers(session: Session, cutoff: float) -> int:
    """Remove what interrupted writers left behind (temporary releases, stamps, objects,
    cache files), once older than the grace period. Returns how many were removed."""
    state_dir = session.state_dir
    patterns: list[tuple[Path, str]] = [(state_dir / "cache", "**/*.tmp")]
    content = session.content()
    tmp = store_tmp(content)
    if tmp is not None:
        patterns.append((tmp, "*"))  # the store's temporary files
    cache = store_release_cache(content)
    removed = cache.sweep_releases(cutoff) if cache is not None else 0
    for base, pattern in patterns:
        if not base.is_dir():
            continue
        for path in base.glob(pattern):
            try:
                if path.lstat().st_mtime >= cutoff:
                    continue
                if path.is_dir() and not path.is_symlink():
                    import shutil

                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
            except OSError:
                continue
    return removed


def _size(object_path: Callable[[str], Path] | None, digest: str) -> int:
    if object_path is None:
        return 0
    try:
        return object_path(digest).stat().st_size
    except OSError:
        return 0
