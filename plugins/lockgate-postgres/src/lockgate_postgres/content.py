"""Content store ``postgres``: objects stored once per project by digest, in chunks.

An object is a row of ``objects`` (digest, size, chunk count, when stored) naming a
*blob*, whose bytes are rows of ``chunks`` (``blob``, ``n``, at most
``plugins.postgres.chunk_size`` bytes each, stored out of line and uncompressed: the
bytes are mostly compressed already). :meth:`PostgresContentStore.put` streams: it reads
one chunk, hashes it and inserts it, so a 1 GiB file is never in memory whole; the
digest is known only at the end, so the chunks go under a new blob id, and the object
row is inserted last, in the same transaction. When another put stored the same digest
first, the object row conflicts and the new blob is rolled back with the transaction:
every object is stored once, and a failure (or a lost connection) leaves no partial
object. :meth:`PostgresContentStore.open` returns a stream that fetches one chunk at a
time.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from lockgate.plugin import (
    ContentStore,
    LockgateError,
    Manifest,
    NotFoundError,
    Readable,
    new_hasher,
    read_object,
)
from lockgate_postgres.db import Database

__all__ = ["PostgresContentStore"]

_PAGE = 10_000
_MANIFESTS = 256  # manifests kept in memory (the oldest goes first)


class PostgresContentStore:
    """Content-addressed bytes in PostgreSQL, for one project."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.chunk_size = db.settings.chunk_size
        self._manifests: dict[str, Manifest] = {}  # see get_manifest

    # ------------------------------------------------------------------ writing

    def put(self, source: Readable) -> str:
        hasher = new_hasher()
        blob = uuid.uuid4().hex
        size = count = 0
        with self.db.transaction() as conn:
            while True:
                chunk = _read_full(source, self.chunk_size)
                if not chunk:
                    break
                hasher.update(chunk)
                conn.execute(
                    "INSERT INTO chunks (blob, n, data) VALUES (%s, %s, %s)", (blob, count, chunk)
                )
                size += len(chunk)
                count += 1
            digest = str(hasher.hexdigest())
            cur = conn.execute(
                "INSERT INTO objects (digest, blob, size, chunks, stored_at) VALUES "
                "(%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (digest, blob, size, count, time.time()),
            )
            if cur.rowcount != 1 and count:
                conn.execute("DELETE FROM chunks WHERE blob = %s", (blob,))  # stored already
        return digest

    def put_manifest(self, manifest: Manifest) -> str:
        """Stored like any object; committed, so durable, when this returns."""
        return self.put(io.BytesIO(manifest.canonical()))

    def delete(self, digest: str) -> None:
        self._manifests.pop(digest, None)
        with self.db.transaction() as conn:
            row = conn.execute(
                "DELETE FROM objects WHERE digest = %s RETURNING blob", (digest,)
            ).fetchone()
            if row is not None:
                conn.execute("DELETE FROM chunks WHERE blob = %s", (row["blob"],))

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ reading

    def has(self, digest: str) -> bool:
        with self.db.conn() as conn:
            found = conn.execute("SELECT 1 FROM objects WHERE digest = %s", (digest,)).fetchone()
        return found is not None

    def open(self, digest: str) -> BinaryIO:
        """The object's bytes as a stream; its first chunk comes with the object's row
        (one round trip for an object of one chunk)."""
        with self.db.conn() as conn:
            row = conn.execute(
                "SELECT o.blob, o.chunks, c.data FROM objects o LEFT JOIN chunks c "
                "ON c.project = o.project AND c.blob = o.blob AND c.n = 0 WHERE o.digest = %s",
                (digest,),
            ).fetchone()
        if row is None:
            raise NotFoundError(
                f"object {digest[:12]} is missing from the content store ({self.db.where}, "
                f"project {self.db.project!r})"
            )
        stream = _ChunkStream(self.db, row["blob"], int(row["chunks"]))
        if row["data"] is not None:
            stream.preload(bytes(row["data"]))
        return io.BufferedReader(stream, buffer_size=self.chunk_size)

    def get_manifest(self, revision: str) -> Manifest:
        """The manifest of ``revision``, read once per process: it is named by the digest
        of its bytes, so what was read and verified once cannot change (``delete``
        forgets it)."""
        cached = self._manifests.get(revision)
        if cached is not None:
            return cached
        try:
            data = read_object(self, revision)
        except NotFoundError as exc:
            raise NotFoundError(f"revision {revision[:12]} is not in the content store") from exc
        manifest = Manifest.from_bytes(data, where=f"revision {revision[:12]}")
        if len(self._manifests) >= _MANIFESTS:
            self._manifests.pop(next(iter(self._manifests)))
        self._manifests[revision] = manifest
        return manifest

    def verify(self, digest: str) -> bool:
        """Hash the stored chunks, one at a time."""
        try:
            stream = self.open(digest)
        except NotFoundError:
            return False
        hasher = new_hasher()
        with stream:
            while chunk := stream.read(self.chunk_size):
                hasher.update(chunk)
        return str(hasher.hexdigest()) == digest

    def objects(self) -> Iterator[tuple[str, float]]:
        """Page by page, in digest order (no connection is held between pages)."""
        after = ""
        while True:
            with self.db.conn() as conn:
                rows = conn.execute(
                    "SELECT digest, stored_at FROM objects WHERE digest > %s ORDER BY digest "
                    f"LIMIT {_PAGE}",
                    (after,),
                ).fetchall()
            for row in rows:
                yield row["digest"], float(row["stored_at"])
            if len(rows) < _PAGE:
                return
            after = rows[-1]["digest"]

    def missing_objects(self, revision: str) -> frozenset[str]:
        """``CompletenessCheck``: the objects ``revision`` needs that are not stored,
        asked in one query."""
        try:
            manifest = self.get_manifest(revision)
        except LockgateError:
            return frozenset({revision})
        needed = sorted({e.digest for e in manifest.entries if e.kind != "symlink"})
        with self.db.conn() as conn:
            rows = conn.execute(
                "SELECT digest FROM objects WHERE digest = ANY(%s)", (needed,)
            ).fetchall()
        return frozenset(needed) - {r["digest"] for r in rows}


def _read_full(source: Readable, size: int) -> bytes:
    """Up to ``size`` bytes: a source may return less than asked before its end."""
    first = source.read(size)
    if not first or len(first) >= size:
        return bytes(first)
    parts, got = [bytes(first)], len(first)
    while got < size:
        more = source.read(size - got)
        if not more:
            break
        parts.append(bytes(more))
        got += len(more)
    return b"".join(parts)


class _ChunkStream(io.RawIOBase):
    """The bytes of one blob, fetched a chunk at a time as they are read."""

    def __init__(self, db: Database, blob: str, chunks: int) -> None:
        self._db, self._blob, self._chunks = db, blob, chunks
        self._next = 0
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def preload(self, first: bytes) -> None:
        """The first chunk, read with the object's row."""
        if self._next == 0 and self._chunks:
            self._buffer, self._next = memoryview(first), 1

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._buffer:
            if self._next >= self._chunks:
                return 0
            with self._db.conn() as conn:
                row = conn.execute(
                    "SELECT data FROM chunks WHERE blob = %s AND n = %s", (self._blob, self._next)
                ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"chunk {self._next} of a stored object is missing from {self._db.where}; "
                    "the object was deleted while it was read, or the database was edited"
                )
            self._buffer = memoryview(bytes(row["data"]))
            self._next += 1
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


if TYPE_CHECKING:  # mypy checks the store against the role's protocol
    _store: ContentStore = PostgresContentStore(Database.__new__(Database))
