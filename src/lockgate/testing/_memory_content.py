"""The in-memory content store: objects in a dict, the twin of the builtin ``local`` store.

It keeps the whole :class:`~lockgate.contracts.content.ContentStore` contract (the suite in
:class:`~lockgate.testing.ContentStoreConformance` runs against it) and offers the
``CompletenessCheck`` capability only: it takes files through :meth:`put` (the kernel
opens them), has no directory to lay revisions out in, nothing to flush and nothing that
a restart could take, so it needs no local disk at all.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from lockgate.contracts.content import CHUNK, ContentStore, Readable
from lockgate.contracts.manifest import Manifest, digest_bytes, new_hasher
from lockgate.core.content import read_object
from lockgate.errors import LockgateError, NotFoundError

__all__ = ["MemoryContentStore"]


class MemoryContentStore:
    """Content-addressed bytes held in process memory, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[bytes, float]] = {}

    # ------------------------------------------------------------------ writing

    def put(self, source: Readable) -> str:
        hasher = new_hasher()
        chunks = []
        while chunk := source.read(CHUNK):
            hasher.update(chunk)
            chunks.append(bytes(chunk))
        digest = str(hasher.hexdigest())
        with self._lock:
            self._objects.setdefault(digest, (b"".join(chunks), time.time()))
        return digest

    def put_bytes(self, data: bytes) -> str:
        """:meth:`put` for bytes in memory (what tests use to fill the store)."""
        return self.put(io.BytesIO(data))

    def put_manifest(self, manifest: Manifest) -> str:
        return self.put(io.BytesIO(manifest.canonical()))

    def delete(self, digest: str) -> None:
        with self._lock:
            self._objects.pop(digest, None)

    def close(self) -> None:
        """Nothing to release: the objects stay while the store object lives."""

    # ------------------------------------------------------------------ reading

    def has(self, digest: str) -> bool:
        return digest in self._objects

    def open(self, digest: str) -> BinaryIO:
        found = self._objects.get(digest)
        if found is None:
            raise NotFoundError(f"object {digest[:12]} is missing from the memory content store")
        return io.BytesIO(found[0])

    def read_bytes(self, digest: str) -> bytes:
        """An object's bytes, checked against its digest."""
        return read_object(self, digest)

    def get_manifest(self, revision: str) -> Manifest:
        try:
            data = read_object(self, revision)
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


if TYPE_CHECKING:  # mypy checks the twin against the role's protocol
    _content_store: ContentStore = MemoryContentStore()
