"""The in-memory content store: objects in a dict, the twin of the builtin ``local`` store.

It keeps the whole :class:`~lockgate.core.contracts.ContentStore` contract (the suite in
:class:`~lockgate.testing.ContentStoreConformance` runs against it) and offers the
``CompletenessCheck`` capability; nothing survives the process, so ``sync`` has nothing to
do and nothing is ever ``lost``.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.core.contracts import ContentStore, FileStat, LinkMode
from lockgate.core.manifest import Manifest, check_paths, digest_bytes
from lockgate.errors import ConflictError, LockgateError, NotFoundError

__all__ = ["MemoryContentStore"]

_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class MemoryContentStore:
    """Content-addressed bytes held in process memory, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[bytes, float]] = {}

    # ------------------------------------------------------------------ writing

    def ingest(self, path: str | Path, expected: FileStat) -> tuple[str, int]:
        try:
            fd = os.open(path, _FLAGS)
        except OSError as exc:
            raise _changed(path, f"cannot be read ({exc.strerror})") from exc
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode) or FileStat.of(before) != expected:
                raise _changed(path, "changed between scan and read")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            data = b"".join(chunks)
            # The bytes read are stored only if the file stood still while they were read.
            if FileStat.of(os.fstat(fd)) != expected or len(data) != expected.size:
                raise _changed(path, "was modified while being staged")
        finally:
            os.close(fd)
        return self.put_bytes(data), len(data)

    def put_bytes(self, data: bytes) -> str:
        digest = digest_bytes(data)
        with self._lock:
            self._objects.setdefault(digest, (bytes(data), time.time()))
        return digest

    def put_manifest(self, manifest: Manifest) -> str:
        return self.put_bytes(manifest.canonical())

    def remove(self, digest: str) -> None:
        with self._lock:
            self._objects.pop(digest, None)

    def sync(self) -> None:
        """Nothing to make durable: the store lives and dies with the process."""

    def lost(self) -> frozenset[str]:
        return frozenset()

    # ------------------------------------------------------------------ reading

    def has(self, digest: str) -> bool:
        return digest in self._objects

    def read_bytes(self, digest: str) -> bytes:
        found = self._objects.get(digest)
        if found is None:
            raise NotFoundError(f"object {digest[:12]} is missing from the memory content store")
        data = found[0]
        if digest_bytes(data) != digest:
            raise ConflictError(
                f"object {digest[:12]} in the memory content store is corrupt (its bytes no "
                "longer match their digest); run 'lockgate verify'"
            )
        return data

    def get_manifest(self, revision: str) -> Manifest:
        try:
            data = self.read_bytes(revision)
        except NotFoundError as exc:
            raise NotFoundError(f"revision {revision[:12]} is not in the content store") from exc
        return Manifest.from_bytes(data, where=f"revision {revision[:12]}")

    def verify(self, digest: str) -> bool:
        found = self._objects.get(digest)
        return found is not None and digest_bytes(found[0]) == digest

    def objects(self) -> Iterator[tuple[str, float]]:
        with self._lock:
            snapshot = [(digest, when) for digest, (_, when) in self._objects.items()]
        yield from snapshot

    def missing_objects(self, revision: str) -> frozenset[str]:
        """``CompletenessCheck``: what ``revision`` needs that is not here."""
        try:
            manifest = self.get_manifest(revision)
        except LockgateError:
            return frozenset({revision})
        needed = {e.digest for e in manifest.entries if e.kind != "symlink"}
        return frozenset(d for d in needed if d not in self._objects)

    # ------------------------------------------------------------------ materializing

    def materialize(self, manifest: Manifest, dest: Path, link: LinkMode = "auto") -> None:
        """Write the tree as copies (there is nothing to link to, whatever ``link`` asks)."""
        check_paths(manifest)
        dest.mkdir(parents=True, exist_ok=False)
        for entry in manifest.entries:
            target = dest / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.kind == "symlink":
                target.symlink_to(str(entry.target))
                continue
            try:
                data = self.read_bytes(entry.digest)
            except NotFoundError as exc:
                raise NotFoundError(
                    f"object {entry.digest[:12]} for {entry.path} is missing; run 'lockgate verify'"
                ) from exc
            target.write_bytes(data)
            target.chmod(0o555 if entry.executable else 0o444)


def _changed(path: str | Path, what: str) -> ConflictError:
    return ConflictError(f"{path}: {what}; nothing was stored, stage again once edits settle")


if TYPE_CHECKING:  # mypy checks the twin against the role's protocol
    _content_store: ContentStore = MemoryContentStore()
