"""The workspace source's stat cache: what the fast path may trust, and what it must not.

A rescan takes a directory's files straight from the cache (``.lockgate/cache/stat/``)
when its entries' names and stat fields are unchanged, its files are all clearly older
than the cache file, the ignore rules are the same and it holds no symlink. Every test
here ages the cache file with ``os.utime`` (as if it had been written a second after the
files' last change), so that the cache *could* vouch for the files, and then checks that
a change it must not paper over is still seen: an edit that keeps size and mtime, an
added, removed, renamed or re-moded entry, new ignore rules, a symlink re-pointed
elsewhere in the component, a corrupt cache file, lowered staging limits, and an edit
within the racy window of the cache write.
"""

from __future__ import annotations

import marshal
import os
import random
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.contracts.manifest import digest_bytes
from lockgate.contracts.refs import ComponentRef
from lockgate.contracts.source import ScannedFiles, ScanResult
from lockgate.core.project import Project
from lockgate.errors import InputError
from lockgate.operations.init import init_project
from lockgate.operations.stage import Stager, StageResult
from lockgate.testing import open_project

ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}
REF = "alice:etl"
MS = 1_000_000
SECOND = 1_000 * MS

Tree = dict[str, tuple[str, int, str]]
"""path -> (kind, size, digest), as a manifest lists a component's regular files."""


# ---------------------------------------------------------------------- helpers


def grid(dirs: tuple[str, ...] = ("a", "b", "b/c"), per_dir: int = 5) -> dict[str, bytes]:
    """``per_dir`` files of distinct content and size in each directory."""
    return {f"{d}/f{i}.txt": f"{d}:{i}\n".encode() * (i + 1) for d in dirs for i in range(per_dir)}


def newest_change(comp: Path) -> int:
    """The latest mtime or ctime of the component or anything in it (links not followed)."""
    stats = [comp.lstat()]
    for dirpath, dirnames, filenames in os.walk(comp):
        stats.extend((Path(dirpath) / name).lstat() for name in dirnames + filenames)
    return max(max(st.st_mtime_ns, st.st_ctime_ns) for st in stats)


def tree_on_disk(comp: Path) -> Tree:
    """What a revision of the component must hold (regular files only; no ignore rules)."""
    out: Tree = {}
    for dirpath, _, filenames in os.walk(comp):
        for name in filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            assert stat.S_ISREG(st.st_mode), path
            kind = "exec" if st.st_mode & 0o111 else "file"
            out[path.relative_to(comp).as_posix()] = (
                kind,
                st.st_size,
                digest_bytes(path.read_bytes()),
            )
    return out


def rewrite_keeping_times(path: Path, data: bytes) -> None:
    """Rewrite ``path`` in place (same inode) and put its atime and mtime back: only its
    ctime tells that it changed (and it is made sure that it does)."""
    before = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    while path.stat().st_ctime_ns == before.st_ctime_ns:  # within one clock tick: retouch
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


