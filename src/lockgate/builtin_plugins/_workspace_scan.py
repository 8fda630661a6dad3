"""The ``workspace`` source's scan: the stat cache and the entry-by-entry walk.

A stat cache per component (``.lockgate/cache/stat/``) maps (size, mtime_ns, ctime_ns,
inode) to the digest last stored, so restaging an unchanged component hashes nothing.
As in git, an entry whose mtime or ctime is not clearly older than the cache file
itself (by :data:`RACY_WINDOW_NS`) is "racily clean" — it may have changed within the
timestamp granularity after it was hashed — and is hashed again. The builtin ignore
rules and the name and symlink checks are here too, as the walk applies them.
"""

from __future__ import annotations

import errno
import operator
import os
import posixpath
import re
import stat
import struct
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from typing import Any, ClassVar, Literal, NamedTuple

from lockgate.plugin import (
    ChangeJournal,
    Component,
    FileStat,
    InputError,
    NotFoundError,
    ScannedFile,
    ScanResult,
)

__all__ = [
    "CACHE_VERSION",
    "IGNORE_FILE",
    "RACY_WINDOW_NS",
    "_DIR_FLAGS",
    "_D_KINDS",
    "_D_LARGEST",
    "_D_NAMES",
    "_D_NEWEST",
    "_D_SIG",
    "_D_SIGNED",
    "_D_SIZE",
    "_D_SUBDIRS",
    "_FILE_STATS",
    "_KIND_CODES",
    "_NO_DIGEST",
    "_STAT_KEY",
    "_Listed",
    "_StatCache",
    "_Walk",
    "_inside",
    "_pack_stats",
    "_raise_not_found",
    "_rewalked",
    "_split",
    "_vouched",
    "ignore_lines",
    "is_default_ignored",
]

IGNORE_FILE = ".lockgateignore"
CACHE_VERSION = 3
RACY_WINDOW_NS = 50_000_000
"""Timestamp granularity assumed for the racy check (Linux file systems tick in 1-10 ms)."""

IGNORED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".bzr", "CVS", "__pycache__", ".mypy_cache", ".pytest_cache",
     ".ruff_cache", ".tox", ".nox", ".idea", ".vscode"}
)  # fmt: skip
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "4913", ".lockgateignore"})
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".swo", ".swx", ".swn", "~", ".orig", ".rej", ".bak")
IGNORED_PREFIXES = (".#", ".~lock.")
_DIR, _REG, _LNK = stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK
_STAT_KEY = operator.attrgetter("st_mode", "st_size", "st_mtime_ns", "st_ctime_ns", "st_ino")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# Names that may be ignored by the builtin rules, or are not plain printable ASCII: only
# these take the slow path through the name checks and ignore rules.
_UNUSUAL_NAME = re.compile(
    r"^[.#]|[^\x20-\x7e]|~$|\.(?:pyc|pyo|swp|swo|swx|swn|orig|rej|bak)$"
    r"|^(?:4913|Thumbs\.db|__pycache__|CVS)$"
)


def ignore_lines(extra: Iterable[str], directories: Iterable[object]) -> tuple[str, ...]:
    """The ignore rules of a component: ``extra`` (``plugins.workspace.ignore``), then the
    lines of the ``.lockgateignore`` in each of ``directories`` that has one (project root,
    workspace root, component root), blank lines and comments left out. Read by plain
    paths (every scan asks, and most of these files do not exist)."""
    lines = list(extra)
    for directory in directories:
        try:
            with open(f"{directory}/{IGNORE_FILE}", encoding="utf-8", errors="replace") as fh:
                lines.extend(fh.read().splitlines())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
    return tuple(ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))


def is_default_ignored(name: str, *, is_dir: bool) -> bool:
    """The builtin ignore rules, checked by name alone (fast: no pattern matching)."""
    if is_dir:
        return name in IGNORED_DIRS
    return (
        name in IGNORED_NAMES
        or name.endswith(IGNORED_SUFFIXES)
        or name.startswith(IGNORED_PREFIXES)
        or (name.startswith("#") and name.endswith("#"))
    )


