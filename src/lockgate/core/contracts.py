"""The contracts of the roles plugins play: small Protocols, one per role.

The kernel talks to roles only through these; the builtin plugins implement them for the
embedded default (SQLite, ``.lockgate/objects``, workspace directories), and each has an
in-memory or test double in the test suite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple, Protocol, overload, runtime_checkable

import attrs

from lockgate.core.locks import LockOwner
from lockgate.core.manifest import Manifest, check_paths, new_hasher
from lockgate.core.models import ComponentStatus, Issue
from lockgate.core.records import record
from lockgate.core.refs import ComponentRef, name_problem
from lockgate.errors import (
    ConflictError,
    CorruptStateError,
    MissingCapabilityError,
    NotFoundError,
)

__all__ = [
    "Approval",
    "AuditEvent",
    "ChainedEvent",
    "CompletenessCheck",
    "Component",
    "ComponentRecord",
    "ComponentSpec",
    "ContentStore",
    "Discovery",
    "DurabilitySwitch",
    "EventFilter",
    "FileIngest",
    "FileStat",
    "Flushable",
    "Intent",
    "LinkMode",
    "LocalFiles",
    "LocalObjectFiles",
    "LostObjectsLedger",
    "Materializer",
    "Pointer",
    "PointerChange",
    "Prepared",
    "Readable",
    "ReleaseCache",
    "RevisionHandle",
    "RevisionRecord",
    "ScanResult",
    "ScannedFile",
    "ScannedFiles",
    "Source",
    "StateCounts",
    "StateStore",
    "Target",
    "WatchHint",
    "WatchPaths",
    "Watchable",
    "corrupt_record",
    "lost_object",
    "source_is_local",
    "store_forget_lost",
    "store_is_durable",
    "store_lost",
    "store_missing_objects",
    "store_object_path",
    "store_release_cache",
    "store_sync",
    "store_tmp",
]

LinkMode = Literal["auto", "reflink", "hardlink", "copy"]


# --------------------------------------------------------------------------- sources


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


# --------------------------------------------------------------------------- content


class Readable(Protocol):
    """Anything :meth:`ContentStore.put` can read from: a file opened ``"rb"``, a socket's
    file, ``io.BytesIO``. Read in chunks until it returns ``b""``."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when -1); ``b""`` at the end."""


CHUNK = 1 << 20
"""How much the kernel reads from a store or a file at once (1 MiB)."""


@runtime_checkable
class ContentStore(Protocol):
    """Immutable, content-addressed bytes and the manifests that name them.

    Bytes stream in and out (:meth:`put` reads its source in chunks, :meth:`open` returns
    a stream), so a store never needs a whole object in memory, nor a local disk. What a
    store on this machine can do faster (take a file by path, lay a revision out as a
    directory with hardlinks or reflinks, flush, keep a ledger of objects a restart took)
    are optional capabilities below, looked up by attribute: the kernel uses them when
    they are offered and does without otherwise.
    """

    def put(self, source: Readable) -> str:
        """Store every byte ``source`` yields (read in chunks until ``b""``); return the
        digest of exactly those bytes. A failure leaves no partial object behind."""

    def open(self, digest: str) -> BinaryIO:
        """The stored bytes of ``digest``, as a binary stream the caller closes.

        :class:`~lockgate.errors.NotFoundError` when absent. The stream gives the bytes
        as stored: a reader that must trust them checks the digest (:func:`read_object`
        does) or calls :meth:`verify`."""

    def has(self, digest: str) -> bool:
        """True when the object is present."""

    def delete(self, digest: str) -> None:
        """Delete one object (garbage collection; a missing object is no error)."""

    def put_manifest(self, manifest: Manifest) -> str:
        """Store a manifest (its objects are stored); return its revision id.

        Called right before the revision is recorded. The store chooses when bytes reach
        the disk, but a recorded revision must never point at objects a crash damaged
        unnoticed: they are durable when this returns, or a crash before ``sync`` (the
        :class:`Flushable` capability) is detected and what it took is reported by
        ``lost`` (:class:`LostObjectsLedger`).
        """

    def get_manifest(self, revision: str) -> Manifest:
        """A stored manifest; :class:`~lockgate.errors.NotFoundError` when absent."""

    def verify(self, digest: str) -> bool:
        """True when the object exists and its bytes hash to ``digest``."""

    def objects(self) -> Iterator[tuple[str, float]]:
        """Every stored object as (digest, modification time), manifests included."""

    def close(self) -> None:
        """Release what the store holds open (connections, descriptors); idempotent."""