class Lab:
    """A project whose component alice:etl holds the given files, opened once (the
    workspace source, with its loaded stat cache, lives as long as the project)."""

    def __init__(self, root: Path, files: dict[str, bytes]) -> None:
        init_project(root)
        self.root = root
        self.comp = root / "workspaces" / "alice" / "scripts" / "etl"
        self.comp.mkdir(parents=True)
        for rel, data in files.items():
            path = self.comp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self._project: Project | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = open_project(self.root, environ=ENV)
        return self._project

    def close(self) -> None:
        if self._project is not None:
            self._project.close()
            self._project = None

    @property
    def cache(self) -> Path:
        return self.root / ".lockgate" / "cache" / "stat" / "alice" / "etl"

    def stage(self, environ: dict[str, str] | None = None) -> StageResult:
        """Stage alice:etl; with ``environ``, in a project opened with those overrides."""
        if not environ:
            return Stager(self.project).stage(REF)
        project = open_project(self.root, environ={**ENV, **environ})
        try:
            return Stager(project).stage(REF)
        finally:
            project.close()

    def scan(self) -> ScanResult:
        source = self.project.source()
        return source.scan(source.find(ComponentRef.parse(REF)))

    def manifest(self, revision: str) -> Tree:
        entries = self.project.content().get_manifest(revision).entries
        return {e.path: (e.kind, e.size, e.digest) for e in entries}

    def revisions(self) -> list[str]:
        return [r.revision for r in self.project.state().revisions(REF)]

    def stored_objects(self) -> set[str]:
        base = self.root / ".lockgate" / "objects"
        return {
            "".join(p.relative_to(base).parts)
            for p in base.rglob("*")
            if p.is_file() and p.relative_to(base).parts[0] != "tmp"
        }

    def set_cache_written(self, after_ns: int) -> None:
        """Date the cache file ``after_ns`` after the component's newest change."""
        at = newest_change(self.comp) + after_ns
        os.utime(self.cache, ns=(at, at))

    def age_cache(self) -> None:
        """As if the cache had been written a second after the files' last change: every
        file is past the racy window, so the cache may vouch for all of them."""
        self.set_cache_written(SECOND)


NewLab = Callable[[dict[str, bytes]], Lab]


@pytest.fixture
def new_lab(tmp_path: Path) -> Iterator[NewLab]:
    labs: list[Lab] = []

    def make(files: dict[str, bytes]) -> Lab:
        labs.append(Lab(tmp_path / f"p{len(labs)}", files))
        return labs[-1]

    yield make
    for lab in labs:
        lab.close()


# ---------------------------------------------------------------------- 1. unchanged


def test_unchanged_restage_is_vouched_for_by_the_cache(new_lab: NewLab) -> None:
    files = {**grid(), "b/c/big.bin": b"B" * 5000, "run.sh": b"#!/bin/sh\necho hi\n"}
    lab = new_lab(files)
    (lab.comp / "run.sh").chmod(0o755)
    first = lab.stage()
    assert first.created and first.hashed == len(files)
    lab.age_cache()
    expected = tree_on_disk(lab.comp)
    assert lab.manifest(first.revision) == expected

    scan = lab.scan()
    assert scan.revision == first.revision
    assert isinstance(scan.files, ScannedFiles)
    assert len(scan.files) == len(expected)
    assert scan.total_size == sum(size for _, size, _ in expected.values())
    assert scan.largest == 5000
    listed = {f.path: (f.kind, f.stat.size, f.digest) for f in scan.files}
    assert len(listed) == len(scan.files)  # no path twice
    assert listed == expected

    again = lab.stage()
    assert not again.created
    assert again.hashed == 0
    assert again.revision == first.revision
    assert (again.files, again.size) == (len(expected), scan.total_size)
    assert lab.revisions() == [first.revision]


def test_scan_counts_are_right_when_some_directories_are_rescanned(new_lab: NewLab) -> None:
    lab = new_lab(grid())
    first = lab.stage()
    lab.age_cache()
    (lab.comp / "a" / "f0.txt").write_bytes(b"grown " * 100)  # a/ is checked entry by entry
    (lab.comp / "b" / "c" / "huge.bin").write_bytes(b"H" * 9000)  # so is b/c/
    expected = tree_on_disk(lab.comp)
    old = lab.manifest(first.revision)

    scan = lab.scan()
    assert scan.revision is None
    assert len(scan.files) == len(expected)
    assert scan.total_size == sum(size for _, size, _ in expected.values())
    assert scan.largest == 9000
    for f in scan.files:
        kind, size, digest = expected[f.path]
        assert (f.kind, f.stat.size) == (kind, size)
        if f.path in ("a/f0.txt", "b/c/huge.bin"):
            assert f.digest is None  # to be hashed
        else:
            assert f.digest == digest == old[f.path][2]


# ---------------------------------------------------------------------- 2. changes


