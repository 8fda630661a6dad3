"""Builtin plugin ``workspace``: components are directories in workspaces on disk.

Layout (``workspaces.layout``, default ``{workspace}/{type}/{component}`` under
``workspaces.root``): each segment is a placeholder or a literal directory name.

Scanning never follows a symlink and refuses, naming the path: a symlink whose target
leaves the component (or is absolute), a symlink loop, a device, FIFO or socket, a name
that is not UTF-8 or holds control characters. A symlink that stays inside is stored as a
symlink. Ignored: VCS directories, ``__pycache__``, ``*.pyc``, editor swap and backup
files, plus gitignore-style patterns from ``.lockgateignore`` files (project root,
workspace root, component root; each matched against paths relative to the component)
and ``workspaces.ignore``.

A stat cache per component (``.lockgate/cache/stat/``) maps (size, mtime_ns, ctime_ns,
inode) to the digest last stored, so restaging an unchanged component hashes nothing.
As in git, an entry whose mtime or ctime is not clearly older than the cache file
itself (by :data:`RACY_WINDOW_NS`) is "racily clean" — it may have changed within the
timestamp granularity after it was hashed — and is hashed again.
"""

from __future__ import annotations

import errno
import marshal
import os
import posixpath
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from lockgate.core.contracts import (
    Component,
    ComponentSpec,
    Discovery,
    FileStat,
    ScannedFile,
    ScanResult,
)
from lockgate.core.models import Issue, RoleContext, Severity
from lockgate.core.refs import ComponentRef, check_name
from lockgate.core.specs import read_spec
from lockgate.core.structure import did_you_mean
from lockgate.errors import ConfigError, InputError, LockgateError, NotFoundError
from lockgate.hookspecs import hookimpl

__all__ = ["WorkspaceSource"]

IGNORE_FILE = ".lockgateignore"
CACHE_VERSION = 2
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
# Names that may be ignored by the builtin rules, or are not plain printable ASCII: only
# these take the slow path through the name checks and ignore rules.
_UNUSUAL_NAME = re.compile(
    r"^[.#]|[^\x20-\x7e]|~$|\.(?:pyc|pyo|swp|swo|swx|swn|orig|rej|bak)$"
    r"|^(?:4913|Thumbs\.db|__pycache__|CVS)$"
)


@hookimpl
def register_sources(register: Any) -> None:
    register("workspace", lambda ctx: WorkspaceSource.from_context(ctx))


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


@attrs.frozen
class Layout:
    """``{workspace}/{type}/{component}`` parsed into segments."""

    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Layout:
        segments = tuple(s for s in text.strip("/").split("/") if s)
        allowed = {"{workspace}", "{type}", "{component}"}
        for seg in segments:
            if "{" in seg and seg not in allowed:
                raise ConfigError(
                    f"workspaces.layout {text!r}: segment {seg!r} must be exactly one of "
                    "{workspace}, {type}, {component} or a plain directory name"
                )
            if "{" not in seg:
                check_name("layout directory", seg)
        for required in ("{workspace}", "{component}"):
            if segments.count(required) != 1:
                raise ConfigError(f"workspaces.layout {text!r} must contain {required} once")
        if segments.count("{type}") > 1:
            raise ConfigError(f"workspaces.layout {text!r} has {{type}} more than once")
        return cls(segments)


