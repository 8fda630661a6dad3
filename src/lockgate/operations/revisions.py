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

from lockgate.contracts.content import store_release_cache
from lockgate.contracts.source import ComponentSpec
from lockgate.contracts.target import Prepared, RevisionHandle, Target
from lockgate.core.content import read_object
from lockgate.core.specs import SPEC_FILE, parse_spec

if TYPE_CHECKING:
    from lockgate.core.session import Session

__all__ = ["prepare", "release_dir", "revision_handle", "revision_spec"]


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