def edit_keeping_size_and_mtime(comp: Path, where: str) -> None:
    path = comp / where / "f2.txt"
    data = path.read_bytes()
    rewrite_keeping_times(path, data.upper())
    assert path.read_bytes() != data and len(path.read_bytes()) == len(data)


def add_file(comp: Path, where: str) -> None:
    (comp / where / "added.txt").write_bytes(b"added\n")


def remove_file(comp: Path, where: str) -> None:
    (comp / where / "f3.txt").unlink()


def rename_file(comp: Path, where: str) -> None:
    (comp / where / "f1.txt").rename(comp / where / "renamed.txt")


def make_executable(comp: Path, where: str) -> None:
    (comp / where / "f4.txt").chmod(0o755)


def replace_file_by_directory(comp: Path, where: str) -> None:
    path = comp / where / "f0.txt"
    path.unlink()
    path.mkdir()
    (path / "inner.txt").write_bytes(b"inner\n")


def add_subdirectory(comp: Path, where: str) -> None:
    (comp / where / "new").mkdir()
    (comp / where / "new" / "n.txt").write_bytes(b"new dir, new file\n")


@pytest.mark.parametrize("where", ["a", "b/c"])  # b/c: its parent b/ is unchanged
@pytest.mark.parametrize(
    ("change", "hashed"),
    [
        pytest.param(edit_keeping_size_and_mtime, 1, id="same-size-edit-mtime-restored"),
        pytest.param(add_file, 1, id="file-added"),
        pytest.param(remove_file, 0, id="file-removed"),
        pytest.param(rename_file, 1, id="file-renamed"),
        pytest.param(make_executable, 1, id="chmod-x"),
        pytest.param(replace_file_by_directory, 1, id="file-becomes-directory"),
        pytest.param(add_subdirectory, 1, id="new-subdirectory"),
    ],
)
def test_change_after_the_cache_was_aged_is_staged(
    new_lab: NewLab, change: Callable[[Path, str], None], hashed: int, where: str
) -> None:
    lab = new_lab(grid())
    first = lab.stage()
    lab.age_cache()
    change(lab.comp, where)
    expected = tree_on_disk(lab.comp)

    second = lab.stage()
    assert second.created and second.revision != first.revision
    assert lab.manifest(second.revision) == expected
    assert second.files == len(expected)
    assert second.hashed == hashed  # the changed entries only: the rest is from the cache
    assert lab.revisions() == [first.revision, second.revision]

    # What the second stage cached is right too.
    lab.age_cache()
    third = lab.stage()
    assert (third.created, third.hashed, third.revision) == (False, 0, second.revision)


def test_chmod_x_is_staged_as_a_modified_exec_file(new_lab: NewLab) -> None:
    lab = new_lab(grid())
    lab.stage()
    lab.age_cache()
    make_executable(lab.comp, "b/c")
    second = lab.stage()
    assert lab.manifest(second.revision)["b/c/f4.txt"][0] == "exec"
    assert second.diff.modified == ("b/c/f4.txt",)
    assert second.diff.added == second.diff.removed == ()


# ---------------------------------------------------------------------- 3. ignore rules


def set_rules(lab: Lab, place: str, rules: str) -> dict[str, str]:
    """Put ``rules`` where ``place`` says; returns the environment that carries them."""
    if place == "config":
        return {"LOCKGATE__WORKSPACES__IGNORE": rules}
    directory = {"component": lab.comp, "workspace": lab.comp.parents[1], "project": lab.root}
    (directory[place] / ".lockgateignore").write_text(rules + "\n", encoding="utf-8")
    return {}