class WorkspaceSource:
    """Components as directories under ``workspaces.root``."""

    def __init__(
        self,
        project_root: Path,
        root: Path,
        layout: Layout,
        cache_dir: Path,
        extra_ignore: Sequence[str] = (),
    ) -> None:
        self.project_root = project_root
        self.root = root
        self.layout = layout
        self.cache_dir = cache_dir
        self.extra_ignore = tuple(extra_ignore)
        # Loaded stat caches, kept while their file is unchanged: a long-lived process
        # (the watcher) rescans without decoding the cache every time.
        self._loaded: dict[ComponentRef, tuple[tuple[int, int, int], Any]] = {}

    @classmethod
    def from_context(cls, ctx: RoleContext) -> WorkspaceSource:
        options = ctx.options
        root = (ctx.project_root / str(options.get("root", "workspaces"))).resolve()
        if not root.is_relative_to(ctx.project_root.resolve()):
            raise ConfigError(f"workspaces.root {options.get('root')!r} leaves the project")
        return cls(
            project_root=ctx.project_root,
            root=root,
            layout=Layout.parse(str(options.get("layout", "{workspace}/{type}/{component}"))),
            cache_dir=ctx.state_dir / "cache" / "stat",
            extra_ignore=tuple(options.get("ignore", ())),
        )

    # ------------------------------------------------------------------ discovery

    def discover(self, workspaces: Sequence[str] | None = None) -> Discovery:
        found: list[Component] = []
        problems: list[Issue] = []
        wanted = set(workspaces) if workspaces is not None else None
        self._walk(self.root, 0, {}, found, problems, wanted)
        by_ref: dict[ComponentRef, list[Component]] = {}
        for comp in found:
            by_ref.setdefault(comp.ref, []).append(comp)
        unique = []
        for ref, comps in sorted(by_ref.items()):
            if len(comps) == 1:
                unique.append(comps[0])
                continue
            places = " and ".join(str(c.path.relative_to(self.root)) for c in comps)
            problems.append(
                Issue(Severity.ERROR, "duplicate-component", f"{ref} is found twice: {places}",
                      path=str(comps[0].path))
            )  # fmt: skip
        return Discovery(tuple(unique), tuple(problems))

    def _walk(
        self,
        directory: Path,
        depth: int,
        values: dict[str, str],
        found: list[Component],
        problems: list[Issue],
        wanted: set[str] | None,
    ) -> None:
        segment = self.layout.segments[depth]
        if "{" not in segment:
            child = directory / segment
            if child.is_dir():
                self._descend(child, depth, values, found, problems, wanted)
            return
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            return
        key = segment[1:-1]
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            if is_default_ignored(entry.name, is_dir=True):
                continue
            if key == "workspace" and wanted is not None and entry.name not in wanted:
                continue
            try:
                check_name({"component": "component id"}.get(key, key), entry.name)
            except InputError as exc:
                problems.append(Issue(Severity.ERROR, "bad-name", str(exc), path=entry.path))
                continue
            self._descend(
                Path(entry.path), depth, {**values, key: entry.name}, found, problems, wanted
            )

    def _descend(
        self,
        path: Path,
        depth: int,
        values: dict[str, str],
        found: list[Component],
        problems: list[Issue],
        wanted: set[str] | None,
    ) -> None:
        if depth + 1 < len(self.layout.segments):
            self._walk(path, depth + 1, values, found, problems, wanted)
            return
        ref = ComponentRef(values["workspace"], values["component"])
        try:
            spec = self._read_spec(path)
        except LockgateError as exc:
            problems.append(Issue(Severity.ERROR, "bad-component-yaml", str(exc), path=str(path)))
            return
        found.append(Component(ref, values.get("type", "component"), path, spec))

    def _read_spec(self, path: Path) -> ComponentSpec:
        return read_spec(path, cache_dir=self.cache_dir.parent / "yaml")

    def find(self, ref: ComponentRef) -> Component:
        discovery = self.discover([ref.workspace])
        for comp in discovery.components:
            if comp.ref == ref:
                return comp
        for problem in discovery.problems:
            if problem.path and Path(problem.path).name == ref.component_id:
                raise InputError(problem.message)
        known = [c.ref.component_id for c in discovery.components]
        hint = did_you_mean(ref.component_id, known) if known else ""
        where = self.root / ref.workspace
        if not where.is_dir():
            return _raise_not_found(f"no workspace '{ref.workspace}' under {self.root}")
        return _raise_not_found(
            f"no component '{ref}' in {where} (layout {'/'.join(self.layout.segments)})"
            + (hint.replace("; valid keys:", "; components there:") if hint else "")
        )

    # ------------------------------------------------------------------ scanning

    def scan(self, component: Component) -> ScanResult:
        # The hot loop of staging and of the watcher: one lstat per entry, everything else
        # decided in C where it can be (one regex for unusual names, tuple compares).
        root = component.path
        matcher = self._matcher(component)
        cache, cache_mtime, cache_revision = self._load_cache(component.ref)
        trusted_before = cache_mtime - RACY_WINDOW_NS
        files: list[ScannedFile] = []
        append = files.append
        clean = 0
        real_root = os.path.realpath(root)
        unusual = _UNUSUAL_NAME.search
        new_stat = tuple.__new__
        stack = [("", str(root))]
        while stack:
            rel_dir, abs_dir = stack.pop()
            with os.scandir(abs_dir) as it:
                for entry in it:
                    name = entry.name
                    st = entry.stat(follow_symlinks=False)
                    fmt = st.st_mode & 0o170000
                    if unusual(name) is not None:
                        _check_file_name(name, entry.path)
                        if is_default_ignored(name, is_dir=fmt == _DIR):
                            continue
                    rel = rel_dir + name
                    if fmt == _DIR:
                        if matcher is None or not matcher.match_file(rel + "/"):
                            stack.append((rel + "/", entry.path))
                        continue
                    if matcher is not None and matcher.match_file(rel):
                        continue
                    if fmt == _REG:
                        kind: Literal["file", "exec"] = "exec" if st.st_mode & 0o111 else "file"
                        key = new_stat(
                            FileStat, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                        )
                        cached = cache.get(rel)
                        if (
                            cached is not None
                            and cached[0] == key
                            and cached[1] == kind
                            # Racily clean entries (changed within the timestamp
                            # granularity of the cache write) are hashed again.
                            and st.st_mtime_ns < trusted_before
                            and st.st_ctime_ns < trusted_before
                        ):
                            append(new_stat(ScannedFile, (rel, kind, key, cached[2], None)))
                            clean += 1
                        else:
                            append(new_stat(ScannedFile, (rel, kind, key, None, None)))
                    elif fmt == _LNK:
                        target = _check_symlink(entry.path, rel, real_root)
                        size = len(target.encode())
                        cached = cache.get(rel)
                        if cached is not None and cached[1] == "symlink" and cached[2] == target:
                            clean += 1
                        append(ScannedFile(rel, "symlink", FileStat(size, 0, 0, 0), None, target))
                    else:
                        raise InputError(
                            f"{entry.path}: is a {_special_kind(st.st_mode)}; components may "
                            "hold only regular files and symlinks — remove it or add it to "
                            ".lockgateignore"
                        )
        # Left in directory order: the manifest sorts its entries itself.
        # Every entry clean and none added or removed: the tree is the cached revision.
        same = clean == len(files) == len(cache) and cache_revision is not None
        return ScanResult(component, tuple(files), cache_revision if same else None)

    def _matcher(self, component: Component) -> Any:
        lines = list(self.extra_ignore)
        for directory in (self.project_root, self.root / component.ref.workspace, component.path):
            ignore = directory / IGNORE_FILE
            if ignore.is_file():
                lines.extend(ignore.read_text(encoding="utf-8", errors="replace").splitlines())
        lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            return None
        import pathspec

        return pathspec.GitIgnoreSpec.from_lines(lines)

    # ------------------------------------------------------------------ stat cache

    def _cache_path(self, ref: ComponentRef) -> Path:
        return self.cache_dir / ref.workspace / ref.component_id

    def _load_cache(self, ref: ComponentRef) -> tuple[dict[str, Any], int, str | None]:
        path = self._cache_path(ref)
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                cache_mtime = st.st_mtime_ns
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                kept = self._loaded.get(ref)
                if kept is not None and kept[0] == key:
                    data = kept[1]
                else:
                    # marshal.loads on bytes: marshal.load(fh) reads piecewise, 5x slower
                    data = marshal.loads(fh.read())
                    self._loaded[ref] = (key, data)
        except (OSError, EOFError, ValueError, TypeError):
            return {}, 0, None
        if not isinstance(data, dict) or data.get("v") != CACHE_VERSION:
            return {}, 0, None
        files = data.get("files")
        if not isinstance(files, dict):
            return {}, 0, None
        revision = data.get("revision")
        return files, cache_mtime, revision if isinstance(revision, str) else None

    def remember(
        self, scan: ScanResult, digests: dict[str, str], revision: str | None = None
    ) -> None:
        files: dict[str, tuple[Any, ...]] = {}
        for f in scan.files:
            if f.kind == "symlink":
                files[f.path] = ((), "symlink", f.target)
                continue
            digest = f.digest or digests.get(f.path)
            if digest is None:
                revision = None  # the cache no longer describes the whole tree
                continue
            files[f.path] = (tuple(f.stat), f.kind, digest)
        path = self._cache_path(scan.component.ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        data = {"v": CACHE_VERSION, "revision": revision, "files": files}
        with open(tmp, "wb") as fh:
            fh.write(marshal.dumps(data))
        os.replace(tmp, path)


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
