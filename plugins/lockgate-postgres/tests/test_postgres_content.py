"""The content store streams: an object far larger than a chunk goes in and comes out
with memory bounded by a few chunks, stored once however often it is put."""

from __future__ import annotations

import hashlib
import tracemalloc

from lockgate_postgres import PostgresContentStore

from lockgate.plugin import new_hasher

from .postgres_testkit import open_database

MIB = 1 << 20
SIZE = 48 * MIB


class Generated:
    """A readable of ``size`` pseudo-random bytes, made as they are read."""

    def __init__(self, size: int) -> None:
        self.left, self.counter = size, 0

    def read(self, size: int = -1) -> bytes:
        size = min(self.left if size < 0 else size, self.left, MIB)
        block = b""
        while len(block) < size:
            self.counter += 1
            block += hashlib.blake2b(self.counter.to_bytes(8, "big")).digest() * 64
        self.left -= size
        return block[:size]


def _expected() -> str:
    hasher, source = new_hasher(), Generated(SIZE)
    while chunk := source.read(MIB):
        hasher.update(chunk)
    return str(hasher.hexdigest())


def test_a_large_object_streams_in_and_out_in_bounded_memory(pg_dsn: str, project_key: str) -> None:
    store = PostgresContentStore(open_database(pg_dsn, project_key, chunk_size=MIB))
    try:
        tracemalloc.start()
        digest = store.put(Generated(SIZE))
        _, peak_put = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        hasher, total = new_hasher(), 0
        with store.open(digest) as stream:
            while chunk := stream.read(MIB):
                hasher.update(chunk)
                total += len(chunk)
        _, peak_open = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert digest == _expected() and str(hasher.hexdigest()) == digest and total == SIZE
        assert peak_put < 8 * MIB and peak_open < 8 * MIB, (peak_put, peak_open)
        assert store.put(Generated(SIZE)) == digest  # stored once
        with store.db.conn() as conn:
            row = conn.execute(
                "SELECT count(*) AS n, sum(length(data)) AS bytes FROM chunks"
            ).fetchone()
        assert row == {"n": SIZE // MIB, "bytes": SIZE}
        assert store.verify(digest)
    finally:
        store.close()