# Optional capabilities. A content store offers any of these by having the attributes
# (the builtin ``local`` store has all of them); the kernel looks them up by plain
# attribute access (so a store that forwards through ``__getattr__`` offers what it
# forwards, on every Python version; ``isinstance`` against a runtime protocol does not
# see those from 3.12 on) and does without for a store that lacks one.


@runtime_checkable
class FileIngest(Protocol):
    """A store that takes a file of this machine by path, faster than :meth:`put`
    (the ``local`` store copies in the kernel, reflinks, and hashes the stored copy).

    Without it the kernel opens the file itself and streams it to :meth:`put`, with the
    same checks (see :func:`ingest_file`).
    """

    def ingest(self, path: str | Path, expected: FileStat) -> tuple[str, int]:
        """Store the file at ``path``; return (digest, size) of exactly the bytes stored.

        Raises :class:`~lockgate.errors.ConflictError` when the file is not as
        ``expected`` or changes while it is read; no partial object is left behind.
        """


@runtime_checkable
class Materializer(Protocol):
    """A store that lays a revision out as a directory of this machine, with hardlinks
    or reflinks where it can (the ``local`` store). Without it the kernel writes each
    file from :meth:`ContentStore.open` (see :func:`materialize_files`)."""

    def materialize(self, manifest: Manifest, dest: Path, link: LinkMode | None = None) -> None:
        """Write the revision's tree into the new directory ``dest``."""


@runtime_checkable
class ReleaseCache(Protocol):
    """A store that keeps revisions laid out as directories of this machine ("releases",
    the ``local`` store's ``.lockgate/releases/``), verified by stat-cached hashing.

    The kernel verifies a revision's release before a switch when the store offers this
    (and lays it out again when it is damaged and no stage deploys it), a target that
    needs a directory gets it from :meth:`RevisionHandle.materialize`, validators read it,
    ``gc`` removes the releases no kept revision needs and ``verify`` hashes those
    deployed. Without it, a switch checks every object is present, targets read files
    through the handle, and a target that needs a directory is refused in one line.
    """

    def release(self, revision: str, link: LinkMode | None = None) -> Path:
        """The release directory of ``revision``, laid out if it is not yet."""

    def has_release(self, revision: str) -> bool:
        """Whether the release of ``revision`` is laid out."""

    def verify_release(self, revision: str, *, full: bool = False) -> list[str]:
        """Problems with the release (empty: every byte matches); ``full`` ignores the
        stat cache and hashes everything."""

    def make_release_durable(self, revision: str) -> bool:
        """Flush the release to the disk unless it was in this boot; True when it flushed."""

    def releases(self) -> list[str]:
        """Every revision laid out, sorted."""

    def remove_release(self, revision: str) -> None:
        """Remove one release (laid out again when next needed)."""

    def sweep_releases(self, cutoff: float) -> int:
        """Remove unfinished releases older than ``cutoff`` (a time); return how many."""


def store_release_cache(store: object) -> ReleaseCache | None:
    """``store`` when it offers the :class:`ReleaseCache` capability, else None."""
    found = getattr(store, "release", None)
    return store if callable(found) else None  # type: ignore[return-value]


@runtime_checkable
class Flushable(Protocol):
    """A store that may hold bytes not yet durable (the ``local`` store defers its flush
    to the first deployment). Without it every stored object is durable at once."""

    def sync(self) -> None:
        """Make every object stored so far durable (called before a revision is deployed)."""


@runtime_checkable
class LocalObjectFiles(Protocol):
    """A store whose objects are files on this machine.

    ``lockgate gc`` then reports the bytes it frees, and sweeps ``tmp`` (where interrupted
    writers leave temporary files) once its entries are older than the grace period.
    """

    tmp: Path

    def object_path(self, digest: str) -> Path:
        """Where object ``digest`` lives (it may not exist)."""


@runtime_checkable
class LostObjectsLedger(Protocol):
    """A store that records objects a restart took before they were durable.

    Staging stores those again from the workspace instead of trusting cached digests;
    deploying a revision that needs one fails naming it. A store without the ledger
    never loses an object it acknowledged.
    """

    def lost(self) -> frozenset[str]:
        """Digests of objects a crash took before they were durable and not stored again."""

    def forget_lost(self, needed: Collection[str]) -> int:
        """``lockgate gc``: forget lost objects no kept revision needs (``needed`` holds
        every digest that kept revisions use); return how many were forgotten."""


