"""The conformance suite every component-source plugin must pass.

A source (the ``Source`` protocol of :mod:`lockgate.contracts`) finds components
(``discover``, ``find``), lists their files (``scan``) and may remember digests to vouch
for unchanged files next time (``remember``). A source has no write methods, so the suite
changes components through a second handle, a :class:`~lockgate.testing.ComponentFiles`.
Use it from a plugin's tests::

    import pytest
    from lockgate.testing import DirectoryComponentFiles, SourceConformance, SourceFixture

    class TestMySource(SourceConformance):
        @pytest.fixture
        def source(self, tmp_path):
            root = tmp_path / "workspaces"
            return SourceFixture(MySource(root), DirectoryComponentFiles(root))

The fixture returns a :class:`~lockgate.testing.SourceFixture`: a fresh source that
finds no component, and the files handle that creates and edits what it finds.

A file's bytes are read with the source's ``open_file(component, path)`` when it has one
(a source without local files, such as :class:`~lockgate.testing.MemorySource`), else
from ``component.path / path``, where the kernel reads them today.

What is vouched for is checked, not required: a source may hash everything every time,
but a digest it hands out must be the file's, and a revision it reports must be the one
the files make up now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

import pytest

from lockgate.contracts.manifest import FileEntry, Manifest, digest_bytes
from lockgate.contracts.refs import ComponentRef
from lockgate.contracts.source import Component, ComponentSpec, ScanResult, Source
from lockgate.errors import NotFoundError
from lockgate.testing._files import ComponentFiles, SourceFixture

__all__ = ["SourceConformance"]

FILES = {
    "run.py": b"print('run')\n",
    "lib/util.py": b"X = 1\n",
    "lib/deep/er/data.json": b'{"a": 1}\n',
    "README.md": b"# etl\n",
    "empty.txt": b"",
}


def read_file(source: Source, component: Component, path: str) -> bytes:
    """The bytes of file ``path`` of ``component`` as ``source`` serves them
    (``open_file``, part of the contract; staging reads through it)."""
    fh: BinaryIO = source.open_file(component, path)
    with fh:
        return fh.read()


def _make(files: ComponentFiles, ref: str, content: Mapping[str, bytes], **kw: Any) -> None:
    files.create(ref, **kw)
    for path, data in content.items():
        files.write(ref, path, data)


def _revision(tree: Mapping[str, tuple[str, bytes | str]]) -> str:
    """The revision id of ``tree`` (path -> (kind, bytes or link target)), as staging
    builds its manifest."""
    entries = []
    for path, (kind, value) in tree.items():
        if kind == "symlink":
            target = str(value)
            raw = target.encode()
            entries.append(FileEntry(path, "symlink", len(raw), digest_bytes(raw), target))
        else:
            data = value if isinstance(value, bytes) else value.encode()
            entries.append(FileEntry(path, kind, len(data), digest_bytes(data)))  # type: ignore[arg-type]
    return Manifest(entries).revision_id()


def _digests(scan: ScanResult, source: Source) -> dict[str, str]:
    """Every regular file's true digest, read through the source (as staging hashes)."""
    return {
        f.path: digest_bytes(read_file(source, scan.component, f.path))
        for f in scan.files
        if f.kind != "symlink"
    }


def _honest(source: Source, scan: ScanResult, tree: Mapping[str, tuple[str, bytes | str]]) -> None:
    """``scan`` lists exactly ``tree``, and vouches only for what is true of it now."""
    listed = {f.path: f for f in scan.files}
    assert sorted(listed) == sorted(tree), "the scan lists other files than the component has"
    for path, (kind, value) in tree.items():
        f = listed[path]
        assert f.kind == kind, f"{path}: kind {f.kind}, expected {kind}"
        if kind == "symlink":
            assert f.target == value, f"{path}: symlink target {f.target!r}, expected {value!r}"
            continue
        assert isinstance(value, bytes)
        assert f.stat.size == len(value), f"{path}: size {f.stat.size}, expected {len(value)}"
        assert read_file(source, scan.component, path) == value
        if f.digest is not None:
            assert f.digest == digest_bytes(value), f"{path}: the scan vouches for a stale digest"
    if scan.revision is not None:
        assert scan.revision == _revision(tree), "the scan vouches for a revision that is not"


