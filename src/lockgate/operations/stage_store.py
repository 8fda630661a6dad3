"""Staging's store half: the files a staging cannot vouch for, hashed or stored.

:func:`store_files` ingests them into the content store (large files on a small crew of
threads, the rest in the calling thread meanwhile) and :func:`hash_files` only hashes
them, for a dry run or a manifest of the workspace as it is. Both read a local source's
files by path and any other source's through ``open_file``; a file that changed between
the scan and the read is a :class:`~lockgate.errors.ConflictError` to retry.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection
from typing import BinaryIO

from lockgate.contracts.content import CHUNK, ContentStore, Readable, store_lost
from lockgate.contracts.manifest import new_hasher
from lockgate.contracts.source import Component, ScannedFile, ScanResult, Source, source_is_local
from lockgate.core.content import ingest_file, put_counted
from lockgate.core.session import Session
from lockgate.errors import ConflictError, NotFoundError

__all__ = ["LARGE_FILE", "Progress", "hash_files", "store_files"]

LARGE_FILE = 256 << 10
"""Files from this size up are stored on a pool of threads (see :func:`store_files`)."""

Progress = Callable[[int, int, int, int], None]
"""``progress(files_done, files_total, bytes_done, bytes_total)``, called as files are
hashed and stored (about every 0.1 s while large files are stored on threads)."""


def store_files(
    session: Session,
    component: Component,
    scan: ScanResult,
    todo: list[ScannedFile],
    kept: Collection[str],
    progress: Progress | None,
) -> dict[str, str]:
    """Ingest ``todo`` (and cached files whose objects are gone); return digests learnt.
    ``kept``: the digests of the latest revision (their objects are known to be kept)."""
    content = session.content()
    todo = todo + _objects_gone(content, scan, kept)
    digests: dict[str, str] = {}
    if not todo:
        return digests
    total, done = len(todo), 0
    total_bytes, done_bytes = sum(f.stat.size for f in todo), 0
    source = session.source()
    if source_is_local(source):
        # Files by path: the store's FileIngest (or the kernel's stat-checked read).
        prefix = f"{component.path}/"

        def ingest(f: ScannedFile) -> str:
            return ingest_file(content, prefix + f.path, f.stat)[0]

    else:

        def ingest(f: ScannedFile) -> str:
            return _put_scanned(content, source, component, f)

    pooled, inline, size = _share_out(todo, session.config.staging.workers)
    crew = _Crew(ingest, pooled)
    try:
        crew.start(min(size, len(pooled)))
        for f in inline:
            digests[f.path] = ingest(f)
            done += 1
            done_bytes += f.stat.size
            if progress is not None:
                progress(done + crew.done, total, done_bytes + crew.done_bytes, total_bytes)
        while not crew.wait(0.1 if progress is not None else None):
            if progress is not None:
                progress(done + crew.done, total, done_bytes + crew.done_bytes, total_bytes)
    finally:
        crew.stop()
    digests.update(crew.results)
    if progress is not None:
        progress(total, total, total_bytes, total_bytes)
    return digests


def _objects_gone(
    content: ContentStore, scan: ScanResult, latest: Collection[str]
) -> list[ScannedFile]:
    """Files with a cached digest whose object the store no longer has."""
    # A cached digest needs its object. Objects of the latest revision are kept (gc never
    # removes what a recorded revision needs), so only other cached digests are checked:
    # one edit in a large component costs no stat per unchanged file.
    kept = set(latest) | store_lost(content)  # lost ones are already in ``todo``
    return [
        f
        for f in scan.files
        if f.digest is not None
        and f.kind != "symlink"
        and f.digest not in kept
        and not content.has(f.digest)
    ]


def _share_out(
    todo: list[ScannedFile], workers: int
) -> tuple[list[ScannedFile], list[ScannedFile], int]:
    """``(pooled, inline, threads)``: the files for the crew, those for this thread, and
    how many threads the crew may have."""
    # Threads pay by bytes, not by files. Measured on this project's benchmark machine:
    # for many small files a pool is slower than one thread (a hand-off between threads
    # costs more than the few system calls per file), while large files gain from
    # threads overlapping their time in the kernel (reads, writes, write-back; BLAKE3
    # releases the GIL) — 1 GiB of 1 MiB files: 1.34 s in one thread, 0.77 s in three.
    # So by default (staging.workers 0) files from LARGE_FILE up go to one more thread
    # than there are cores (at most 4) and the rest are stored in this thread
    # meanwhile; staging.workers N > 1 puts every file on N threads, 1 none.
    if workers == 0:
        pooled = [f for f in todo if f.stat.size >= LARGE_FILE]
        inline = [f for f in todo if f.stat.size < LARGE_FILE] if pooled else todo
        size = min(4, (os.cpu_count() or 1) + 1)
    elif workers > 1 and len(todo) >= 64:
        pooled, inline, size = todo, [], workers
    else:
        pooled, inline, size = [], todo, 1
    if len(pooled) <= 1:
        pooled, inline = [], pooled + inline
    return pooled, inline, size


def hash_files(
    source: Source, component: Component, todo: list[ScannedFile], progress: Progress | None
) -> dict[str, str]:
    """A dry run's digests: hashed where they are, nothing stored."""
    digests: dict[str, str] = {}
    total_bytes, done_bytes = sum(f.stat.size for f in todo), 0
    local = source_is_local(source)
    for f in todo:
        if local:
            digests[f.path] = _hash_file(f"{component.path}/{f.path}")
        else:
            with _opened(source, component, f.path) as stream:
                digests[f.path] = _hash_stream(stream)
        done_bytes += f.stat.size
        if progress is not None:
            progress(len(digests), len(todo), done_bytes, total_bytes)
    return digests


