"""Manifests: canonical bytes (the revision id) built once and exactly as ``json.dumps``
writes them, and diffs between revisions."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lockgate.contracts.manifest import CanonicalManifest, FileEntry, Manifest, ManifestDiff

DIGEST = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
# Any text: quotes, backslashes, control characters, non-ASCII, lone surrogates excluded
# (a path is UTF-8 when it is written out).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@st.composite
def entries(draw: Any) -> FileEntry:
    kind = draw(st.sampled_from(["file", "exec", "symlink"]))
    target = draw(TEXT) if kind == "symlink" else None
    return FileEntry(draw(TEXT), kind, draw(st.integers(0, 2**62)), draw(DIGEST), target)


def reference(manifest: Manifest) -> bytes:
    """The definition the revision ids of every existing revision were made with."""
    doc = {"format": 1, "files": [e.to_json() for e in manifest.entries]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@given(st.lists(entries(), max_size=20, unique_by=lambda e: e.path))
def test_canonical_bytes_are_those_json_dumps_writes(files: list[FileEntry]) -> None:
    manifest = Manifest(files)
    assert manifest.canonical() == reference(manifest)
    assert Manifest.from_bytes(manifest.canonical()) == manifest


def test_canonical_bytes_are_built_once_and_do_not_take_part_in_equality() -> None:
    manifest = Manifest([FileEntry("a.py", "file", 2, "0" * 64)])
    first = manifest.canonical()
    assert manifest.canonical() is first
    assert manifest == Manifest([FileEntry("a.py", "file", 2, "0" * 64)])
    assert "canonical" not in repr(manifest)


def test_a_crafted_size_is_written_as_json_writes_it() -> None:
    """A manifest read back may hold what staging never writes; its bytes stay json's."""
    manifest = Manifest([FileEntry("a.py", "file", True, "0" * 64)])  # type: ignore[arg-type]
    assert manifest.canonical() == reference(manifest)


@given(
    st.lists(entries(), max_size=12, unique_by=lambda e: e.path),
    st.lists(entries(), max_size=12, unique_by=lambda e: e.path),
)
def test_a_diff_names_each_path_added_modified_or_removed(
    old: list[FileEntry], new: list[FileEntry]
) -> None:
    # Half the paths of ``new`` reuse paths of ``old``, so modified entries occur too.
    new = [e._replace(path=old[i].path) if i % 2 and i < len(old) else e for i, e in enumerate(new)]
    new = list({e.path: e for e in new}.values())
    before, after = {e.path: e for e in old}, {e.path: e for e in new}
    diff = ManifestDiff.between(Manifest(old), Manifest(new))
    assert diff.added == tuple(sorted(after.keys() - before.keys()))
    assert diff.removed == tuple(sorted(before.keys() - after.keys()))
    both = before.keys() & after.keys()
    assert diff.modified == tuple(sorted(p for p in both if before[p] != after[p]))
    assert ManifestDiff.between(None, Manifest(new)).added == tuple(sorted(after))
    assert ManifestDiff.between(Manifest(old), Manifest(old)).empty
    # Compared as canonical bytes, entry by entry, without decoding: the same answer.
    stored = CanonicalManifest(Manifest(old).canonical())
    assert stored.diff(Manifest(new)) == diff
    assert stored.digests() == {e.digest for e in old}
    assert stored.manifest() == Manifest(old)


def test_bytes_not_in_the_canonical_layout_are_decoded_whole() -> None:
    """A manifest written by hand (spaces, another key order) still compares."""
    old = Manifest([FileEntry("a.py", "file", 2, "1" * 64), FileEntry("b.py", "file", 2, "2" * 64)])
    new = Manifest([FileEntry("a.py", "file", 3, "3" * 64), FileEntry("c.py", "file", 2, "2" * 64)])
    doc = {"format": 1, "files": [e.to_json() for e in reversed(old.entries)]}
    by_hand = CanonicalManifest(json.dumps(doc, indent=1).encode())
    assert by_hand.diff(new) == ManifestDiff(("c.py",), ("a.py",), ("b.py",))
    assert by_hand.digests() == {"1" * 64, "2" * 64}


def test_a_path_holding_the_entry_separator_is_one_entry() -> None:
    """``},{"digest":"`` inside a path is escaped, so it never splits an entry."""
    tricky = 'x},{"digest":"' + "f" * 64 + '","kind":"file","path":"y'
    old = Manifest([FileEntry(tricky, "file", 1, "1" * 64), FileEntry("z", "file", 1, "2" * 64)])
    new = Manifest([FileEntry(tricky, "file", 1, "3" * 64), FileEntry("z", "file", 1, "2" * 64)])
    stored = CanonicalManifest(old.canonical())
    assert stored.diff(new) == ManifestDiff((), (tricky,), ())
    assert stored.digests() == {"1" * 64, "2" * 64}
