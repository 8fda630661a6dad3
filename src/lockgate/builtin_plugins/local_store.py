"""Builtin plugin ``local``: the content store in ``.lockgate/objects/``.

Objects are named by the BLAKE3 digest of their bytes (``objects/ab/cdef…``), written to a
temporary file, then renamed into place and made read-only, so an object is either
complete or absent. Ingesting a workspace file hashes exactly the bytes it writes, and
checks the file did not change while it was read (the stat before and after must agree),
so a stored object always matches its recorded digest. Objects are never fsynced one by
one: with ``flush: promote`` (the default) the file system is flushed once before a
revision is deployed, and a crash of the machine before that is detected and repaired
(see :mod:`lockgate.builtin_plugins.local_journal`); with ``flush: stage`` it is flushed
once before each revision is recorded.

Writing objects (ingesting files, storing streams: the hot path of staging) is the
store's base class, :class:`~lockgate.builtin_plugins.local_ingest.ObjectWriter`; the
release cache is :mod:`lockgate.builtin_plugins.local_releases`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal

from lockgate.builtin_plugins.local_ingest import BUFFER, ObjectWriter
from lockgate.builtin_plugins.local_journal import Journal
from lockgate.builtin_plugins.local_releases import RELEASES_DIRNAME, LocalReleases
from lockgate.plugin import (
    ConflictError,
    InputError,
    LinkMode,
    Manifest,
    NotFoundError,
    RoleContext,
    boot_id,
    check_paths,
    digest_bytes,
    hookimpl,
    lost_object,
    new_hasher,
    record,
    syncfs,
)

__all__ = ["LocalContentStore", "LocalSettings"]

_FICLONE = 0x40049409  # linux/fs.h: reflink one file onto another
_MANIFEST_ENTRIES = 200_000
"""Decoded manifests kept per store object, counted in file entries."""

STAMPS_DIRNAME = "complete"
"""Under ``.lockgate/cache/``: one completeness stamp per revision (see ``missing_objects``)."""
STAMPS_KEPT = 512
INGESTED_DIRNAME = "ingested"
"""Under ``.lockgate/cache/``: the stat of the objects each staging wrote, per revision
(see ``mark_complete``), read once when the revision's release is laid out."""


@record
class LocalSettings:
    """``plugins.local:`` — where objects live and how durable a write is."""

    path: str = "objects"
    fsync: bool = True
    flush: Literal["promote", "stage"] = "promote"
    link: LinkMode = "auto"
    """How a release's files are made from objects (was ``staging.link``)."""


@hookimpl
def register_settings() -> type:
    return LocalSettings


@hookimpl
def register_content_stores(register: Any) -> None:
    register("local", lambda ctx: LocalContentStore.from_context(ctx))


