"""How the ``local`` content store writes objects: ingesting files, storing streams.

The writing half of :class:`~lockgate.builtin_plugins.local_store.LocalContentStore`
(its base class, :class:`ObjectWriter`), and the hot path of staging (every file of a
stage is ingested here). An object is written to a temporary file in ``objects/tmp/``
named after its writer's pid, then renamed into place under its digest
(``objects/ab/cdef…``) and is read-only, so an object is either complete or absent; a
temporary file a killed writer left is removed by the next writer. Ingesting a file
hashes exactly the bytes it stores and checks the file did not change while it was read
(the stat before and after must agree). Small files are read in one call and hashed in
memory; from ``COPY_IN_KERNEL`` up the kernel copies them (``copy_file_range``, a
reflink where it can) and the stored copy is hashed. Nothing here flushes: with
durability on, a new object's write-back is only started (``sync_file_range``), and the
store flushes the file system once (:meth:`LocalContentStore.sync`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import re
import stat
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.plugin import (
    ConflictError,
    FileStat,
    InputError,
    Readable,
    digest_bytes,
    failpoint,
    hash_into,
    new_hasher,
)

if TYPE_CHECKING:
    from lockgate.builtin_plugins.local_journal import Journal

__all__ = ["BUFFER", "ObjectWriter"]

BUFFER = 1 << 20
COPY_IN_KERNEL = 256 << 10
"""Files from this size up are copied by the kernel, then the stored copy is hashed."""
HASH_THREADS_FROM = 64 << 20
WRITEBACK_MIN = 256 << 10
"""Objects from this size up have their write-back started as soon as they are written."""
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_serial = itertools.count()
_INGESTED_KEPT = 1_000_000
"""Objects whose stat at publication a store object remembers (see ``_ingested``)."""
DEAD_TEMP_AGE = 60.0
"""Seconds a dead writer's temporary object stays before the next writer removes it."""