class _Listed(NamedTuple):
    """A directory as one scan found it, for :meth:`WorkspaceSource.remember`."""

    names: str
    """Every entry's name, sorted, ignored ones included, joined by NUL."""
    sig: bytes | None
    """The stat fields of those entries, packed (None: a value that does not pack)."""
    subdirs: str
    """The subdirectories descended into, joined by NUL."""
    signed: bool
    """Whether the directory may be trusted whole next time (it holds no symlink)."""
    start: int
    """Where its files start in the scan's list (they are contiguous)."""
    cached: tuple[Any, ...] | None = None
    """Its stat cache entry, when the scan took the directory whole from it: written back
    as it is, so a restage's cache update costs per changed directory, not per file."""


# A directory's entry in the stat cache (one tuple of strings, bytes and ints, so that
# decoding it creates a handful of objects, not several per file): _Listed's first three
# fields, the newest mtime/ctime of its files (the racy check), whether it is signed, then
# its files: names (NUL-joined), kinds (one letter each), stat fields (packed), digests
# (64 hex characters each) and symlink targets (NUL-joined; empty when there are none),
# and last their total size and the largest size (a scan's limits, without the files).
_D_NAMES, _D_SIG, _D_SUBDIRS, _D_NEWEST, _D_SIGNED = range(5)
_D_FILES, _D_KINDS, _D_FSTATS, _D_DIGESTS, _D_TARGETS = range(5, 10)
_D_SIZE, _D_LARGEST = range(10, 12)
_KIND_CODES = {"file": "f", "exec": "x", "symlink": "l"}
_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
_NO_DIGEST = "0" * 64


class _Packer:
    """Packs runs of fixed-layout records of 64-bit integers into bytes."""

    def __init__(self, layout: str) -> None:
        self.layout = layout
        self._by_count: dict[int, struct.Struct] = {}

    def pack_n(self, flat: Sequence[int]) -> bytes:
        count = len(flat) // len(self.layout)
        packer = self._by_count.get(count)
        if packer is None:
            packer = self._by_count[count] = struct.Struct("<" + self.layout * count)
        return packer.pack(*flat)


_ENTRY_STATS = _Packer("qqqqQ")  # mode, size, mtime_ns, ctime_ns, ino
_FILE_STATS = _Packer("qqqQ")  # size, mtime_ns, ctime_ns, ino


def _pack_stats(stats: list[tuple[int, ...]]) -> bytes | None:
    try:
        return _ENTRY_STATS.pack_n(list(chain.from_iterable(stats)))
    except struct.error:
        return None


def _split(joined: str) -> list[str]:
    return joined.split("\0") if joined else []


class _StatCache:
    """A component's stat cache as decoded: per directory, its listing and its files."""

    EMPTY: ClassVar[_StatCache]

    def __init__(
        self,
        key: tuple[int, int, int],
        revision: str | None,
        rules: tuple[str, ...] | None,
        dirs: dict[str, tuple[Any, ...]],
    ) -> None:
        self.key = key
        self.revision = revision
        self.rules = rules
        self.dirs = dirs
        # As in git, an entry whose mtime or ctime is not clearly older than the cache
        # file itself is "racily clean" and is hashed again.
        self.trusted_before = key[0] - RACY_WINDOW_NS
        self.total = sum(len(d[_D_KINDS]) for d in dirs.values())
        self._scanned: dict[str, tuple[ScannedFile, ...]] = {}

    @classmethod
    def decode(cls, data: Any, key: tuple[int, int, int]) -> _StatCache:
        if not isinstance(data, dict) or data.get("v") != CACHE_VERSION:
            return cls.EMPTY
        dirs, revision, rules = data.get("dirs"), data.get("revision"), data.get("rules")
        if not isinstance(dirs, dict) or not all(map(_well_formed, dirs.values())):
            return cls.EMPTY
        return cls(
            key,
            revision if isinstance(revision, str) else None,
            rules if isinstance(rules, tuple) else None,
            dirs,
        )

    def _columns(self, rel_dir: str) -> tuple[Iterable[Any], ...]:
        """The directory's files as columns: paths, kinds, stats, digests (no per-file
        Python: each is a C iterator over the cached strings and bytes)."""
        d = self.dirs[rel_dir]
        names = _split(d[_D_FILES])
        count = len(names)
        paths = map(rel_dir.__add__, names) if rel_dir else names
        kinds = map(_KINDS.__getitem__, d[_D_KINDS])
        stats = map(tuple.__new__, repeat(FileStat), struct.iter_unpack("<qqqQ", d[_D_FSTATS]))
        cuts = map(slice, range(0, 64 * count, 64), range(64, 64 * count + 1, 64))
        digests = map(d[_D_DIGESTS].__getitem__, cuts)
        return paths, kinds, stats, digests

    def scanned(self, rel_dir: str) -> tuple[ScannedFile, ...]:
        """A signed directory's files as scan entries (built once; no symlinks there)."""
        got = self._scanned.get(rel_dir)
        if got is None:
            rows = zip(*self._columns(rel_dir), repeat(None))
            got = self._scanned[rel_dir] = tuple(map(tuple.__new__, repeat(ScannedFile), rows))
        return got

    def files_in(self, rel_dir: str) -> dict[str, tuple[Any, ...]]:
        """A directory's cached files by path: (stat, kind, digest, symlink target)."""
        d = self.dirs.get(rel_dir)
        if d is None:
            return {}
        paths, kinds, stats, digests = self._columns(rel_dir)
        targets = _split(d[_D_TARGETS]) if d[_D_TARGETS] else repeat("")
        rows = zip(stats, kinds, digests, targets, strict=False)  # targets may be endless
        return dict(zip(paths, rows, strict=False))