@runtime_checkable
class CompletenessCheck(Protocol):
    """A store that tells cheaply which objects a revision needs and it lacks."""

    def missing_objects(self, revision: str) -> frozenset[str]:
        """The digests ``revision`` needs (its manifest's own among them) that the store
        does not have. Every staging asks it about the component's latest revision, so
        it should not cost a ``stat`` per object each time (the kernel's fallback does).

        A store may also offer ``mark_complete(revision, manifest)``: staging calls it
        right after recording a revision whose objects it has just stored or found, so
        that the first ``missing_objects`` after it is as cheap as the later ones."""


@runtime_checkable
class DurabilitySwitch(Protocol):
    """A store whose durability can be turned off (scratch projects).

    With ``fsync`` false nothing is flushed before a switch: neither the store (its own
    ``sync``) nor the release directory deployed from.
    """

    fsync: bool


def store_tmp(store: object) -> Path | None:
    """``LocalObjectFiles.tmp`` of ``store`` (a path or a string), or None."""
    tmp = getattr(store, "tmp", None)
    return Path(tmp) if isinstance(tmp, (str, os.PathLike)) else None


def store_object_path(store: object) -> Callable[[str], Path] | None:
    """``LocalObjectFiles.object_path`` of ``store``, or None."""
    found = getattr(store, "object_path", None)
    return found if callable(found) else None


def store_forget_lost(store: object) -> Callable[[Collection[str]], int] | None:
    """``LostObjectsLedger.forget_lost`` of ``store``, or None."""
    found = getattr(store, "forget_lost", None)
    return found if callable(found) else None


def store_lost(store: object) -> frozenset[str]:
    """``LostObjectsLedger.lost()`` of ``store``; empty for a store without the ledger."""
    found = getattr(store, "lost", None)
    return frozenset(found()) if callable(found) else frozenset()


def store_sync(store: object) -> None:
    """``Flushable.sync()`` of ``store``; nothing for a store whose writes are durable."""
    found = getattr(store, "sync", None)
    if callable(found):
        found()


def store_missing_objects(store: object) -> Callable[[str], frozenset[str]] | None:
    """``CompletenessCheck.missing_objects`` of ``store``, or None."""
    found = getattr(store, "missing_objects", None)
    return found if callable(found) else None


def store_is_durable(store: object) -> bool:
    """False when ``store`` turned its durability off (``DurabilitySwitch.fsync``)."""
    return getattr(store, "fsync", True) is not False


def lost_object(digest: str, where: str) -> str:
    """The problem line for object ``digest`` (used by ``where``) that ``lost()`` names."""
    return (
        f"object {digest[:12]} ({where}) was lost when the machine restarted before it reached "
        "the disk; 'lockgate sync' stores it again from the workspace"
    )


# --------------------------------------------------------------------------- targets


class RevisionHandle:
    """The revision a target deploys: its files and their digests, readable.

    Targets receive one in :meth:`Target.prepare`. ``manifest`` lists every file
    (path, kind, size, digest, symlink target); :meth:`open` streams one file's bytes
    from the content store, checked against its digest as they are read; a target that
    needs the revision as a directory of this machine (the builtin ``directory``
    target) calls :meth:`materialize`, which asks the content store's release cache.
    """

    __slots__ = ("_materialize", "manifest", "revision", "store")

    def __init__(
        self,
        revision: str,
        manifest: Manifest,
        store: ContentStore,
        materialize: Callable[[], Path] | None = None,
    ) -> None:
        # Whatever store held it, a crafted manifest must not name a path (or a link)
        # that leaves the revision: targets write these names into archives and trees.
        check_paths(manifest, where=f"revision {revision[:12]}")
        self.revision = revision
        self.manifest = manifest
        self.store = store
        self._materialize = materialize

    def __repr__(self) -> str:
        return f"RevisionHandle({self.revision[:12]}, {len(self.manifest.entries)} entries)"

    def open(self, path: str) -> BinaryIO:
        """The bytes of the regular file ``path`` of the revision, as a stream the caller
        closes. Reading it to its end raises :class:`~lockgate.errors.ConflictError` when
        the bytes do not match the recorded digest (so a target never ships damaged bytes
        unnoticed); :class:`~lockgate.errors.NotFoundError` for a path not in the revision
        or a symlink (its target is ``FileEntry.target``)."""
        entry = next((e for e in self.manifest.entries if e.path == path), None)
        if entry is None or entry.kind == "symlink":
            what = "a symlink" if entry is not None else "not a file"
            raise NotFoundError(f"{path} is {what} of revision {self.revision[:12]}")
        return _Verified(self.store.open(entry.digest), entry.digest, path)  # type: ignore[return-value]

    def materialize(self) -> Path:
        """The revision as a read-only directory of this machine, laid out and verified by
        the content store (:class:`ReleaseCache`); the same directory every time.

        :class:`~lockgate.errors.MissingCapabilityError` when the content store keeps no
        release directories: such a target needs the ``local`` store (or one like it)."""
        if self._materialize is None:
            raise MissingCapabilityError(
                f"revision {self.revision[:12]} cannot be laid out as a directory: the "
                "content store keeps no releases (ReleaseCache); use a target that reads "
                "files through its revision handle, or the 'local' content store"
            )
        return self._materialize()