def _hash_file(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return _hash_stream(fh)
    except OSError as exc:
        raise ConflictError(f"{path}: cannot be read ({exc.strerror}); try again") from exc


def _hash_stream(stream: Readable) -> str:
    hasher = new_hasher()
    while chunk := stream.read(CHUNK):
        hasher.update(chunk)
    return str(hasher.hexdigest())


def _opened(source: Source, component: Component, path: str) -> BinaryIO:
    """``source.open_file``, a file gone since the scan being a conflict to retry."""
    try:
        return source.open_file(component, path)
    except NotFoundError as exc:
        raise ConflictError(
            f"{component.ref}: {path} changed between scan and read ({exc.message}); "
            "stage again once edits settle"
        ) from exc


def _put_scanned(
    content: ContentStore, source: Source, component: Component, f: ScannedFile
) -> str:
    """Store file ``f`` of a source whose files are not on this machine: streamed from
    ``open_file`` to ``put``; a file whose size is not what the scan saw is a conflict
    (its object, stored only for this call, is deleted again)."""
    with _opened(source, component, f.path) as stream:
        digest, size = put_counted(content, stream)
    if size != f.stat.size:
        with contextlib.suppress(Exception):
            content.delete(digest)
        raise ConflictError(
            f"{component.ref}: {f.path} changed while being staged ({size} bytes, "
            f"{f.stat.size} scanned); nothing was stored, stage again once edits settle"
        )
    return digest


class _Crew:
    """Threads that store files from a shared list until it is empty (or one fails).

    Each thread takes the next file under a lock and keeps its results to itself: no
    per-file future, wake-up or hand-off, which measured 25 ms for 1,000 files of 1 MiB.
    The first error stops the others after their current file and is raised by
    :meth:`wait` in the calling thread. Waiting is on a condition, never on
    ``Thread.join``: a join that Ctrl-C interrupts can mark a live thread as ended
    (Python 3.11), and the process would then exit under a thread still writing. For
    the same reason :meth:`stop` waits for every thread that has begun, even when an
    interrupt came while :meth:`start` was still starting them.
    """

    def __init__(self, store: Callable[[ScannedFile], str], files: list[ScannedFile]) -> None:
        import threading

        self.results: dict[str, str] = {}
        self.done = 0
        self.done_bytes = 0
        self._store = store
        self._next = iter(files)
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._stopped = False
        self._active = 0  # threads that began taking files and have not ended
        self._unfinished = 0  # threads started and not ended

    def start(self, n: int) -> None:
        import threading

        for _ in range(n):
            with self._cond:
                self._unfinished += 1
            threading.Thread(target=self._run, name="lockgate-store").start()

    def _run(self) -> None:
        with self._cond:
            if self._stopped:
                self._unfinished -= 1
                self._cond.notify_all()
                return
            self._active += 1
        mine: dict[str, str] = {}
        try:
            while True:
                with self._cond:
                    f = None if self._stopped else next(self._next, None)
                if f is None:
                    return
                mine[f.path] = self._store(f)
                # Progress figures: an increment lost to a race between threads is harmless.
                self.done += 1
                self.done_bytes += f.stat.size
        except BaseException as exc:
            with self._cond:
                if self._error is None:
                    self._error = exc
                self._stopped = True
        finally:
            with self._cond:
                self.results.update(mine)
                self._active -= 1
                self._unfinished -= 1
                self._cond.notify_all()

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` s for every thread (None: as long as it takes); True when
        all are done. Raises the first error a thread met."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._unfinished == 0, timeout):
                return False
        if self._error is not None:
            raise self._error
        return True

    def stop(self) -> None:
        """Let every thread finish its current file and take no other; wait for them."""
        with self._cond:
            self._stopped = True
            self._cond.wait_for(lambda: self._active == 0)
