"""What the kernel does with a content store whatever capabilities it has.

Each helper uses the store's optional capability when it offers one (found by attribute,
see :mod:`lockgate.contracts`) and does the same job through the streamed contract
(``put``, ``open``) otherwise, so a store needs no local disk.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lockgate.contracts.content import CHUNK, ContentStore, LinkMode, Readable
from lockgate.contracts.manifest import Manifest, check_paths, digest_bytes, new_hasher
from lockgate.contracts.source import FileStat
from lockgate.errors import ConflictError, NotFoundError

__all__ = ["ingest_file", "materialize_files", "put_counted", "read_object"]


def read_object(store: ContentStore, digest: str) -> bytes:
    """An object's whole bytes, checked against ``digest`` (for small objects: a
    manifest, a ``component.yaml``; stream big ones with :meth:`ContentStore.open`).

    :class:`~lockgate.errors.ConflictError` when the bytes no longer match.
    """
    with store.open(digest) as stream:
        data = stream.read()
    if digest_bytes(data) != digest:
        raise ConflictError(
            f"object {digest[:12]} is corrupt (its bytes no longer match their digest); "
            "run 'lockgate verify'"
        )
    return data


def ingest_file(store: ContentStore, path: str | Path, expected: FileStat) -> tuple[str, int]:
    """Store the file at ``path`` as scanned (``expected``); return (digest, size).

    Through the store's :class:`FileIngest` capability when it has one; otherwise the
    file is opened here (never following a symlink) and streamed to :meth:`ContentStore.put`,
    with the same promise: the file must be as ``expected`` before and after the read,
    else :class:`~lockgate.errors.ConflictError`, and an object stored only for this
    call is deleted again.
    """
    ingest = getattr(store, "ingest", None)
    if callable(ingest):
        found: tuple[str, int] = ingest(path, expected)
        return found
    import stat as stat_mod

    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _changed(path, f"cannot be read ({exc.strerror})") from exc
    with os.fdopen(fd, "rb", buffering=0) as fh:
        before = os.fstat(fd)
        if not stat_mod.S_ISREG(before.st_mode) or FileStat.of(before) != expected:
            raise _changed(path, "changed between scan and read")
        counted = _Counting(fh)
        digest = store.put(counted)
        if FileStat.of(os.fstat(fd)) != expected or counted.size != expected.size:
            with contextlib.suppress(Exception):
                store.delete(digest)  # only this call's: a digest of bytes never scanned
            raise _changed(path, "was modified while being staged")
    return digest, counted.size


def put_counted(store: ContentStore, source: Readable) -> tuple[str, int]:
    """``store.put(source)``, and how many bytes it read: (digest, size)."""
    counted = _Counting(source)
    return store.put(counted), counted.size


class _Counting:
    """A readable that counts the bytes read through it."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(CHUNK if size < 0 else size)
        self.size += len(data)
        return data


def _changed(path: str | Path, what: str) -> ConflictError:
    return ConflictError(f"{path}: {what}; nothing was stored, stage again once edits settle")


def materialize_files(
    store: ContentStore, manifest: Manifest, dest: Path, link: LinkMode | None = None
) -> None:
    """Write the revision ``manifest`` into the new directory ``dest``: through the
    store's :class:`Materializer` capability when it has one, else file by file from
    :meth:`ContentStore.open` (streamed, each file read-only, executables 0o555)."""
    found = getattr(store, "materialize", None)
    if callable(found):
        found(manifest, dest, link)
        return
    check_paths(manifest)
    dest.mkdir(parents=True, exist_ok=False)
    for entry in manifest.entries:
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "symlink":
            target.symlink_to(str(entry.target))
            continue
        hasher = new_hasher()
        try:
            stream = store.open(entry.digest)
        except NotFoundError as exc:
            raise NotFoundError(
                f"object {entry.digest[:12]} for {entry.path} is missing; run 'lockgate verify'"
            ) from exc
        with stream, open(target, "xb") as out:
            while chunk := stream.read(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
        if hasher.hexdigest() != entry.digest:
            raise ConflictError(
                f"object {entry.digest[:12]} for {entry.path} is corrupt (its bytes no longer "
                "match their digest); run 'lockgate verify'"
            )
        target.chmod(0o555 if entry.executable else 0o444)