_StatCache.EMPTY = _StatCache((0, 0, 0), None, None, {})
_TYPES = (str, bytes, str, int, bool, str, str, bytes, str, str, int, int)


def _well_formed(d: object) -> bool:
    """Whether a directory's cache entry has the shape :meth:`_StatCache.scanned` and
    :meth:`_StatCache.files_in` rely on (a damaged cache is ignored, never trusted)."""
    if not isinstance(d, tuple) or len(d) != len(_TYPES):
        return False
    if not all(map(isinstance, d, _TYPES)):
        return False
    kinds: str = d[_D_KINDS]
    count = len(kinds)
    return (
        not kinds.strip("fxl")
        and len(_split(d[_D_FILES])) == count
        and len(d[_D_FSTATS]) == 32 * count
        and len(d[_D_DIGESTS]) == 64 * count
        and (not d[_D_TARGETS] or len(_split(d[_D_TARGETS])) == count)
    )


class _Walk:
    """One scan's state, and the entry-by-entry check of a directory."""

    def __init__(self, component: Component, rules: tuple[str, ...], cache: _StatCache) -> None:
        self.component = component
        self.rules = rules
        self.cache = cache
        self.clean = 0
        self.dirs: dict[str, _Listed] = {}
        self._matcher: Any = None
        self._real_root: str | None = None

    def ignored(self, rel: str) -> bool:
        if not self.rules:
            return False
        if self._matcher is None:
            import pathspec

            self._matcher = pathspec.GitIgnoreSpec.from_lines(self.rules)
        return bool(self._matcher.match_file(rel))

    def directory(
        self,
        rel_dir: str,
        abs_dir: str,
        names: list[str],
        stats: Sequence[tuple[int, ...]],
    ) -> tuple[tuple[ScannedFile, ...], list[str], bool]:
        """Check each entry; return the directory's files, the subdirectories to descend
        into, and whether the directory may be trusted whole next time (it holds no
        symlink)."""
        cached = self.cache.files_in(rel_dir)
        trusted_before = self.cache.trusted_before
        files: list[ScannedFile] = []
        append = files.append
        unusual = _UNUSUAL_NAME.search
        new = tuple.__new__
        subdirs: list[str] = []
        signed = True
        for name, (mode, size, mtime, ctime, ino) in zip(names, stats, strict=True):
            fmt = mode & 0o170000
            if unusual(name) is not None:
                _check_file_name(name, f"{abs_dir}/{name}")
                if is_default_ignored(name, is_dir=fmt == _DIR):
                    continue
            rel = rel_dir + name
            if fmt == _DIR:
                if not self.ignored(rel + "/"):
                    subdirs.append(name)
                continue
            if self.ignored(rel):
                continue
            if fmt == _REG:
                kind: Literal["file", "exec"] = "exec" if mode & 0o111 else "file"
                key = new(FileStat, (size, mtime, ctime, ino))
                hit = cached.get(rel)
                if (
                    hit is not None
                    and hit[0] == key
                    and hit[1] == kind
                    # Racily clean entries (changed within the timestamp granularity of
                    # the cache write) are hashed again.
                    and mtime < trusted_before
                    and ctime < trusted_before
                ):
                    append(new(ScannedFile, (rel, kind, key, hit[2], None)))
                    self.clean += 1
                else:
                    append(new(ScannedFile, (rel, kind, key, None, None)))
            elif fmt == _LNK:
                signed = False
                if self._real_root is None:
                    self._real_root = os.path.realpath(self.component.path)
                target = _check_symlink(f"{abs_dir}/{name}", rel, self._real_root)
                hit = cached.get(rel)
                if hit is not None and hit[1] == "symlink" and hit[3] == target:
                    self.clean += 1
                size = len(target.encode())
                append(ScannedFile(rel, "symlink", FileStat(size, 0, 0, 0), None, target))
            else:
                raise InputError(
                    f"{abs_dir}/{name}: is a {_special_kind(mode)}; components may hold only "
                    "regular files and symlinks — remove it or add it to .lockgateignore"
                )
        return tuple(files), subdirs, signed