class _Verified:
    """A stream that hashes what it hands out and checks the digest at its end."""

    def __init__(self, inner: BinaryIO, digest: str, path: str) -> None:
        self._inner, self._digest, self._path = inner, digest, path
        self._hasher = new_hasher()
        self._checked = False

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self._hasher.update(data)
        if (not data or size < 0) and not self._checked:
            self._checked = True
            if self._hasher.hexdigest() != self._digest:
                raise ConflictError(
                    f"{self._path}: its bytes in the content store do not match digest "
                    f"{self._digest[:12]} (damaged); run 'lockgate verify'"
                )
        return data

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> _Verified:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@record
class Prepared:
    """What a target prepared for one switch: ``revision`` None removes the entry.

    ``token`` is the target's own (a temporary symlink's path, an upload id); the kernel
    only hands it back to :meth:`Target.commit` or :meth:`Target.abort`.
    """

    component_id: str
    revision: str | None
    token: object = None


class Target(Protocol):
    """Where a stage's current revisions are deployed (builtin: ``directory``).

    The contract is two-step: :meth:`prepare` does everything slow and invisible (the
    kernel has checked the revision's objects, and verified its release when the content
    store keeps one); :meth:`commit` makes the switch visible atomically — a reader sees
    the old revision or the new one, never a mix and never nothing. Both may be repeated
    after a crash: they must be idempotent.
    """

    def prepare(self, component_id: str, revision: RevisionHandle | None) -> Prepared:
        """Stage the switch of ``component_id`` to ``revision`` (None: remove it)."""

    def commit(self, prepared: Prepared) -> None:
        """Make the prepared switch visible, atomically and durably."""

    def abort(self, prepared: Prepared) -> None:
        """Drop a prepared switch that will not be committed."""

    def deployed(self) -> dict[str, str]:
        """Component id -> revision deployed now, for every entry."""

    def location(self, component_id: str) -> str:
        """Where ``component_id`` is deployed (a path, a URL)."""

    def check(self, component_id: str, revision: str) -> list[str]:
        """Problems with the deployed entry of ``component_id`` (empty: it is ``revision``)."""


# --------------------------------------------------------------------------- state


def _stored(
    record: object, kind: str, names: str = "", refs: str = "", revisions: str = ""
) -> None:
    """Refuse a record whose names could not have come from lockgate.

    Records are built by the state store from what it read back, and the kernel joins
    their component ids, stage names and revision ids to paths. Checking them here, with
    the rules user input follows, covers every store: a row edited to hold
    ``x/../../outside`` is refused before any command touches a file with it.
    """
    checks = [(n, "name") for n in names.split()]
    checks += [(n, "ref") for n in refs.split()]
    checks += [(n, "revision") for n in revisions.split()]
    for field, rule in checks:
        value = getattr(record, field)
        if value is None and (rule == "revision" or field == "stage"):
            continue
        problem = _ref_problem(value) if rule == "ref" else name_problem(value)
        if problem is not None:
            raise corrupt_record(kind, field, value, problem)


