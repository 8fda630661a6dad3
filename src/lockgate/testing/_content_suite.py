"""The conformance suite every content-store plugin must pass.

A content store (the ``ContentStore`` protocol of :mod:`lockgate.contracts`) keeps
immutable bytes named by their digest, and the manifests that name a revision's files.
Use it from a plugin's tests::

    import pytest
    from lockgate.testing import ContentStoreConformance

    class TestMyContentStore(ContentStoreConformance):
        @pytest.fixture
        def content_store(self, tmp_path):
            return MyContentStore(tmp_path / "objects")

The fixture returns a fresh, empty store. The contract streams: ``put`` reads a
readable in chunks, ``open`` returns a stream. Storing a file and laying a revision out as
a directory go through the kernel's ``ingest_file`` and ``materialize_files``, so they are
tested through the store's ``FileIngest`` and ``Materializer`` capabilities when it offers
them, through ``put`` and ``open`` otherwise. The other optional capabilities
(``Flushable``, ``LocalObjectFiles``, ``LostObjectsLedger``, ``CompletenessCheck``,
``DurabilitySwitch``) are tested when the store offers them and skipped otherwise.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path

import pytest

from lockgate.contracts.content import (
    ContentStore,
    store_forget_lost,
    store_lost,
    store_missing_objects,
    store_object_path,
    store_sync,
    store_tmp,
)
from lockgate.contracts.manifest import FileEntry, Manifest, digest_bytes
from lockgate.contracts.source import FileStat
from lockgate.core.content import ingest_file, materialize_files, read_object
from lockgate.errors import ConflictError, LockgateError, NotFoundError

__all__ = ["ContentStoreConformance"]

_HEX = set("0123456789abcdef")
_BIG = 300 << 10  # above the size from which the builtin store copies in the kernel
_ABSENT = digest_bytes(b"never stored by the content store suite")


def _file(path: Path, data: bytes) -> FileStat:
    path.write_bytes(data)
    return FileStat.of(path.stat())


def _put(store: ContentStore, data: bytes) -> str:
    return store.put(io.BytesIO(data))


class _Trickle:
    """A readable that hands out at most ``step`` bytes per read, and counts its reads."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step, self.reads = data, step, 0

    def read(self, size: int = -1, /) -> bytes:
        self.reads += 1
        n = self._step if size < 0 else min(size, self._step)
        chunk, self._data = self._data[:n], self._data[n:]
        return chunk


def _revision(store: ContentStore, files: dict[str, bytes]) -> Manifest:
    """Store ``files`` (plus an executable and a symlink) and return their manifest."""
    entries = [FileEntry(p, "file", len(d), _put(store, d)) for p, d in files.items()]
    entries.append(FileEntry("bin/run", "exec", 9, _put(store, b"#!/bin/sh")))
    target = "../a.txt"
    entries.append(
        FileEntry("bin/link", "symlink", len(target), digest_bytes(target.encode()), target)
    )
    return Manifest(entries)