def _special_kind(mode: int) -> str:
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    return "socket" if stat.S_ISSOCK(mode) else "special file"


def _raise_not_found(message: str) -> Component:
    raise NotFoundError(message)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_file_name(rel: str, abs_path: str) -> None:
    if rel.isascii() and _CONTROL.search(rel) is None:
        return  # the common case, decided in C
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(abs_path)
        raise InputError(
            f"{shown!r}: file name is not valid UTF-8; rename it (lockgate stores UTF-8 "
            "names only, so every revision is portable)"
        ) from None
    if _CONTROL.search(rel):
        raise InputError(f"{abs_path!r}: file name holds control characters; rename it")


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root + os.sep)


def _check_symlink(abs_path: str, rel: str, real_root: str) -> str:
    target = os.readlink(abs_path)
    if os.path.isabs(target):
        raise InputError(
            f"{abs_path}: symlink to absolute path {target!r}; only relative links that stay "
            "inside the component are allowed"
        )
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if lexical == ".." or lexical.startswith("../"):
        raise InputError(f"{abs_path}: symlink {target!r} points outside the component")
    try:
        os.stat(abs_path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{abs_path}: symlink loop ({target!r}); break the loop") from exc
        # Dangling: still resolved below, as far as it goes, so that a link through
        # another link (``dot -> .``, ``esc -> dot/../gone``) cannot point outside.
    real = os.path.realpath(abs_path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise InputError(
            f"{abs_path}: symlink {target!r} resolves outside the component (through another "
            "symlink); point it inside"
        )
    return target


def _vouched(
    journal: ChangeJournal | None,
    walked: tuple[ScanResult, dict[str, _Listed], Any, Any, int] | None,
    component: Component,
    rules: tuple[str, ...],
    cache: _StatCache,
) -> dict[str, tuple[Any, ...]]:
    """The directories of ``component`` the journal vouches for: taken whole from
    ``cache`` by the source's last scan of it (``walked``), with the same rules, and no
    event in them since that scan began. Empty: read everything."""
    if journal is None or walked is None:
        return {}
    scan, dirs, seen_rules, seen_cache, generation = walked
    if seen_rules != rules or seen_cache is not cache or scan.component.path != component.path:
        return {}
    changed = journal.changed(generation)
    top = str(component.path)
    if changed is None or os.path.realpath(top) != top:
        return {}  # events name real paths: a layout through a symlink reads everything
    return {
        rel: d.cached
        for rel, d in dirs.items()
        if d.cached is not None and not changed(f"{top}/{rel[:-1]}" if rel else top)
    }


def _rewalked(dirs: dict[str, _Listed], cache: _StatCache) -> dict[str, _Listed]:
    """A walk's directories as the cache just written from it holds them: each one the
    next scan would take whole (same names and stat fields, signed, past the racy
    window) carries its new entry, the others none."""
    out = {}
    for rel, d in dirs.items():
        entry = cache.dirs.get(rel)
        whole = (
            entry is not None
            and d.sig is not None
            and entry[_D_SIGNED]
            and entry[_D_SIG] == d.sig
            and entry[_D_NAMES] == d.names
            and entry[_D_NEWEST] < cache.trusted_before
        )
        out[rel] = d._replace(cached=entry if whole else None)
    return out