@pytest.mark.parametrize("place", ["component", "workspace", "project", "config"])
def test_changed_ignore_rules_apply_to_unchanged_directories(new_lab: NewLab, place: str) -> None:
    lab = new_lab(
        {
            "a/keep.txt": b"kept at first\n",
            "a/debug.log": b"ignored at first\n",
            "a/data.csv": b"1,2\n",
            "b/other.txt": b"other\n",
        }
    )
    first = lab.stage(set_rules(lab, place, "*.log"))
    assert set(lab.manifest(first.revision)) == {"a/keep.txt", "a/data.csv", "b/other.txt"}
    lab.age_cache()
    # Nothing under a/ changes; only the rules do.
    second = lab.stage(set_rules(lab, place, "keep.txt"))
    assert second.created
    assert set(lab.manifest(second.revision)) == {"a/debug.log", "a/data.csv", "b/other.txt"}
    assert second.diff.added == ("a/debug.log",)
    assert second.diff.removed == ("a/keep.txt",)
    assert second.hashed == 1  # debug.log; the rest is from the cache


def test_ignoring_a_whole_directory_and_back(new_lab: NewLab) -> None:
    lab = new_lab(grid())
    first = lab.stage()
    rules = lab.root / ".lockgateignore"  # outside the component: no directory in it changes
    lab.age_cache()
    rules.write_text("b/c/\n", encoding="utf-8")
    without = lab.stage()
    assert set(lab.manifest(without.revision)) == {p for p in grid() if not p.startswith("b/c/")}
    lab.age_cache()
    rules.write_text("# nothing ignored\n", encoding="utf-8")
    back = lab.stage()
    assert back.revision == first.revision
    assert lab.manifest(back.revision) == tree_on_disk(lab.comp)


# ---------------------------------------------------------------------- 4. symlinks


def test_symlink_made_to_escape_by_re_pointing_another_link_is_refused(
    new_lab: NewLab,
) -> None:
    lab = new_lab({"sub/s.txt": b"s\n", "x": b"inside x\n", "d2/plain.txt": b"plain\n"})
    comp = lab.comp
    outside = comp.parent / "x"  # <type dir>/x, beside the component
    outside.write_bytes(b"outside the component\n")
    (comp / "dot").symlink_to("sub")
    esc = comp / "d2" / "esc"
    esc.symlink_to("../dot/../x")  # d2/.. -> dot = sub -> sub/.. -> x: the component's x
    assert Path(os.path.realpath(esc)) == (comp / "x").resolve()

    first = lab.stage()
    assert first.created
    entries = lab.manifest(first.revision)
    assert entries["d2/esc"][0] == entries["dot"][0] == "symlink"
    lab.age_cache()
    again = lab.stage()
    assert (again.created, again.hashed) == (False, 0)

    # Re-point dot: d2/ itself (plain.txt, esc) is untouched, yet esc now leads out.
    (comp / "dot").unlink()
    (comp / "dot").symlink_to(".")
    assert Path(os.path.realpath(esc)) == outside.resolve()
    lab.age_cache()
    objects = lab.stored_objects()
    with pytest.raises(InputError) as info:
        lab.stage()
    message = str(info.value)
    assert str(esc) in message
    assert "outside the component" in message
    assert lab.revisions() == [first.revision]
    assert lab.stored_objects() == objects
    assert digest_bytes(outside.read_bytes()) not in objects


# ---------------------------------------------------------------------- 5. corrupt cache


def _load(raw: bytes) -> Any:
    """A cache file's data (the file is marshal data followed by its 64-hex checksum)."""
    return marshal.loads(raw[:-64])


def _seal(data: Any) -> bytes:
    """``data`` as a cache file with a valid checksum: what is then checked is its shape."""
    body = marshal.dumps(data)
    return body + digest_bytes(body).encode()


def _with(data: dict[str, Any], **changes: Any) -> bytes:
    return _seal({**data, **changes})