def _tree(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under ``root``: path -> (kind, bytes or link target)."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                found[rel] = ("symlink", str(full.readlink()))
            else:
                kind = "exec" if full.stat().st_mode & stat.S_IXUSR else "file"
                found[rel] = (kind, full.read_bytes())
    return found


class ContentStoreConformance:
    """The behaviours every :class:`~lockgate.contracts.content.ContentStore` must show.

    Subclass it as ``class TestMyContentStore(ContentStoreConformance)`` and define a
    ``content_store`` fixture returning a fresh, empty store.
    """

    # ------------------------------------------------------------------ the protocol

    def test_it_is_a_content_store(self, content_store: ContentStore) -> None:
        assert isinstance(content_store, ContentStore)

    def test_an_empty_store_holds_nothing(self, content_store: ContentStore) -> None:
        assert list(content_store.objects()) == []
        assert content_store.has(_ABSENT) is False
        assert content_store.verify(_ABSENT) is False
        assert store_lost(content_store) == frozenset()

    # ------------------------------------------------------------------ put, open

    def test_put_returns_the_digest_of_the_bytes(self, content_store: ContentStore) -> None:
        data = b"print('hello')\n"
        digest = _put(content_store, data)
        assert digest == digest_bytes(data)
        assert len(digest) == 64 and set(digest) <= _HEX

    def test_stored_bytes_read_back_exactly(self, content_store: ContentStore) -> None:
        for data in (b"", b"\x00\xff" * 10, os.urandom(_BIG)):
            digest = _put(content_store, data)
            assert content_store.has(digest) is True
            assert read_object(content_store, digest) == data
            assert content_store.verify(digest) is True

    def test_put_is_idempotent(self, content_store: ContentStore) -> None:
        first = _put(content_store, b"same")
        second = _put(content_store, b"same")
        assert first == second
        assert [d for d, _ in content_store.objects()] == [first]
        assert read_object(content_store, first) == b"same"

    def test_put_reads_the_source_in_chunks_to_its_end(self, content_store: ContentStore) -> None:
        data = os.urandom(_BIG)
        source = _Trickle(data, 4096)
        digest = content_store.put(source)
        assert digest == digest_bytes(data)
        assert source.reads > len(data) // 4096  # it read on until b"", not one read
        assert read_object(content_store, digest) == data

    def test_open_streams_the_stored_bytes(self, content_store: ContentStore) -> None:
        data = os.urandom(_BIG)
        digest = _put(content_store, data)
        with content_store.open(digest) as stream:
            first = stream.read(1000)
            rest = stream.read()
        assert first + rest == data and len(first) == 1000

    def test_opening_a_missing_object_is_not_found(self, content_store: ContentStore) -> None:
        with pytest.raises(NotFoundError):
            content_store.open(_ABSENT)

    def test_close_may_be_repeated(self, content_store: ContentStore) -> None:
        content_store.close()
        content_store.close()

    # ------------------------------------------------------------------ missing objects

    def test_has_is_false_for_an_object_never_stored(self, content_store: ContentStore) -> None:
        _put(content_store, b"something else")
        assert content_store.has(_ABSENT) is False

    def test_reading_a_missing_object_is_not_found(self, content_store: ContentStore) -> None:
        _put(content_store, b"something else")
        with pytest.raises(NotFoundError):
            read_object(content_store, _ABSENT)

    def test_verify_is_false_for_a_missing_object(self, content_store: ContentStore) -> None:
        assert content_store.verify(_ABSENT) is False

    def test_a_missing_manifest_is_not_found(self, content_store: ContentStore) -> None:
        with pytest.raises(NotFoundError):
            content_store.get_manifest(_ABSENT)

    def test_an_object_that_is_not_a_manifest_is_a_lockgate_error(
        self, content_store: ContentStore
    ) -> None:
        digest = _put(content_store, b"not a manifest")
        with pytest.raises(LockgateError):
            content_store.get_manifest(digest)

    # ------------------------------------------------------------------ ingest

    @pytest.mark.parametrize("size", [0, 100, _BIG], ids=["empty", "small", "large"])
    def test_ingest_stores_exactly_the_file(
        self, content_store: ContentStore, tmp_path: Path, size: int
    ) -> None:
        data = os.urandom(size)
        expected = _file(tmp_path / "f.bin", data)
        digest, stored = ingest_file(content_store, tmp_path / "f.bin", expected)
        assert (digest, stored) == (digest_bytes(data), size)
        assert read_object(content_store, digest) == data
        digest_again, _ = ingest_file(content_store, str(tmp_path / "f.bin"), expected)
        assert digest_again == digest

    def test_ingest_refuses_a_file_not_as_expected(
        self, content_store: ContentStore, tmp_path: Path
    ) -> None:
        path = tmp_path / "f.txt"
        scanned = _file(path, b"as scanned")
        path.write_bytes(b"edited since the scan, longer")
        with pytest.raises(ConflictError):
            ingest_file(content_store, path, scanned)
        assert not content_store.has(digest_bytes(b"edited since the scan, longer"))
        assert list(content_store.objects()) == []

    def test_ingest_refuses_a_file_that_is_gone(
        self, content_store: ContentStore, tmp_path: Path
    ) -> None:
        path = tmp_path / "f.txt"
        scanned = _file(path, b"gone soon")
        path.unlink()
        with pytest.raises(ConflictError):
            ingest_file(content_store, path, scanned)
        assert list(content_store.objects()) == []

    def test_ingest_from_many_threads(self, content_store: ContentStore, tmp_path: Path) -> None:
        # Staging ingests on several threads at once, duplicates included.
        files = []
        for i in range(24):
            data = f"file {i % 8}\n".encode() * (1 + i % 8)
            path = tmp_path / f"f{i}"
            files.append((path, _file(path, data), data))
        results: dict[int, tuple[str, int]] = {}
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                results[i] = ingest_file(content_store, files[i][0], files[i][1])
            except BaseException as exc:  # reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(files))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for i, (_, _, data) in enumerate(files):
            assert results[i] == (digest_bytes(data), len(data))
            assert read_object(content_store, results[i][0]) == data
        assert {d for d, _ in content_store.objects()} == {r[0] for r in results.values()}

    # ------------------------------------------------------------------ manifests

    def test_put_manifest_returns_the_revision_id(self, content_store: ContentStore) -> None:
        manifest = _revision(content_store, {"a.txt": b"a", "lib/b.py": b"b = 1\n"})
        revision = content_store.put_manifest(manifest)
        assert revision == manifest.revision_id()
        assert content_store.get_manifest(revision) == manifest
        assert content_store.has(revision)
        assert revision in {d for d, _ in content_store.objects()}

    def test_put_manifest_is_idempotent(self, content_store: ContentStore) -> None:
        manifest = _revision(content_store, {"a.txt": b"a"})
        assert content_store.put_manifest(manifest) == content_store.put_manifest(manifest)
        assert content_store.get_manifest(manifest.revision_id()) == manifest

    def test_an_empty_revision_round_trips(self, content_store: ContentStore) -> None:
        revision = content_store.put_manifest(Manifest(()))
        assert content_store.get_manifest(revision) == Manifest(())

    # ------------------------------------------------------------------ materialize

    @pytest.mark.parametrize("link", ["auto", "copy"])
    def test_materialize_writes_the_revision_tree(
        self, content_store: ContentStore, tmp_path: Path, link: str
    ) -> None:
        files = {"a.txt": b"alpha\n", "lib/deep/b.py": b"b = 2\n", "empty": b""}
        manifest = _revision(content_store, files)
        content_store.put_manifest(manifest)
        dest = tmp_path / "release"
        materialize_files(content_store, manifest, dest, link)  # type: ignore[arg-type]
        expected: dict[str, tuple[str, bytes | str]] = {p: ("file", d) for p, d in files.items()}
        expected["bin/run"] = ("exec", b"#!/bin/sh")
        expected["bin/link"] = ("symlink", "../a.txt")
        assert _tree(dest) == expected

    def test_materialize_an_empty_revision_makes_an_empty_directory(
        self, content_store: ContentStore, tmp_path: Path
    ) -> None:
        materialize_files(content_store, Manifest(()), tmp_path / "release")
        assert (tmp_path / "release").is_dir()
        assert _tree(tmp_path / "release") == {}

    def test_materialize_with_a_missing_object_is_not_found(
        self, content_store: ContentStore, tmp_path: Path
    ) -> None:
        manifest = Manifest([FileEntry("a.txt", "file", 3, _ABSENT)])
        with pytest.raises(NotFoundError):
            materialize_files(content_store, manifest, tmp_path / "release")

    def test_two_materializations_are_independent(
        self, content_store: ContentStore, tmp_path: Path
    ) -> None:
        manifest = _revision(content_store, {"a.txt": b"shared bytes"})
        materialize_files(content_store, manifest, tmp_path / "one")
        materialize_files(content_store, manifest, tmp_path / "two")
        assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
        digest = digest_bytes(b"shared bytes")
        assert read_object(content_store, digest) == b"shared bytes"

    # ------------------------------------------------------------------ objects, delete

    def test_objects_lists_every_object_with_a_time(self, content_store: ContentStore) -> None:
        digests = {_put(content_store, d) for d in (b"one", b"two", b"three")}
        listed = list(content_store.objects())
        assert {d for d, _ in listed} == digests
        assert len(listed) == len(digests)
        assert all(isinstance(when, float) and when > 0 for _, when in listed)

    def test_delete_removes_one_object(self, content_store: ContentStore) -> None:
        keep, drop = _put(content_store, b"keep"), _put(content_store, b"drop")
        content_store.delete(drop)
        assert content_store.has(drop) is False
        assert content_store.verify(drop) is False
        with pytest.raises(NotFoundError):
            read_object(content_store, drop)
        assert [d for d, _ in content_store.objects()] == [keep]
        assert read_object(content_store, keep) == b"keep"

    def test_deleting_a_missing_object_is_no_error(self, content_store: ContentStore) -> None:
        content_store.delete(_ABSENT)
        digest = _put(content_store, b"x")
        content_store.delete(digest)
        content_store.delete(digest)
        assert content_store.has(digest) is False

    def test_a_deleted_object_can_be_stored_again(self, content_store: ContentStore) -> None:
        digest = _put(content_store, b"again")
        content_store.delete(digest)
        assert _put(content_store, b"again") == digest
        assert read_object(content_store, digest) == b"again"

    def test_a_deleted_manifest_is_not_found(self, content_store: ContentStore) -> None:
        revision = content_store.put_manifest(_revision(content_store, {"a.txt": b"a"}))
        content_store.delete(revision)
        with pytest.raises(NotFoundError):
            content_store.get_manifest(revision)

    # ------------------------------------------------------------------ sync, lost

    def test_sync_keeps_everything_and_may_be_repeated(self, content_store: ContentStore) -> None:
        store_sync(content_store)
        digest = _put(content_store, b"durable")
        store_sync(content_store)
        store_sync(content_store)
        assert read_object(content_store, digest) == b"durable"
        assert store_lost(content_store) == frozenset()

    def test_nothing_is_lost_without_a_crash(self, content_store: ContentStore) -> None:
        manifest = _revision(content_store, {"a.txt": b"a"})
        content_store.put_manifest(manifest)
        store_sync(content_store)
        lost = store_lost(content_store)
        assert isinstance(lost, frozenset) and lost == frozenset()

    # ------------------------------------------------------------------ capabilities

    def test_completeness_check_names_what_a_revision_lacks(
        self, content_store: ContentStore
    ) -> None:
        missing_objects = store_missing_objects(content_store)
        if missing_objects is None:
            pytest.skip("the store offers no CompletenessCheck")
        manifest = _revision(content_store, {"a.txt": b"a", "b.txt": b"b"})
        revision = content_store.put_manifest(manifest)
        assert missing_objects(revision) == frozenset()
        gone = digest_bytes(b"b")
        content_store.delete(gone)
        assert missing_objects(revision) == frozenset({gone})
        assert missing_objects(_ABSENT) == frozenset({_ABSENT})

    def test_local_object_files_are_the_objects(self, content_store: ContentStore) -> None:
        object_path = store_object_path(content_store)
        if object_path is None:
            pytest.skip("the store offers no LocalObjectFiles")
        assert store_tmp(content_store) is not None
        digest = _put(content_store, b"on disk")
        assert object_path(digest).read_bytes() == b"on disk"
        assert not object_path(_ABSENT).exists()

    def test_lost_objects_ledger_forgets_nothing_needed(self, content_store: ContentStore) -> None:
        forget_lost = store_forget_lost(content_store)
        if forget_lost is None:
            pytest.skip("the store offers no LostObjectsLedger")
        digest = _put(content_store, b"needed")
        assert forget_lost({digest}) == 0
        assert store_lost(content_store) == frozenset()

    def test_durability_switch_is_a_bool(self, content_store: ContentStore) -> None:
        if not hasattr(content_store, "fsync"):
            pytest.skip("the store offers no DurabilitySwitch")
        assert isinstance(content_store.fsync, bool)
