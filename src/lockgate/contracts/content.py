"""The content store role: objects by digest and manifests, streamed.

The contract every content store keeps, then its optional capabilities (file ingest,
materialising, a release cache, flushing, object files on a local disk, a lost-objects
ledger), each found by attribute with a ``store_*`` helper.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, runtime_checkable

from lockgate.contracts.manifest import Manifest
from lockgate.contracts.source import FileStat

__all__ = [
    "CompletenessCheck",
    "ContentStore",
    "DurabilitySwitch",
    "FileIngest",
    "Flushable",
    "LinkMode",
    "LocalObjectFiles",
    "LostObjectsLedger",
    "Materializer",
    "Readable",
    "ReleaseCache",
    "lost_object",
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