def _dirs(valid: bytes, entry: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> bytes:
    data = _load(valid)
    return _with(data, dirs={k: entry(v) for k, v in data["dirs"].items()})


def _flip_one_digest_character(valid: bytes) -> bytes:
    """A valid cache with one hex digit of one cached digest changed, checksum not fixed:
    trusting it would record a wrong digest."""
    data = _load(valid)
    name, entry = next((k, v) for k, v in data["dirs"].items() if v[8])
    digests = entry[8]
    flipped = ("1" if digests[0] == "0" else "0") + digests[1:]
    body = marshal.dumps(
        {**data, "dirs": {**data["dirs"], name: (*entry[:8], flipped, *entry[9:])}}
    )
    return body + valid[-64:]


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "random-bytes": lambda valid: random.Random(7).randbytes(len(valid)),
    "empty": lambda valid: b"",
    "truncated": lambda valid: valid[: len(valid) // 2],
    "marshal-of-a-list": lambda valid: _seal([1, 2, 3]),
    "marshal-of-a-string": lambda valid: _seal("not a cache"),
    "old-version": lambda valid: _with(_load(valid), v=2),
    "no-version": lambda valid: _seal({k: v for k, v in _load(valid).items() if k != "v"}),
    "dirs-not-a-mapping": lambda valid: _with(_load(valid), dirs=[1, 2]),
    "unsealed": lambda valid: valid[:-64],
    "one-digest-character-flipped": _flip_one_digest_character,
    "entries-of-wrong-types": lambda valid: _dirs(valid, lambda entry: ("",) * 12),
    "a-kind-letter-unknown": lambda valid: _dirs(
        valid, lambda e: (*e[:6], "g" + e[6][1:], *e[7:]) if e[6] else e
    ),
    "digests-cut-short": lambda valid: _dirs(valid, lambda e: (*e[:8], e[8][:-1], *e[9:])),
    "directory-entries-too-short": lambda valid: _dirs(valid, lambda entry: entry[:-1]),
    "directory-entries-of-numbers": lambda valid: _dirs(valid, lambda entry: (0,) * 12),
    "directory-entries-of-bytes": lambda valid: _dirs(valid, lambda entry: (b"",) * 12),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_cache_is_ignored(new_lab: NewLab, corrupt: Callable[[bytes], bytes]) -> None:
    files = grid(("a", "b"), 3)
    lab = new_lab(files)
    first = lab.stage()
    lab.cache.write_bytes(corrupt(lab.cache.read_bytes()))
    lab.age_cache()

    again = lab.stage()
    assert again.revision == first.revision and not again.created
    assert again.hashed == len(files)  # nothing taken from the broken cache
    assert lab.revisions() == [first.revision]
    # ... and the cache written instead vouches for the files.
    lab.age_cache()
    assert lab.stage().hashed == 0


def test_lazily_built_files_compare_like_the_tuple_they_stand_for(new_lab: NewLab) -> None:
    lab = new_lab(grid(("a", "b"), 3))
    lab.stage()
    lab.age_cache()
    lazy = lab.scan().files
    assert isinstance(lazy, ScannedFiles)
    plain = tuple(lazy)
    assert lazy == plain and hash(lazy) == hash(plain)
    assert lazy == lab.scan().files
    assert lazy != plain[1:]


def test_a_restage_writes_unchanged_directories_back_as_they_were(new_lab: NewLab) -> None:
    """After a one-file edit, only its directory's cache entry is rebuilt; the others are
    the entries the scan trusted, and still vouch for their files at the next edit."""
    lab = new_lab(grid())
    lab.stage()
    lab.age_cache()
    body = lab.cache.read_bytes()[:-64]
    before = marshal.loads(body)["dirs"]
    edit_keeping_size_and_mtime(lab.comp, "a")
    second = lab.stage()
    assert second.created and second.hashed == 1
    assert second.diff is not None and second.diff.modified == ("a/f2.txt",)
    after = marshal.loads(lab.cache.read_bytes()[:-64])["dirs"]
    assert after["b/"] == before["b/"] and after["b/c/"] == before["b/c/"]
    assert after["a/"] != before["a/"]
    lab.age_cache()
    edit_keeping_size_and_mtime(lab.comp, "b/c")
    third = lab.stage()
    assert third.hashed == 1 and third.diff is not None
    assert third.diff.modified == ("b/c/f2.txt",)
    assert lab.manifest(third.revision) == tree_on_disk(lab.comp)
