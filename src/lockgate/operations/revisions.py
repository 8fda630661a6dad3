"""Revisions as operations use them: handles for targets, directories when a store keeps
them, and ``component.yaml`` read from the content store.

The kernel never lays a revision out on disk itself. A content store that offers the
``ReleaseCache`` capability (the builtin ``local`` store: ``.lockgate/releases/``) lays
out and verifies directories; every other store is read through ``open``. Targets get a
:class:`~lockgate.contracts.target.RevisionHandle` either way.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.contracts.content import (
    lost_object,
    store_lost,
    store_missing_objects,
    store_release_cache,
)
from lockgate.contracts.manifest import Manifest
from lockgate.contracts.refs import short
from lockgate.contracts.source import ComponentSpec
from lockgate.contracts.target import Prepared, RevisionHandle, Target
from lockgate.core.content import read_object
from lockgate.core.specs import SPEC_FILE, parse_spec
from lockgate.errors import LockgateError

if TYPE_CHECKING:
    from lockgate.core.session import Session

__all__ = [
    "deployable",
    "deployed_anywhere",
    "prepare",
    "release_dir",
    "release_problems",
    "revision_handle",
    "revision_spec",
]


def release_dir(session: Session, revision: str) -> Path | None:
    """The release directory of ``revision`` when the content store keeps releases
    (laid out if needed), else None."""
    cache = store_release_cache(session.content())
    if cache is None:
        return None
    return cache.release(revision)


def revision_handle(session: Session, revision: str) -> RevisionHandle:
    """What a target receives for ``revision``: manifest, files, and a directory on demand."""
    content = session.content()
    cache = store_release_cache(content)
    materialize = None if cache is None else functools.partial(cache.release, revision)
    return RevisionHandle(revision, content.get_manifest(revision), content, materialize)


def revision_spec(session: Session, revision: str) -> ComponentSpec:
    """What ``component.yaml`` of ``revision`` says (empty without one), read from the
    content store: no directory is needed. ConfigError when it is broken."""
    content = session.content()
    manifest = content.get_manifest(revision)
    entry = next((e for e in manifest.entries if e.path == SPEC_FILE), None)
    if entry is None or entry.kind == "symlink":
        return ComponentSpec()
    data = read_object(content, entry.digest)
    return parse_spec(data, Path(f"{revision[:12]}/{SPEC_FILE}"))


def prepare(target: Target, component_id: str, revision: RevisionHandle | None) -> Prepared:
    """``target.prepare`` with the v1 signature, or the 0.x one (``revision``, ``release``
    directory) for a target written before revision handles."""
    if _takes_release(target.__class__):  # the plugin's class, not the kernel's guard
        release = revision.materialize() if revision is not None else None
        rev = revision.revision if revision is not None else None
        return target.prepare(component_id, rev, release)  # type: ignore[call-arg,arg-type]
    return target.prepare(component_id, revision)


@functools.cache
def _takes_release(kind: type) -> bool:
    """Whether ``kind.prepare`` is the 0.x ``prepare(component_id, revision, release)``."""
    try:
        params = inspect.signature(kind.prepare).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError, AttributeError):
        return False
    return len(params) == 4  # self, component_id, revision, release


def deployable(session: Session, revision: str) -> bool:
    """Whether ``revision`` can still be deployed: its release exists (a switch
    verifies it), or its manifest and every object it needs are stored."""
    content = session.content()
    cache = store_release_cache(content)
    if cache is not None and cache.has_release(revision):
        return True
    try:
        manifest = content.get_manifest(revision)
    except LockgateError:
        return False
    return not _unstored(session, revision, manifest)


def release_problems(session: Session, revision: str) -> list[str]:
    """Why ``revision`` cannot be deployed as stored (empty: it can).

    With a store that keeps releases, its release is laid out and verified (hashing only
    files whose stat changed since they last verified); otherwise every object the
    revision needs must be present and not lost (targets read them through a handle that
    checks each digest as it reads)."""
    content = session.content()
    cache = store_release_cache(content)
    if cache is not None:
        cache.release(revision)
        return cache.verify_release(revision)
    manifest = content.get_manifest(revision)
    lost, unstored = store_lost(content), _unstored(session, revision, manifest)
    problems = []
    for entry in manifest.entries:
        if entry.kind == "symlink":
            continue
        if entry.digest in lost:
            problems.append(lost_object(entry.digest, f"{short(revision)}:{entry.path}"))
        elif entry.digest in unstored:
            problems.append(f"{short(revision)}: {entry.path} is missing from the store")
    return problems


def _unstored(session: Session, revision: str, manifest: Manifest) -> frozenset[str]:
    """The objects ``revision`` needs that are lost or not stored: asked at once when the
    store offers ``CompletenessCheck`` (one query on a database), else one by one."""
    content = session.content()
    needed = {e.digest for e in manifest.entries if e.digest and e.kind != "symlink"}
    lost = store_lost(content) & needed
    missing = store_missing_objects(content)
    if missing is not None:
        return lost | (missing(revision) & needed)
    return lost | {d for d in needed if not content.has(d)}


def deployed_anywhere(session: Session, revision: str) -> bool:
    """True when some stage's pointer holds ``revision`` (its release is in use)."""
    state = session.state()
    return any(
        p.revision == revision for stage in session.stage_names for p in state.pointers(stage)
    )