def corrupt_record(kind: str, field: str, value: object, problem: str) -> CorruptStateError:
    """The error for a record read back from the state store that breaks lockgate's rules."""
    article = "an" if kind[:1] in "aeiou" else "a"
    return CorruptStateError(
        f"the state store holds {article} {kind} whose {field} {value!r} {problem}: lockgate never "
        "writes that, so .lockgate/ was edited or damaged; restore it from a backup, or "
        "correct or delete that record"
    )


def _ref_problem(value: object) -> str | None:
    if not isinstance(value, str) or ":" not in value:
        return "is not WORKSPACE:ID"
    workspace, _, component_id = value.partition(":")
    problem = name_problem(workspace) or name_problem(component_id)
    return None if problem is None else f"is not WORKSPACE:ID of two names (one {problem})"


@record
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

    def __attrs_post_init__(self) -> None:
        _stored(self, "revision", names="stage", refs="component", revisions="revision parent")


@record
class ComponentRecord:
    """A component as the state store knows it: its latest revision and status."""

    component: str
    workspace: str
    component_id: str
    component_type: str
    status: ComponentStatus
    latest_revision: str | None
    updated_at: str

    def __attrs_post_init__(self) -> None:
        _stored(
            self,
            "component",
            names="workspace component_id component_type",
            refs="component",
            revisions="latest_revision",
        )


@record
class AuditEvent:
    """One audit-log entry (``seq`` is set by the store when it is appended).

    ``outcome`` is ``ok`` for a change that happened, ``failed`` or ``refused`` for an
    attempt that did not (recorded so that statistics can give success rates).
    """

    at: str
    actor: str
    action: str
    component: str | None = None
    stage: str | None = None
    revision: str | None = None
    previous_revision: str | None = None
    reason: str | None = None
    details: dict[str, object] = attrs.field(factory=dict)
    outcome: str = "ok"
    seq: int | None = None


@record
class ChainedEvent:
    """An audit event as stored, with its place in the hash chain."""

    event: AuditEvent
    prev_hash: str
    hash: str


@record
class EventFilter:
    """Which audit events to return; every field narrows, None means any."""

    component: str | None = None
    stage: str | None = None
    actor: str | None = None
    action: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int | None = None
    newest_first: bool = False


@record
class Pointer:
    """The revision current in a stage for one component id (None: removed).

    ``generation`` counts the pointer's moves; a move must name the generation it
    expects, so a caller that read a stale pointer gets a conflict.
    """

    stage: str
    component_id: str
    component: str
    revision: str | None
    generation: int
    updated_at: str
    actor: str

    def __attrs_post_init__(self) -> None:
        _stored(self, "pointer", names="stage component_id", refs="component", revisions="revision")


@record
class PointerChange:
    """One move of a stage pointer: what became current, when, by whom, until when."""

    stage: str
    component_id: str
    component: str
    revision: str | None
    previous_revision: str | None
    generation: int
    at: str
    actor: str
    action: str
    reason: str | None = None
    valid_until: str | None = None
    event_seq: int | None = None

    def __attrs_post_init__(self) -> None:
        _stored(
            self,
            "pointer change",
            names="stage component_id",
            refs="component",
            revisions="revision previous_revision",
        )


@record
class Approval:
    """An approval or rejection of one revision (bound to its digest)."""

    component: str
    revision: str
    actor: str
    decision: Literal["approve", "reject"]
    at: str
    stage: str | None = None
    comment: str | None = None

    def __attrs_post_init__(self) -> None:
        _stored(self, "decision", names="stage", refs="component", revisions="revision")


@record
class Intent:
    """An operation announced before it touches a target, closed when it is done or undone."""

    id: str
    operation: str
    owner: str
    created_at: str
    payload: dict[str, object] = attrs.field(factory=dict)
    state: Literal["open", "completed", "undone"] = "open"


@record
class StateCounts:
    """Aggregates for ``summary`` and ``stats``."""

    by_status: dict[str, int]
    by_type: dict[str, int]
    by_workspace: dict[str, int]
    operations: dict[str, dict[str, int]]
    events: int


