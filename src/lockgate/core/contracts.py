"""The contracts of the roles plugins play: small Protocols, one per role.

The kernel talks to roles only through these; the builtin plugins implement them for the
embedded default (SQLite, ``.lockgate/objects``, workspace directories), and each has an
in-memory or test double in the test suite.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import attrs

from lockgate.core.manifest import FileEntry, Manifest
from lockgate.core.models import ComponentStatus, Issue
from lockgate.core.refs import ComponentRef

__all__ = [
    "AuditEvent",
    "Component",
    "ComponentRecord",
    "ComponentSpec",
    "ContentStore",
    "Discovery",
    "FileStat",
    "LinkMode",
    "RevisionRecord",
    "ScanResult",
    "ScannedFile",
    "Source",
    "StateStore",
]

LinkMode = Literal["auto", "reflink", "hardlink", "copy"]


# --------------------------------------------------------------------------- sources


@attrs.frozen
class ComponentSpec:
    """What ``component.yaml`` says (every field optional)."""

    version: str | None = None
    description: str | None = None
    owners: list[str] = attrs.field(factory=list)
    depends_on: list[str] = attrs.field(factory=list)
    metadata: dict[str, object] = attrs.field(factory=dict)


@attrs.frozen
class Component:
    """A component found in a workspace."""

    ref: ComponentRef
    component_type: str
    path: Path
    spec: ComponentSpec = attrs.field(factory=ComponentSpec)


@attrs.frozen
class Discovery:
    """Components found, and problems (a broken component.yaml, a bad name) per path."""

    components: tuple[Component, ...]
    problems: tuple[Issue, ...] = ()


class FileStat(NamedTuple):
    """The stat fields that say whether a file changed (the stat cache's key).

    A NamedTuple, not an attrs class: scans build one per file, and tuples are several
    times cheaper to create.
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        """From an ``os.stat_result``."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class ScannedFile(NamedTuple):
    """A file found by a scan; ``digest`` is known when the stat cache vouches for it."""

    path: str
    kind: Literal["file", "exec", "symlink"]
    stat: FileStat
    digest: str | None = None
    target: str | None = None


@attrs.frozen
class ScanResult:
    """Every file of a component as it is now."""

    component: Component
    files: tuple[ScannedFile, ...]
    revision: str | None = None
    """Set when the source vouches that the files are exactly this revision's."""

    @property
    def total_size(self) -> int:
        """Bytes in all files."""
        return sum(f.stat.size for f in self.files)


class Source(Protocol):
    """Where components come from (builtin: ``workspace``, directories on disk)."""

    def discover(self, workspaces: Sequence[str] | None = None) -> Discovery:
        """Every component (of the given workspaces), without reading file contents."""

    def find(self, ref: ComponentRef) -> Component:
        """One component; :class:`~lockgate.errors.NotFoundError` when absent."""

    def scan(self, component: Component) -> ScanResult:
        """The component's files with their stat and, when cached and clean, digest."""

    def remember(
        self, scan: ScanResult, digests: dict[str, str], revision: str | None = None
    ) -> None:
        """Record digests learnt for ``scan`` (and the revision the files make up) so the
        next scan need not hash them."""


# --------------------------------------------------------------------------- content


@runtime_checkable
class ContentStore(Protocol):
    """Immutable, content-addressed bytes and the manifests that name them."""

    def ingest(self, path: str | Path, expected: FileStat) -> tuple[str, int]:
        """Store the file at ``path``; return (digest, size) of exactly the bytes stored.

        Raises :class:`~lockgate.errors.ConflictError` when the file is not as
        ``expected`` or changes while it is read; no partial object is left behind.
        """

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its digest."""

    def has(self, digest: str) -> bool:
        """True when the object is present."""

    def read_bytes(self, digest: str) -> bytes:
        """An object's bytes, verified against its digest."""

    def put_manifest(self, manifest: Manifest) -> str:
        """Store a manifest durably; return its revision id."""

    def get_manifest(self, revision: str) -> Manifest:
        """A stored manifest; :class:`~lockgate.errors.NotFoundError` when absent."""

    def materialize(self, manifest: Manifest, dest: Path, link: LinkMode = "auto") -> None:
        """Write the revision's tree into the new directory ``dest``."""

    def verify(self, digest: str) -> bool:
        """True when the object exists and its bytes hash to ``digest``."""

    def sync(self) -> None:
        """Make every object stored so far durable (called before state records them)."""


# --------------------------------------------------------------------------- state


@attrs.frozen
class RevisionRecord:
    """A revision as the state store knows it."""

    component: str
    revision: str
    created_at: str
    actor: str
    stage: str
    files: int
    size: int
    parent: str | None = None


@attrs.frozen
class ComponentRecord:
    """A component as the state store knows it: its latest revision and status."""

    component: str
    workspace: str
    component_id: str
    component_type: str
    status: ComponentStatus
    latest_revision: str | None
    updated_at: str


@attrs.frozen
class AuditEvent:
    """One audit-log entry (``seq`` and hashes are set by the store)."""

    at: str
    actor: str
    action: str
    component: str | None = None
    stage: str | None = None
    revision: str | None = None
    previous_revision: str | None = None
    reason: str | None = None
    details: dict[str, object] = attrs.field(factory=dict)
    seq: int | None = None


class StateStore(Protocol):
    """Components, revisions and the audit log (builtin: ``sqlite``)."""

    def component(self, ref: str) -> ComponentRecord | None:
        """One component's record, or None."""

    def components(self, workspace: str | None = None) -> list[ComponentRecord]:
        """Every known component (of one workspace), sorted by ref."""

    def revisions(self, ref: str) -> list[RevisionRecord]:
        """A component's revisions, oldest first."""

    def record_revision(
        self, revision: RevisionRecord, component: ComponentRecord, event: AuditEvent
    ) -> None:
        """In one transaction: upsert the component, add the revision, append the event."""

    def events(self, component: str | None = None) -> list[AuditEvent]:
        """Audit events (of one component), oldest first."""

    def close(self) -> None:
        """Release connections."""


def entry_for(scanned: ScannedFile, digest: str) -> FileEntry:
    """The manifest entry for a scanned file whose digest is known."""
    return FileEntry(
        path=scanned.path,
        kind=scanned.kind,
        size=scanned.stat.size,
        digest=digest,
        target=scanned.target,
    )