class LocalContentStore(ObjectWriter):
    """Content-addressed objects in a directory."""

    def __init__(
        self,
        root: Path,
        *,
        fsync: bool = True,
        flush: Literal["promote", "stage"] = "promote",
        stamps: Path | None = None,
        releases: Path | None = None,
        link: LinkMode = "auto",
    ) -> None:
        self.root = root
        self.link: LinkMode = link
        self._stamps = str(stamps) if stamps is not None else None
        """Where completeness stamps are kept (a cache); None: no stamps, look each time."""
        self.tmp = root / "tmp"
        self.fsync = fsync
        # Deferred flushing needs the boot id to tell a restart from a process's death.
        self.deferred = fsync and flush == "promote" and boot_id() is not None
        self.flushes = 0
        """How many times this store flushed the file system."""
        self._dirty = False
        self._journal = Journal(str(root))
        self._root_s = str(root)
        self._tmp_s = str(self.tmp)
        self._fanout: set[str] = set()
        self._tmp_ready = False
        self._ingested: dict[str, list[int]] = {}
        self._reflink_ok = True
        self._manifests: dict[str, Manifest] = {}
        self._manifest_entries = 0
        self._ledgers = str(stamps.parent / INGESTED_DIRNAME) if stamps is not None else None
        self._releases = LocalReleases(
            releases if releases is not None else root.parent / RELEASES_DIRNAME,
            self,
            ledgers=self._ledgers,
        )

    @classmethod
    def from_context(cls, ctx: RoleContext) -> LocalContentStore:
        settings = ctx.settings or LocalSettings()
        root = (ctx.state_dir / settings.path).resolve()
        if not root.is_relative_to(ctx.state_dir.resolve()):
            raise InputError(
                f"plugins.local.path {settings.path!r} leaves .lockgate/; use a relative path"
            )
        store = cls(
            root,
            fsync=settings.fsync,
            flush=settings.flush,
            stamps=ctx.state_dir / "cache" / STAMPS_DIRNAME,
            releases=ctx.state_dir / RELEASES_DIRNAME,
            link=settings.link,
        )
        store.recover()
        return store

    def recover(self) -> None:
        """After a restart of the machine, check what may not have reached the disk."""
        if not os.path.isdir(self._root_s):
            return
        found = self._journal.recover(self._object_times, self.verify, self.remove, self._syncfs)
        if found is not None:
            print(f"lockgate: warning: {found.message(self._root_s)}", file=sys.stderr)

    def lost(self) -> frozenset[str]:
        recorded = self._journal.lost()
        if not recorded:
            return recorded
        # Objects stored again leave the list at the next flush (under its lock: a repair
        # records an object before removing it, so "present" is not "restored" meanwhile).
        return frozenset(d for d in recorded if not self.has(d))

    def forget_lost(self, needed: Collection[str]) -> int:
        """Garbage collection: forget lost objects no kept revision needs (see
        :meth:`Journal.forget_lost`); return how many were forgotten."""
        return self._journal.forget_lost(needed)

    # ------------------------------------------------------------------ flushing

    # Objects are written by ObjectWriter (local_ingest.py); they reach the disk here.

    def sync(self) -> None:
        if not self.fsync or not os.path.isdir(self._root_s):
            return  # durability off, or nothing was ever stored: nothing to flush
        if not self._journal.flush(self._syncfs, self.has) and self._dirty:
            self._syncfs()
        self._dirty = False

    def _syncfs(self) -> None:
        syncfs(self.root)
        self.flushes += 1

    def put_manifest(self, manifest: Manifest) -> str:
        data = manifest.canonical()
        revision = self.put_bytes(data)
        if self.deferred:
            self._journal.release()  # the revision's objects are all published
        else:
            self.sync()
        return revision

    # ------------------------------------------------------------------ completeness

    def missing_objects(self, revision: str) -> frozenset[str]:
        """The objects ``revision`` needs (its manifest among them) that are not stored.

        Staging asks this of every component's latest revision, and one ``stat`` per
        object was most of an unchanged restage's time. A stamp per revision,
        ``.lockgate/cache/complete/<revision>``, records each fan-out directory holding
        its objects as it was (inode, ctime) when every object was last found there.
        Removing an entry changes its directory's ctime, which nobody can set back, so an
        unchanged directory still holds them all; only the objects of changed (or
        untrusted) directories are looked for again. An unchanged restage costs one ``stat`` per
        directory (at most 256) instead. Stamps are a cache, in ``.lockgate/cache/``.
        """
        self._object_str(revision)  # a revision id read back is checked before any use
        stamp_file = f"{self._stamps}/{revision}" if self._stamps is not None else None
        stamp = _read_stamp(stamp_file) if stamp_file is not None else None
        root = self._root_s
        if stamp and all(v is not None and _dir_key(root, f) == v for f, v in stamp.items()):
            return frozenset()
        try:
            manifest = self.get_manifest(revision)
        except (NotFoundError, ConflictError, InputError):
            return frozenset({revision})
        by_fan = _by_fan(revision, manifest)
        missing: set[str] = set()
        fresh: dict[str, list[int] | None] = {}
        now = self._fs_now()
        for fan, digests in by_fan.items():
            key = _dir_key(self._root_s, fan)  # before looking: a later removal changes it
            if key is not None and stamp and stamp.get(fan) == key:
                fresh[fan] = key
                continue
            missing.update(d for d in digests if not os.path.isfile(self._object_str(d)))
            fresh[fan] = _trusted(key, now)
        if not missing and fresh != stamp and stamp_file is not None:
            self._write_stamp(stamp_file, fresh)
        return frozenset(missing)

    def mark_complete(self, revision: str, manifest: Manifest) -> None:
        """Record that every object of ``revision`` is stored now (``CompletenessCheck``).

        Staging calls it right after recording a revision whose objects it has just
        stored or found, under the staging lock that keeps gc out: the next unchanged
        restage then finds the stamp and costs no ``stat`` per object, not even once.
        """
        if self._stamps is None:
            return
        self._object_str(revision)
        now = self._fs_now()
        fans = {
            fan: _trusted(_dir_key(self._root_s, fan), now) for fan in _by_fan(revision, manifest)
        }
        self._write_stamp(f"{self._stamps}/{revision}", fans)
        self._write_ledger(revision, manifest, now)

    def _write_ledger(self, revision: str, manifest: Manifest, now: int) -> None:
        """Keep the stat of the objects of ``revision`` this process wrote (and hashed) as
        it was when each was published, for the first layout of its release
        (:meth:`LocalReleases.ensure`), which then needs not hash them again.

        An object whose ctime is not older than the file system's clock ``now`` was
        published in this very tick and could change again unseen (git's "racily clean"
        entries): it is left out, and hashed when its release is laid out. The ledger also
        names the boot it was written in: a restart can take bytes that were never
        flushed while leaving every stat as it was.
        """
        written = self._ingested
        if not written:
            return  # this process stored nothing (a restage that found every object)
        objects = {
            e.digest: written[e.digest]
            for e in manifest.entries
            if e.kind == "file" and e.digest in written and written[e.digest][3] < now
        }
        for entry in manifest.entries:
            written.pop(entry.digest, None)  # a long-lived process keeps no more than needed
        if objects and self._ledgers is not None:
            ledger = {"boot": boot_id(), "objects": objects}
            self._write_stamp(f"{self._ledgers}/{revision}", ledger)

    def _fs_now(self) -> int:
        """The file system's clock, as it stamps ctimes: the ctime of a probe file touched
        now, beside the objects. A directory whose ctime is older changed in an earlier
        tick than this look, so a removal from it from now on shows as a new ctime; one
        changed in this very tick may change again unseen, and is not trusted (as git's
        "racily clean" entries). The tick is the file system's own (nanoseconds to two
        seconds), so no fixed margin is needed."""
        probe = os.path.join(self._root_s, ".clock")
        try:
            os.utime(probe)
        except FileNotFoundError:
            try:
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT, 0o644))
            except OSError:
                return 0
        except OSError:
            return 0  # no clock: nothing is trusted, every look stats the objects
        return os.stat(probe).st_ctime_ns

    def _write_stamp(self, stamp_file: str, fans: Mapping[str, Any]) -> None:
        """Replace a completeness stamp or a ledger (a cache: failing to write it costs
        time only), keeping at most ``STAMPS_KEPT`` in its directory."""
        import json

        stamps = os.path.dirname(stamp_file)
        tmp = f"{stamp_file}.{os.getpid()}.tmp"
        try:
            os.makedirs(stamps, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(fans, fh)
            os.replace(tmp, stamp_file)
            names = os.listdir(stamps)
            if len(names) > STAMPS_KEPT:  # drop the older half
                paths = sorted(
                    (os.path.join(stamps, n) for n in names), key=lambda p: os.stat(p).st_mtime
                )
                for path in paths[: len(paths) // 2]:
                    os.unlink(path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    # ------------------------------------------------------------------ reading

    def objects(self) -> Iterator[tuple[str, float]]:
        for digest, changed_ns in self._object_times():
            yield digest, changed_ns / 1e9

    def _object_times(self) -> Iterator[tuple[str, int]]:
        """Every object's digest and the later of its mtime and ctime, in ns."""
        try:
            fans = os.scandir(self.root)
        except FileNotFoundError:
            return
        with fans:
            for fan in fans:
                if len(fan.name) != 2 or not fan.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(fan.path) as entries:
                    for entry in entries:
                        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                            continue
                        st = entry.stat(follow_symlinks=False)
                        yield fan.name + entry.name, max(st.st_mtime_ns, st.st_ctime_ns)

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.object_path(digest))

    remove = delete  # the name before the streamed contract (0.x)

    def open(self, digest: str) -> BinaryIO:
        path = self._object_str(digest)
        try:
            return open(path, "rb")  # the caller closes the stream
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {digest[:12]} is missing from {self.root}") from exc

    def close(self) -> None:
        """Nothing is held open between calls."""

    def has(self, digest: str) -> bool:
        return os.path.isfile(self._object_str(digest))

    def read_bytes(self, digest: str) -> bytes:
        path = self.object_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"object {digest[:12]} is missing from {self.root}") from exc
        if digest_bytes(data) != digest:
            raise ConflictError(
                f"object {digest[:12]} at {path} is corrupt (its bytes no longer match their "
                "digest); run 'lockgate verify'"
            )
        return data

    def get_manifest(self, revision: str) -> Manifest:
        # Manifests are immutable (named by their digest), so decoded ones are kept.
        cached = self._manifests.get(revision)
        if cached is not None:
            return cached
        try:
            data = self.read_bytes(revision)
        except NotFoundError as exc:
            raise NotFoundError(f"revision {revision[:12]} is not in the content store") from exc
        manifest = Manifest.from_bytes(data, where=f"revision {revision[:12]}")
        # Bounded by the entries kept, not the manifests: a thousand small components
        # (a pipeline's plan) stay, a few huge revisions do not pile up.
        self._manifest_entries += len(manifest.entries)
        if self._manifest_entries > _MANIFEST_ENTRIES:
            self._manifests.clear()
            self._manifest_entries = len(manifest.entries)
        self._manifests[revision] = manifest
        return manifest

    def verify(self, digest: str) -> bool:
        path = self.object_path(digest)
        hasher = new_hasher()
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(BUFFER):
                    hasher.update(chunk)
        except OSError:
            return False
        return bool(hasher.hexdigest() == digest)

    # ------------------------------------------------------------------ releases

    # The ReleaseCache capability: revisions laid out under .lockgate/releases/ (see
    # local_releases.py), shared by validation, the directory target and verify.

    @property
    def releases_dir(self) -> Path:
        """Where releases are laid out."""
        return self._releases.directory

    def release(self, revision: str, link: LinkMode | None = None) -> Path:
        return self._releases.ensure(revision, link)

    def has_release(self, revision: str) -> bool:
        return self._releases.exists(revision)

    def verify_release(self, revision: str, *, full: bool = False) -> list[str]:
        return self._releases.verify(revision, full=full)

    def make_release_durable(self, revision: str) -> bool:
        return self._releases.make_durable(revision)

    def releases(self) -> list[str]:
        return self._releases.revisions()

    def remove_release(self, revision: str) -> None:
        self._releases.remove(revision)

    def sweep_releases(self, cutoff: float) -> int:
        return self._releases.sweep(cutoff)

    # ------------------------------------------------------------------ materializing

    def materialize(self, manifest: Manifest, dest: Path, link: LinkMode | None = None) -> None:
        link = self.link if link is None else link  # None: plugins.local.link
        check_paths(manifest)
        dest.mkdir(parents=True, exist_ok=False)
        for entry in manifest.entries:
            target = dest / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.kind == "symlink":
                os.symlink(str(entry.target), target)
                continue
            source = self.object_path(entry.digest)
            if not source.is_file():
                if entry.digest in self.lost():
                    raise NotFoundError(lost_object(entry.digest, entry.path))
                raise NotFoundError(
                    f"object {entry.digest[:12]} for {entry.path} is missing; run 'lockgate verify'"
                )
            self._place(source, target, link, executable=entry.executable)

    def _place(self, source: Path, target: Path, link: LinkMode, *, executable: bool) -> None:
        """One file: ``auto`` hardlinks plain files (one syscall; objects are read-only)
        and reflinks, else copies, executables (a hardlink would share the object's
        mode). A file system that refuses one reflink is not asked again."""
        mode = 0o555 if executable else 0o444
        # A hardlink shares the object's read-only mode, so executables are copied instead.
        if link in ("auto", "hardlink") and not executable:
            try:
                os.link(source, target)
                return
            except OSError as exc:
                if link == "hardlink":
                    raise InputError(f"{target}: cannot hardlink ({exc.strerror})") from exc
        if link == "reflink" or (link == "auto" and self._reflink_ok):
            if _reflink(source, target):
                os.chmod(target, mode)
                return
            if link == "reflink":
                raise InputError(
                    f"{target.parent}: the file system cannot reflink; "
                    "set plugins.local.link to auto"
                )
            self._reflink_ok = False
        import shutil

        shutil.copyfile(source, target)
        os.chmod(target, mode)


def _reflink(source: Path, target: Path) -> bool:
    import fcntl

    try:
        with open(source, "rb") as src, open(target, "wb") as dst:
            try:
                fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
                return True
            except OSError:
                pass
    except OSError:
        return False
    target.unlink()
    return False


def _by_fan(revision: str, manifest: Manifest) -> dict[str, list[str]]:
    """A revision's objects (its manifest's own among them) by fan-out directory."""
    by_fan: dict[str, list[str]] = {}
    for digest in {revision} | {e.digest for e in manifest.entries if e.kind != "symlink"}:
        by_fan.setdefault(digest[:2], []).append(digest)
    return by_fan


def _trusted(key: list[int] | None, now: int) -> list[int] | None:
    """``key`` when its directory changed before the file system's tick ``now``, else None."""
    return key if key is not None and key[1] < now else None


def _dir_key(root: str, fan: str) -> list[int] | None:
    """What identifies the state of fan-out directory ``fan``: inode and ctime."""
    try:
        st = os.stat(f"{root}/{fan}")
    except OSError:
        return None
    return [st.st_ino, st.st_ctime_ns]


def _read_stamp(path: str) -> dict[str, list[int] | None] | None:
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