class SourceConformance:
    """The behaviours every :class:`~lockgate.contracts.source.Source` must show.

    Subclass it as ``class TestMySource(SourceConformance)`` and define a ``source``
    fixture returning a :class:`~lockgate.testing.SourceFixture`.
    """

    # ------------------------------------------------------------------ discover

    def test_an_empty_source_finds_nothing(self, source: SourceFixture) -> None:
        found = source.source.discover()
        assert tuple(found.components) == ()
        assert tuple(found.problems) == ()

    def test_discover_finds_every_component_with_its_type(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"run.py": b"1"}, component_type="scripts")
        _make(source.files, "alice:report", {"nb.py": b"2"}, component_type="notebooks")
        _make(source.files, "bob:etl", {"run.py": b"3"}, component_type="scripts")
        found = source.source.discover()
        assert {(str(c.ref), c.component_type) for c in found.components} == {
            ("alice:etl", "scripts"),
            ("alice:report", "notebooks"),
            ("bob:etl", "scripts"),
        }
        assert tuple(found.problems) == ()

    def test_discover_narrows_to_the_workspaces_asked_for(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"run.py": b"1"})
        _make(source.files, "bob:etl", {"run.py": b"2"})
        _make(source.files, "carol:report", {"run.py": b"3"})
        refs = {str(c.ref) for c in source.source.discover(["alice", "carol"]).components}
        assert refs == {"alice:etl", "carol:report"}
        assert tuple(source.source.discover(["nobody"]).components) == ()

    def test_discover_gives_each_component_its_spec(self, source: SourceFixture) -> None:
        spec = ComponentSpec(
            version="1.2.0",
            description="nightly extract",
            owners=["alice", "bob"],
            depends_on=["bob:lib", "shared"],
            metadata={"team": "data", "tier": 2},
        )
        _make(source.files, "alice:etl", {"run.py": b"1"}, spec=spec)
        _make(source.files, "alice:plain", {"run.py": b"2"})
        found = {str(c.ref): c for c in source.source.discover().components}
        assert found["alice:etl"].spec == spec
        assert found["alice:plain"].spec == ComponentSpec()

    def test_a_new_component_is_found_by_the_next_discover(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"run.py": b"1"})
        assert len(source.source.discover().components) == 1
        _make(source.files, "alice:report", {"run.py": b"2"})
        refs = {str(c.ref) for c in source.source.discover().components}
        assert refs == {"alice:etl", "alice:report"}

    # ------------------------------------------------------------------ find

    def test_find_returns_the_discovered_component(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"run.py": b"1"}, spec=ComponentSpec(version="3"))
        _make(source.files, "bob:etl", {"run.py": b"2"})
        (discovered,) = source.source.discover(["alice"]).components
        found = source.source.find(ComponentRef("alice", "etl"))
        assert found.ref == ComponentRef("alice", "etl")
        assert (found.component_type, found.spec) == (discovered.component_type, discovered.spec)

    def test_find_of_an_unknown_component_is_not_found(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"run.py": b"1"})
        with pytest.raises(NotFoundError):
            source.source.find(ComponentRef("alice", "missing"))

    def test_find_in_an_unknown_workspace_is_not_found(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"run.py": b"1"})
        with pytest.raises(NotFoundError):
            source.source.find(ComponentRef("nobody", "etl"))

    # ------------------------------------------------------------------ open_file

    def test_open_file_streams_the_bytes_as_they_are_now(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", FILES)
        component = source.source.find(ComponentRef("alice", "etl"))
        with source.source.open_file(component, "lib/util.py") as fh:
            assert fh.read(2) + fh.read() == FILES["lib/util.py"]
        source.files.write("alice:etl", "lib/util.py", b"X = 2\n")
        assert read_file(source.source, component, "lib/util.py") == b"X = 2\n"

    def test_open_file_of_a_file_that_is_gone_is_not_found(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"run.py": b"1", "old.py": b"2"})
        component = source.source.find(ComponentRef("alice", "etl"))
        source.files.delete("alice:etl", "old.py")
        with pytest.raises(NotFoundError):
            source.source.open_file(component, "old.py")

    # ------------------------------------------------------------------ scan

    def test_scan_lists_every_file_with_its_bytes(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", FILES)
        scan = source.source.scan(source.source.find(ComponentRef("alice", "etl")))
        _honest(source.source, scan, {p: ("file", d) for p, d in FILES.items()})

    def test_scan_tells_executables_and_symlinks(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"lib/util.py": b"X = 1\n"})
        source.files.write("alice:etl", "bin/run", b"#!/bin/sh\necho hi\n", executable=True)
        source.files.symlink("alice:etl", "bin/util.py", "../lib/util.py")
        scan = source.source.scan(source.source.find(ComponentRef("alice", "etl")))
        _honest(
            source.source,
            scan,
            {
                "lib/util.py": ("file", b"X = 1\n"),
                "bin/run": ("exec", b"#!/bin/sh\necho hi\n"),
                "bin/util.py": ("symlink", "../lib/util.py"),
            },
        )

    def test_an_empty_component_scans_to_no_files(self, source: SourceFixture) -> None:
        source.files.create("alice:etl")
        scan = source.source.scan(source.source.find(ComponentRef("alice", "etl")))
        assert list(scan.files) == []
        assert (scan.total_size, scan.largest) == (0, 0)

    def test_scan_totals_agree_with_its_files(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", FILES)
        scan = source.source.scan(source.source.find(ComponentRef("alice", "etl")))
        assert len(scan.files) == len(FILES)
        assert scan.total_size == sum(len(d) for d in FILES.values())
        assert scan.largest == max(len(d) for d in FILES.values())

    def test_scan_sees_only_its_own_component(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"run.py": b"alice"})
        _make(source.files, "bob:etl", {"run.py": b"bob", "more.py": b"more"})
        scan = source.source.scan(source.source.find(ComponentRef("alice", "etl")))
        _honest(source.source, scan, {"run.py": ("file", b"alice")})

    def test_an_unchanged_component_scans_the_same(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", FILES)
        component = source.source.find(ComponentRef("alice", "etl"))
        first = source.source.scan(component)
        second = source.source.scan(component)
        assert {(f.path, f.kind, f.stat) for f in first.files} == {
            (f.path, f.kind, f.stat) for f in second.files
        }

    def test_a_changed_file_has_a_new_stat(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"run.py": b"short"})
        component = source.source.find(ComponentRef("alice", "etl"))
        (before,) = source.source.scan(component).files
        source.files.write("alice:etl", "run.py", b"a longer body")
        (after,) = source.source.scan(component).files
        assert after.stat != before.stat

    # ------------------------------------------------------------------ remember

    def test_what_is_remembered_is_vouched_for_honestly(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", FILES)
        component = source.source.find(ComponentRef("alice", "etl"))
        tree = {p: ("file", d) for p, d in FILES.items()}
        scan = source.source.scan(component)
        source.source.remember(scan, _digests(scan, source.source), _revision(tree))
        _honest(source.source, source.source.scan(component), tree)

    def test_a_changed_file_is_not_vouched_for(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", FILES)
        component = source.source.find(ComponentRef("alice", "etl"))
        tree: dict[str, tuple[str, bytes | str]] = {p: ("file", d) for p, d in FILES.items()}
        scan = source.source.scan(component)
        source.source.remember(scan, _digests(scan, source.source), _revision(tree))
        source.files.write("alice:etl", "run.py", b"print('changed, and longer')\n")
        tree["run.py"] = ("file", b"print('changed, and longer')\n")
        _honest(source.source, source.source.scan(component), tree)

    def test_an_added_or_removed_file_is_not_vouched_for(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", FILES)
        component = source.source.find(ComponentRef("alice", "etl"))
        tree: dict[str, tuple[str, bytes | str]] = {p: ("file", d) for p, d in FILES.items()}
        scan = source.source.scan(component)
        source.source.remember(scan, _digests(scan, source.source), _revision(tree))
        source.files.delete("alice:etl", "README.md")
        del tree["README.md"]
        _honest(source.source, source.source.scan(component), tree)
        scan = source.source.scan(component)
        source.source.remember(scan, _digests(scan, source.source), _revision(tree))
        source.files.write("alice:etl", "new.py", b"new = True\n")
        tree["new.py"] = ("file", b"new = True\n")
        _honest(source.source, source.source.scan(component), tree)

    def test_a_changed_symlink_is_not_vouched_for(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", {"a.py": b"a", "b.py": b"b"})
        source.files.symlink("alice:etl", "link.py", "a.py")
        component = source.source.find(ComponentRef("alice", "etl"))
        tree: dict[str, tuple[str, bytes | str]] = {
            "a.py": ("file", b"a"),
            "b.py": ("file", b"b"),
            "link.py": ("symlink", "a.py"),
        }
        scan = source.source.scan(component)
        source.source.remember(scan, _digests(scan, source.source), _revision(tree))
        source.files.symlink("alice:etl", "link.py", "b.py")
        tree["link.py"] = ("symlink", "b.py")
        _honest(source.source, source.source.scan(component), tree)

    def test_remembering_a_scan_older_than_an_edit_vouches_for_nothing_stale(
        self, source: SourceFixture
    ) -> None:
        # Staging scans, hashes, then remembers: an edit in between must not be covered.
        _make(source.files, "alice:etl", FILES)
        component = source.source.find(ComponentRef("alice", "etl"))
        tree: dict[str, tuple[str, bytes | str]] = {p: ("file", d) for p, d in FILES.items()}
        scan = source.source.scan(component)
        digests = _digests(scan, source.source)
        source.files.write("alice:etl", "lib/util.py", b"X = 'edited meanwhile'\n")
        source.source.remember(scan, digests, _revision(tree))
        tree["lib/util.py"] = ("file", b"X = 'edited meanwhile'\n")
        _honest(source.source, source.source.scan(component), tree)

    def test_remembering_no_digests_is_harmless(self, source: SourceFixture) -> None:
        _make(source.files, "alice:etl", FILES)
        component = source.source.find(ComponentRef("alice", "etl"))
        source.source.remember(source.source.scan(component), {})
        _honest(
            source.source,
            source.source.scan(component),
            {p: ("file", d) for p, d in FILES.items()},
        )