class StateStore(Protocol):
    """Everything lockgate records (builtin: ``sqlite``; also ``memory``).

    Every write that changes state appends its audit event in the same transaction.
    ``tests``/``lockgate.conformance`` hold the suite every implementation must pass.
    """

    # -- components and revisions
    def component(self, ref: str) -> ComponentRecord | None:
        """One component's record, or None."""

    def components(self, workspace: str | None = None) -> list[ComponentRecord]:
        """Every known component (of one workspace), sorted by ref."""

    def revisions(self, ref: str) -> list[RevisionRecord]:
        """A component's revisions, oldest first."""

    def record_revision(
        self, revision: RevisionRecord, component: ComponentRecord, event: AuditEvent
    ) -> int:
        """Upsert the component, add the revision, append the event; return its seq."""

    def set_status(
        self,
        ref: str,
        expected: ComponentStatus,
        status: ComponentStatus,
        event: AuditEvent,
    ) -> int:
        """Change a component's status if it is still ``expected`` (else ConflictError)."""

    # -- stage pointers
    def pointer(self, stage: str, component_id: str) -> Pointer | None:
        """The pointer of ``component_id`` in ``stage`` (None if it never had one)."""

    def pointers(self, stage: str | None = None) -> list[Pointer]:
        """Every pointer (of one stage) that currently names a revision."""

    def move_pointer(
        self,
        change: PointerChange,
        *,
        expected_generation: int,
        status: ComponentStatus | None,
        event: AuditEvent,
    ) -> Pointer:
        """Compare-and-swap: move the pointer if its generation is ``expected_generation``
        (0 for a pointer that does not exist yet), record the change in the pointer
        history, set the component's status (when given) and append the event, in one
        durable transaction. A stale generation raises ConflictError."""

    def pointer_history(
        self, stage: str | None = None, component_id: str | None = None
    ) -> list[PointerChange]:
        """Pointer moves, oldest first."""

    def live_at(self, stage: str, at: str, component_id: str | None = None) -> list[PointerChange]:
        """The pointer changes that were current in ``stage`` at time ``at``."""

    # -- approvals
    def add_approval(
        self,
        approval: Approval,
        event: AuditEvent,
        status: tuple[ComponentStatus, ComponentStatus] | None = None,
    ) -> int:
        """Record an approval or rejection with its audit event, in one transaction.

        ``status=(expected, new)`` also moves the component's status by compare-and-swap
        (ConflictError, and nothing recorded, when it is no longer ``expected``)."""

    def approvals(self, component: str, revision: str | None = None) -> list[Approval]:
        """Approvals and rejections of a component (of one revision), oldest first."""

    # -- intents
    def open_intent(self, intent: Intent) -> None:
        """Record that an operation is about to touch a target."""

    def close_intent(self, intent_id: str, state: Literal["completed", "undone"]) -> None:
        """Mark an intent completed or undone."""

    def open_intents(self) -> list[Intent]:
        """Intents still open (left by an interrupted operation)."""

    # -- audit log
    def append_event(self, event: AuditEvent) -> int:
        """Append an event that accompanies no other change (a failure, an unlock)."""

    def append_events(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append several such events in one transaction (all or none); return their seqs."""

    def events(self, where: EventFilter | None = None) -> list[AuditEvent]:
        """Audit events matching ``where``, oldest first (unless ``newest_first``)."""

    def chain(self, after: int = 0) -> Iterator[ChainedEvent]:
        """Every stored event with its hashes, in sequence order, for verification."""

    def counts(self) -> StateCounts:
        """Aggregates for reports, answered without scanning the log."""

    # -- locks (the records and the names: lockgate.core.locks)
    def lock(
        self, name: str, *, owner: LockOwner, lease: float, timeout: float, shared: bool = False
    ) -> AbstractContextManager[LockOwner]:
        """Hold lock ``name`` (``operation`` or ``staging``) for the ``with`` block.

        Exclusive, or ``shared`` with other shared holders of the same name; locks of
        different names are independent (the kernel never asks again for a lock it
        holds). Waits up to ``timeout`` seconds, then raises ``LockedError`` naming the
        holder (``locked_error``). Yields ``owner`` as granted: ``since`` now and
        ``lease_until`` ``lease`` seconds from now. Released when the block exits, and
        when the holder dies however it dies: a dead holder never blocks."""

    def holder(self, name: str) -> LockOwner | None:
        """Who holds lock ``name`` now (one of them when it is held shared; not
        ``known`` when the store cannot tell who), or None when it is free."""

    def break_lock(self, name: str) -> None:
        """Free lock ``name`` whoever holds it (``lockgate unlock --force``): the next
        ``lock`` takes it at once. A holder still running keeps running, no longer
        excluding anyone, and its release does not free a lock taken since."""

    def close(self) -> None:
        """Release connections."""