class ObjectWriter:
    """Objects named by their digest under ``root``, written as described above (the base
    class of :class:`~lockgate.builtin_plugins.local_store.LocalContentStore`, whose
    ``__init__`` sets the attributes below)."""

    tmp: Path
    fsync: bool
    deferred: bool
    """Flushing deferred to the next promotion (``flush: promote``), with the journal."""
    _dirty: bool
    _journal: Journal
    _root_s: str
    _tmp_s: str
    _fanout: set[str]
    _tmp_ready: bool
    _ingested: dict[str, list[int]]
    """The stat (inode, size, mtime, ctime) of each object this process published, taken
    right after it was renamed into place: the bytes it had then are those just hashed
    (see :meth:`LocalContentStore.mark_complete`, which keeps them as a ledger)."""

    # ------------------------------------------------------------------ paths

    def object_path(self, digest: str) -> Path:
        """Where object ``digest`` lives (it may not exist)."""
        return Path(self._object_str(digest))

    def _object_str(self, digest: str) -> str:
        if not _HEX64.fullmatch(digest):
            raise InputError(f"{digest!r} is not a content digest (64 lowercase hex characters)")
        return f"{self._root_s}/{digest[:2]}/{digest[2:]}"

    def _ensure_dirs(self) -> None:
        if not self._tmp_ready:
            self.tmp.mkdir(parents=True, exist_ok=True)
            self._tmp_ready = True
            self._sweep_dead_temps()

    def _sweep_dead_temps(self) -> None:
        """Remove temporary objects a killed writer left (``kill -9`` runs no cleanup).

        A temporary file is named after its writer's pid; it is removed when that process
        no longer exists and the file has not changed for ``DEAD_TEMP_AGE`` seconds (a
        process of another pid namespace sharing the store shows as absent: the age
        keeps its file in progress safe). ``gc`` also removes any older than its grace.
        """
        now = time.time()
        try:
            entries = os.scandir(self._tmp_s)
        except OSError:
            return
        with entries:
            for entry in entries:
                parts = entry.name.split("-")
                if len(parts) < 2 or parts[0] != "obj" or not parts[1].isdigit():
                    continue
                pid = int(parts[1])
                if pid == os.getpid() or _alive(pid):
                    continue
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime >= DEAD_TEMP_AGE:
                        os.unlink(entry.path)

    # ------------------------------------------------------------------ writing

    def ingest(self, path: str | Path, expected: FileStat) -> tuple[str, int]:
        self._ensure_dirs()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC)
        except OSError as exc:
            raise _changed(path, f"cannot be read ({exc.strerror})") from exc
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode) or FileStat.of(before) != expected:
                raise _changed(path, "changed between scan and read")
            if before.st_size < COPY_IN_KERNEL:
                data = os.read(fd, before.st_size + 1)
                if len(data) != before.st_size:
                    raise _changed(path, "changed size while being read")
                self._check_unchanged(fd, path, before)
                return self.put_bytes(data), len(data)
            return self._ingest_stream(fd, path, before)
        finally:
            os.close(fd)

    def _ingest_stream(self, fd: int, path: str | Path, before: os.stat_result) -> tuple[str, int]:
        # Large files: the kernel copies (copy_file_range: no trip through Python, and a
        # reflink where the file system can), then the *stored copy* is hashed through
        # mmap (a window at a time: memory stays flat) by BLAKE3's own threads. So the
        # digest describes exactly the bytes stored, and the stat check around the copy
        # catches a writer (a file that grew or shrank changed its size).
        tmp_fd, tmp_path = self._new_temp()
        published = False
        try:
            size = _copy_fd(fd, tmp_fd, before.st_size)
            failpoint("store.after_copy")
            if size != before.st_size:
                raise _changed(path, "changed size while being read")
            if self.fsync and not self.deferred:
                _start_writeback(tmp_fd)
            self._check_unchanged(fd, path, before)
            # BLAKE3's own threads only for very large files: staging already stores
            # large files on several threads, and more threads per file measured slower.
            hasher = new_hasher(threads=size >= HASH_THREADS_FROM)
            hash_into(hasher, tmp_path, size)
            digest = str(hasher.hexdigest())
            if not os.path.exists(self._object_str(digest)):
                self._publish(tmp_fd, tmp_path, digest)
                published = True
        finally:
            _close_temp(tmp_fd, tmp_path, published)
        return digest, size

    def put(self, source: Readable) -> str:
        """Stream ``source`` into a temporary object, hashing as it goes, then publish
        it under its digest (never the whole object in memory)."""
        self._ensure_dirs()
        tmp_fd, tmp_path = self._new_temp()
        published = False
        hasher = new_hasher()
        try:
            size = 0
            while chunk := source.read(BUFFER):
                hasher.update(chunk)
                _write_all(tmp_fd, memoryview(chunk))
                size += len(chunk)
            digest = str(hasher.hexdigest())
            if self.fsync and not self.deferred and size >= WRITEBACK_MIN:
                _start_writeback(tmp_fd)
            if not os.path.exists(self._object_str(digest)):
                self._publish(tmp_fd, tmp_path, digest)
                published = True
        finally:
            _close_temp(tmp_fd, tmp_path, published)
        return digest

    def put_bytes(self, data: bytes) -> str:
        """:meth:`put` for bytes already in memory (one write, no chunking)."""
        digest = digest_bytes(data)
        if os.path.exists(self._object_str(digest)):
            return digest
        self._ensure_dirs()
        tmp_fd, tmp_path = self._new_temp()
        published = False
        try:
            _write_all(tmp_fd, memoryview(data))
            if self.fsync and not self.deferred and len(data) >= WRITEBACK_MIN:
                _start_writeback(tmp_fd)
            self._publish(tmp_fd, tmp_path, digest)
            published = True
        finally:
            _close_temp(tmp_fd, tmp_path, published)
        return digest

    @staticmethod
    def _check_unchanged(fd: int, path: str | Path, before: os.stat_result) -> None:
        after = os.fstat(fd)
        if FileStat.of(after) != FileStat.of(before):
            raise _changed(path, "was modified while being staged")

    def _new_temp(self) -> tuple[int, str]:
        """A new temporary file in ``tmp/``: its descriptor (for writing) and its path."""
        name = f"{self._tmp_s}/obj-{os.getpid()}-{threading.get_ident()}-{next(_serial)}"
        # Created read-only: the mode applies to later opens, this descriptor can write.
        return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o444), name

    def _publish(self, fd: int, tmp_path: str, digest: str) -> None:
        final = self._object_str(digest)
        fanout = digest[:2]
        if fanout not in self._fanout:
            os.makedirs(f"{self._root_s}/{fanout}", exist_ok=True)
            self._fanout.add(fanout)
        if self.deferred:
            self._journal.cover()
        os.replace(tmp_path, final)
        self._dirty = True
        # After the rename (which moves the ctime): the stat the bytes just hashed have.
        st = os.fstat(fd)
        if len(self._ingested) >= _INGESTED_KEPT:
            self._ingested.clear()  # only time is lost: those objects are hashed at layout
        self._ingested[digest] = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _copy_fd(src: int, dst: int, expected: int) -> int:
    """Copy ``src`` to ``dst`` in the kernel where possible; return the bytes copied.

    Copies ``expected`` bytes, or fewer if the file ends first (it shrank). A file that
    grew is noticed by the caller's stat check after the copy, not by reading on.
    """
    copied = 0
    try:
        while copied < expected:
            n = os.copy_file_range(src, dst, expected - copied)
            if n == 0:
                return copied
            copied += n
        return copied
    except OSError as exc:
        if copied or exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    # No copy_file_range between these file systems: copy through a buffer.
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    while copied < expected and (n := os.readv(src, [buf])):
        _write_all(dst, view[: min(n, expected - copied)])
        copied += n
    return copied


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine, in this pid namespace)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _close_temp(fd: int, path: str, published: bool) -> None:
    """Close a temporary file; remove it unless it was published (renamed into place)."""
    os.close(fd)
    if not published:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _changed(path: str | Path, what: str) -> ConflictError:
    return ConflictError(f"{path}: {what}; nothing was stored, stage again once edits settle")


@functools.cache
def _sync_file_range() -> Any:
    """libc's ``sync_file_range`` (Linux), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    found = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if found is not None:
        found.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return found


def _start_writeback(fd: int) -> None:
    """Start writing a new object's pages to disk now, while the next files are read.

    Only a hint (its result is not checked): durability comes from :meth:`sync`, which
    then waits for little. Measured with 1 GiB of 1 MiB objects: the final flush went
    from about 600 ms to about 5 ms, the whole durable ingest from 1.5 s to 1.2 s.
    """
    call = _sync_file_range()
    if call is not None:
        call(fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE
