"""The source role: where components come from (workspaces, a repository, memory).

A source discovers components, scans their files and opens them for reading; optional
capabilities (local files, watch paths) are found by attribute.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple, Protocol, overload, runtime_checkable

import attrs

from lockgate.contracts.models import Issue
from lockgate.contracts.records import record
from lockgate.contracts.refs import ComponentRef

__all__ = [
    "Component",
    "ComponentSpec",
    "Discovery",
    "FileStat",
    "LocalFiles",
    "ScanResult",
    "ScannedFile",
    "ScannedFiles",
    "Source",
    "WatchHint",
    "WatchPaths",
    "Watchable",
    "source_is_local",
]


@record
class ComponentSpec:
    """What ``component.yaml`` says (every field optional)."""

    version: str | None = None
    description: str | None = None
    owners: list[str] = attrs.field(factory=list)
    depends_on: list[str] = attrs.field(factory=list)
    metadata: dict[str, object] = attrs.field(factory=dict)


@record
class Component:
    """A component found in a workspace."""

    ref: ComponentRef
    component_type: str
    path: Path
    spec: ComponentSpec = attrs.field(factory=ComponentSpec)


@record
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


class ScannedFiles(Sequence[ScannedFile]):
    """A scan's files, built on first use.

    A source that knows how many files there are and their sizes without building one
    object per file (the builtin workspace source, from its stat cache) hands these out,
    so that a restage of an unchanged component builds none of them.
    """

    __slots__ = ("_build", "_files", "_length", "largest", "total_size")

    def __init__(
        self,
        build: Callable[[], tuple[ScannedFile, ...]],
        *,
        count: int,
        total_size: int,
        largest: int,
    ) -> None:
        self._build: Callable[[], tuple[ScannedFile, ...]] | None = build
        self._files: tuple[ScannedFile, ...] = ()
        self._length = count
        self.total_size = total_size
        self.largest = largest

    def _all(self) -> tuple[ScannedFile, ...]:
        if self._build is not None:
            self._files, self._build = self._build(), None
        return self._files

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> ScannedFile: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ScannedFile]: ...
    def __getitem__(self, index: int | slice) -> ScannedFile | Sequence[ScannedFile]:
        return self._all()[index]

    def __iter__(self) -> Iterator[ScannedFile]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        """Equal to the same files, whether built lazily or a plain tuple."""
        if isinstance(other, ScannedFiles):
            return self._all() == other._all()
        if isinstance(other, tuple):
            return self._all() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())


@record
class ScanResult:
    """Every file of a component as it is now."""

    component: Component
    files: Sequence[ScannedFile]
    """In no particular order (manifests sort their entries); a tuple, or
    :class:`ScannedFiles` built on first use."""
    revision: str | None = None
    """Set when the source vouches that the files are exactly this revision's."""

    @property
    def total_size(self) -> int:
        """Bytes in all files."""
        if isinstance(self.files, ScannedFiles):
            return self.files.total_size
        return sum(f.stat.size for f in self.files)

    @property
    def largest(self) -> int:
        """The size of the largest file (0 when there is none)."""
        if isinstance(self.files, ScannedFiles):
            return self.files.largest
        return max((f.stat.size for f in self.files), default=0)


class Source(Protocol):
    """Where components come from (builtin: ``workspace``, directories on disk).

    Optional capabilities: ``watch_paths()`` (:class:`Watchable`), for ``lockgate watch``;
    ``local_files`` (:class:`LocalFiles`): components are directories of this machine.
    """

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

    def open_file(self, component: Component, path: str) -> BinaryIO:
        """The bytes of file ``path`` (as scanned) of ``component`` as a binary stream the
        caller closes; :class:`~lockgate.errors.NotFoundError` when it is gone."""


@runtime_checkable
class LocalFiles(Protocol):
    """Optional capability of a :class:`Source`: ``local_files`` is True when every
    ``Component.path`` is a directory of this machine holding the component's files.

    Staging then reads files by path, where the content store's ``FileIngest`` fast path
    (copy in the kernel, reflink) and a stat check before and after the read apply;
    otherwise it streams each file from :meth:`Source.open_file` to
    :meth:`ContentStore.put`. A source without ``open_file`` (written for 0.x) is read
    by path too.
    """

    local_files: bool


def source_is_local(source: object) -> bool:
    """Whether staging reads ``source``'s files by path (see :class:`LocalFiles`)."""
    if getattr(source, "local_files", False) is True:
        return True
    return not callable(getattr(source, "open_file", None))


class WatchHint(NamedTuple):
    """What a file event asks the watcher for.

    ``kind``: ``"component"`` (rescan the component whose directory is ``path``, exactly
    ``str(Component.path)``), ``"workspace"`` (discover ``workspace`` again: components
    may have appeared or gone) or ``"rescan"`` (discover, then rescan every component of
    ``workspace``: an ignore rule changed). ``workspace`` None means every watched one.
    """

    kind: str
    workspace: str | None
    path: str = ""


class WatchPaths(Protocol):
    """Which directory a watcher watches, and what an event under it means.

    ``root`` is watched recursively. :meth:`hint` and :meth:`workspace_of` are called on
    the file-event threads, once per event: they must be pure, quick and thread-safe.
    """

    @property
    def root(self) -> str:
        """The directory to watch, recursively (an absolute path)."""

    def hint(self, path: str, *, is_dir: bool) -> WatchHint | None:
        """What an event on ``path`` (under :attr:`root`) asks for; None: nothing."""

    def workspace_of(self, path: str) -> str | None:
        """The workspace ``path`` belongs to (None when it is in none)."""


@runtime_checkable
class Watchable(Protocol):
    """Optional capability of a :class:`Source`: its components live in files that
    can be watched (``lockgate watch`` needs it; the builtin ``workspace`` source has it).

    A source without it still stages, syncs and validates; ``lockgate watch`` then says
    that it cannot watch that source and points to ``lockgate sync``.
    """

    def watch_paths(self, workspaces: Sequence[str] | None = None) -> WatchPaths:
        """Where to watch for changes to the components of ``workspaces`` (None: all)."""


class ChangeJournal(Protocol):
    """Which directories had file events, as ``lockgate watch`` saw them: what lets a
    source skip rereading what did not change (git's fsmonitor, for a source).

    Generations only grow: :meth:`generation` is "now"; a scan records it before it reads
    anything, and its next scan asks :meth:`changed` about every event since.
    """

    def generation(self) -> int:
        """The current generation (the count of events seen so far)."""

    def changed(self, since: int) -> Callable[[str], bool] | None:
        """A test for one absolute directory path: whether an event since generation
        ``since`` touched it (an entry in it, or it or a directory it is in as a whole:
        created, deleted, moved). None when that cannot be known now (events may have
        been lost, or may not have arrived yet): then read everything."""


@runtime_checkable
class TrustsEvents(Protocol):
    """Optional capability of a :class:`Source`: it can answer a scan from a
    :class:`ChangeJournal` (``lockgate watch`` hands it one unless
    ``plugins.watch.trust_events`` is false; None takes it back). The scan's result must
    be exactly what reading everything would have given, for any change the journal
    reports."""

    def use_journal(self, journal: ChangeJournal | None) -> None:
        """Answer scans from ``journal`` from now on (None: read everything again)."""
