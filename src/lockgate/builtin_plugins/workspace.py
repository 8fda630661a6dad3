"""Builtin plugin ``workspace``: components are directories in workspaces on disk.

Settings (``plugins.workspace:``; the old ``workspaces:`` keys are still read, as
deprecated)::

    root: workspaces                          # under the project root
    layout: "{workspace}/{type}/{component}"  # each segment a placeholder or a name
    ignore: []                                # gitignore-style patterns

Scanning never follows a symlink and refuses, naming the path: a symlink whose target
leaves the component (or is absolute), a symlink loop, a device, FIFO or socket, a name
that is not UTF-8 or holds control characters. A symlink that stays inside is stored as a
symlink. Ignored: VCS directories, ``__pycache__``, ``*.pyc``, editor swap and backup
files, plus gitignore-style patterns from ``.lockgateignore`` files (project root,
workspace root, component root; each matched against paths relative to the component)
and ``plugins.workspace.ignore``.

A stat cache per component (``.lockgate/cache/stat/``) maps (size, mtime_ns, ctime_ns,
inode) to the digest last stored, so restaging an unchanged component hashes nothing.
As in git, an entry whose mtime or ctime is not clearly older than the cache file
itself (by :data:`RACY_WINDOW_NS`) is "racily clean" — it may have changed within the
timestamp granularity after it was hashed — and is hashed again. The stat cache, the
walk and the ignore rules are in :mod:`lockgate.builtin_plugins._workspace_scan`.

Scanning, per directory: one listdir and one lstat per entry, both relative to the
directory's descriptor (no path walk). A directory whose names and packed stat fields
equal the cached ones (and whose files are all past the racy window) takes its files
from the cache without any per-entry Python; any other directory is checked entry by
entry. With a :class:`~lockgate.plugin.ChangeJournal` (``lockgate watch``'s, through
``use_journal``), a directory the last scan took whole from the same cache and that had
no event since that scan began is not even listed.
"""

from __future__ import annotations

import functools
import marshal
import os
import threading
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

import attrs

from lockgate.builtin_plugins._workspace_scan import (
    _D_KINDS,
    _D_LARGEST,
    _D_NAMES,
    _D_NEWEST,
    _D_SIG,
    _D_SIGNED,
    _D_SIZE,
    _D_SUBDIRS,
    _DIR_FLAGS,
    _FILE_STATS,
    _KIND_CODES,
    _NO_DIGEST,
    _STAT_KEY,
    CACHE_VERSION,
    IGNORE_FILE,
    _inside,
    _Listed,
    _pack_stats,
    _raise_not_found,
    _rewalked,
    _split,
    _StatCache,
    _vouched,
    _Walk,
    ignore_lines,
    is_default_ignored,
)
from lockgate.plugin import (
    ChangeJournal,
    Component,
    ComponentRef,
    ComponentSpec,
    ConfigError,
    Discovery,
    InputError,
    Issue,
    LockgateError,
    NotFoundError,
    RoleContext,
    ScannedFile,
    ScannedFiles,
    ScanResult,
    Severity,
    WatchHint,
    check_name,
    check_path_limits,
    did_you_mean,
    digest_bytes,
    hookimpl,
    read_spec,
    record,
)

__all__ = ["PathMapper", "WorkspaceSettings", "WorkspaceSource"]


@record
class WorkspaceSettings:
    """``plugins.workspace:`` — where components live and what is ignored."""

    root: str = "workspaces"
    layout: str = "{workspace}/{type}/{component}"
    ignore: list[str] = attrs.field(factory=list)


@hookimpl
def register_settings() -> type:
    return WorkspaceSettings


@hookimpl
def register_sources(register: Any) -> None:
    register("workspace", lambda ctx: WorkspaceSource.from_context(ctx))


@record
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
                    f"plugins.workspace.layout {text!r}: segment {seg!r} must be exactly one of "
                    "{workspace}, {type}, {component} or a plain directory name"
                )
            if "{" not in seg:
                check_name("layout directory", seg)
        for required in ("{workspace}", "{component}"):
            if segments.count(required) != 1:
                raise ConfigError(f"plugins.workspace.layout {text!r} must contain {required} once")
        if segments.count("{type}") > 1:
            raise ConfigError(f"plugins.workspace.layout {text!r} has {{type}} more than once")
        return cls(segments)


@record
class PathMapper:
    """The ``workspace`` source's :class:`~lockgate.plugin.WatchPaths`: turns an event's
    path into a :class:`~lockgate.plugin.WatchHint`, or None for a path that cannot matter.

    Which events matter is decided with the source's own rules (:func:`is_default_ignored`
    by name; patterns from ``.lockgateignore`` are applied by the rescan itself, which
    then finds nothing changed). Pure and immutable: called on watchdog's threads, once
    per event, on the plain ``str`` paths watchdog hands over (a ``Path`` per event would
    cost more than the mapping itself, hence the ``noqa: PTH`` below).
    """

    root: str
    segments: tuple[str, ...]
    wanted: frozenset[str] | None = None

    def hint(self, path: str, *, is_dir: bool) -> WatchHint | None:
        root = self.root
        if path == root:
            return WatchHint("workspace", None)
        if not path.startswith(root) or path[len(root) : len(root) + 1] != os.sep:
            return None
        parts = path[len(root) + 1 :].split(os.sep)
        ws_at = self.segments.index("{workspace}")
        n = len(self.segments)
        if len(parts) == 2 and parts[1] == IGNORE_FILE and not is_dir:
            # ROOT/WS/.lockgateignore applies to every component of WS.
            return WatchHint("rescan", parts[0]) if self._wanted(parts[0]) else None
        for i, (part, segment) in enumerate(zip(parts, self.segments, strict=False)):
            if "{" not in segment:
                if part != segment:
                    return None
                continue
            # Discovery skips hidden and ignored directories at every level of the layout.
            if part.startswith(".") or is_default_ignored(part, is_dir=True):
                return None
            if i == ws_at and not self._wanted(part):
                return None
        workspace = parts[ws_at] if len(parts) > ws_at else None
        if len(parts) < n:
            return WatchHint("workspace", workspace) if is_dir else None
        component_dir = os.sep.join((root, *parts[:n]))
        if len(parts) == n:
            return WatchHint("component", workspace, component_dir) if is_dir else None
        inner = parts[n:]
        for name in inner[:-1]:
            if is_default_ignored(name, is_dir=True):
                return None
        name = inner[-1]
        if name != IGNORE_FILE and is_default_ignored(name, is_dir=is_dir):
            return None
        return WatchHint("component", workspace, component_dir)

    def workspace_of(self, path: str) -> str | None:
        """The workspace a path under the root belongs to (None if it is not in one)."""
        if not path.startswith(self.root + os.sep):
            return None
        parts = path[len(self.root) + 1 :].split(os.sep)
        ws_at = self.segments.index("{workspace}")
        return parts[ws_at] if len(parts) > ws_at else None

    def _wanted(self, workspace: str) -> bool:
        return self.wanted is None or workspace in self.wanted


class WorkspaceSource:
    """Components as directories under ``plugins.workspace.root``."""

    local_files = True
    """The ``LocalFiles`` capability: staging reads files by path (the content store's
    fast paths apply)."""

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
        self._root_str, self._ws_str = str(project_root), str(root)
        self.layout = layout
        self.cache_dir = cache_dir
        self.extra_ignore = tuple(extra_ignore)
        # Loaded stat caches, kept while their file is unchanged: a long-lived process
        # (the watcher) rescans without decoding the cache every time.
        self._loaded: dict[ComponentRef, _StatCache] = {}
        # Each component's latest scan, its directory listings, rules, cache, generation.
        self._walks: dict[ComponentRef, tuple[ScanResult, dict[str, _Listed], Any, Any, int]]
        self._walks = {}
        self._journal: ChangeJournal | None = None
        self._real_root = os.path.realpath(root)

    def watch_paths(self, workspaces: Sequence[str] | None = None) -> PathMapper:
        """The :class:`~lockgate.plugin.Watchable` capability: ``plugins.workspace.root``,
        mapped by the layout (only ``workspaces``, when given)."""
        wanted = frozenset(workspaces) if workspaces else None
        return PathMapper(str(self.root), self.layout.segments, wanted)

    @classmethod
    def from_context(cls, ctx: RoleContext) -> WorkspaceSource:
        settings = ctx.settings if isinstance(ctx.settings, WorkspaceSettings) else None
        settings = settings or WorkspaceSettings()
        root = (ctx.project_root / settings.root).resolve()
        if not root.is_relative_to(ctx.project_root.resolve()):
            raise ConfigError(
                f"plugins.workspace.root {settings.root!r} leaves the project (through a "
                "symlink?); give a directory inside it"
            )
        return cls(
            project_root=ctx.project_root,
            root=root,
            layout=Layout.parse(settings.layout),
            cache_dir=ctx.state_dir / "cache" / "stat",
            extra_ignore=tuple(settings.ignore),
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
            if child.is_symlink() and not _inside(os.path.realpath(child), self._real_root):
                message = f"{child}: symlink to {os.readlink(child)!r} leaves {self.root}"
                problems.append(Issue(Severity.ERROR, "symlink-escape", message, path=str(child)))
                return
            if child.is_dir():
                self._descend(child, depth, values, found, problems, wanted)
            return
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            return
        except OSError as exc:
            # One unreadable directory is that directory's problem, not every workspace's.
            message = f"{directory}: cannot be read ({exc.strerror or exc}); fix its permissions"
            problems.append(Issue(Severity.ERROR, "unreadable", message, path=str(directory)))
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

    def use_journal(self, journal: ChangeJournal | None) -> None:
        """The :class:`~lockgate.plugin.TrustsEvents` capability (``lockgate watch``)."""
        self._journal = journal

    def scan(self, component: Component) -> ScanResult:
        # The hot path of staging and of the watcher: see "Scanning" in the module's
        # docstring.
        root = component.path
        rules = self._ignore_lines(component)
        cache = self._load_cache(component.ref)
        generation = self._journal.generation() if self._journal is not None else 0
        clean = _vouched(self._journal, self._walks.get(component.ref), component, rules, cache)
        fast = cache.rules == rules
        walk = _Walk(component, rules, cache)
        pieces: list[tuple[ScannedFile, ...] | str] = []  # a directory's files, or its name
        count = total = largest = 0
        top = None if "" in clean else os.open(root, _DIR_FLAGS)
        stack: list[tuple[str, str, int | None]] = [("", str(root), top)]
        try:
            while stack:
                rel_dir, abs_dir, fd = stack.pop()
                try:
                    start = count
                    whole = clean.get(rel_dir)
                    if whole is not None:
                        listing, sig = whole[_D_NAMES], whole[_D_SIG]
                    else:
                        fd = os.open(abs_dir, _DIR_FLAGS) if fd is None else fd
                        names, stats, listing, sig = _list(fd)
                        cached = cache.dirs.get(rel_dir)
                        if fast and _unchanged(cached, sig, listing, cache.trusted_before):
                            whole = cached
                    if whole is not None:
                        pieces.append(rel_dir)  # its files are built only if asked for
                        count += len(whole[_D_KINDS])
                        walk.clean += len(whole[_D_KINDS])
                        total += whole[_D_SIZE]
                        largest = max(largest, whole[_D_LARGEST])
                        subdirs = _split(whole[_D_SUBDIRS])
                        signed = True
                    else:
                        chunk, subdirs, signed = walk.directory(rel_dir, abs_dir, names, stats)
                        pieces.append(chunk)
                        count += len(chunk)
                        sizes = [f.stat.size for f in chunk]
                        total += sum(sizes)
                        largest = max(largest, *sizes) if sizes else largest
                    walk.dirs[rel_dir] = _Listed(
                        listing, sig, "\0".join(subdirs), signed and sig is not None, start, whole
                    )
                    for name in subdirs:
                        # Per directory, not per file: a tree too deep (or a path too
                        # long) to materialize is refused here, with its place.
                        check_path_limits(f"{rel_dir}{name}/", f"{abs_dir}/{name}")
                        child = None if fd is None else os.open(name, _DIR_FLAGS, dir_fd=fd)
                        stack.append((f"{rel_dir}{name}/", f"{abs_dir}/{name}", child))
                except FileNotFoundError:
                    raise  # gone meanwhile: callers tell that apart
                except OSError as exc:
                    raise _unreadable(exc, abs_dir) from exc
                finally:
                    if fd is not None:
                        os.close(fd)
            # Left in directory order: the manifest sorts its entries itself.
            # Every entry clean and none added or removed: the tree is the cached
            # revision.
            same = walk.clean == count == cache.total and cache.revision is not None

            def build() -> tuple[ScannedFile, ...]:
                return tuple(
                    chain.from_iterable(
                        cache.scanned(p) if isinstance(p, str) else p for p in pieces
                    )
                )

            files = ScannedFiles(build, count=count, total_size=total, largest=largest)
            result = ScanResult(component, files, cache.revision if same else None)
        finally:
            for _, _, fd in stack:
                if fd is not None:
                    os.close(fd)
        self._walks[component.ref] = (result, walk.dirs, rules, cache, generation)
        return result

    def _ignore_lines(self, component: Component) -> tuple[str, ...]:
        places = (self._root_str, f"{self._ws_str}/{component.ref.workspace}", component.path)
        return ignore_lines(self.extra_ignore, places)

    # ------------------------------------------------------------------ stat cache

    def _cache_path(self, ref: ComponentRef) -> Path:
        return self.cache_dir / ref.workspace / ref.component_id

    def _load_cache(self, ref: ComponentRef) -> _StatCache:
        path = self._cache_path(ref)
        try:
            kept = self._loaded.get(ref)
            if kept is not None:  # one stat: the file replaced, or not (the usual case)
                st = os.stat(path)
                if kept.key == (st.st_mtime_ns, st.st_size, st.st_ino):
                    return kept
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                # One read, then marshal.loads on the bytes (marshal.load(fh) reads
                # piecewise, 5x slower). The trailing checksum guards the digests
                # against a damaged file: a wrong cached digest would be recorded.
                raw = fh.read()
                body, check = raw[:-64], raw[-64:]
                if digest_bytes(body).encode() != check:
                    return _StatCache.EMPTY
                cache = _StatCache.decode(marshal.loads(body), key)
        except (OSError, EOFError, ValueError, TypeError):
            return _StatCache.EMPTY
        self._loaded[ref] = cache
        return cache

    def open_file(self, component: Component, path: str) -> BinaryIO:
        """File ``path`` of ``component``, opened without following a symlink."""
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InputError(f"{path!r} is not a relative path inside {component.ref}")
        full = os.path.join(component.path, path)
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise NotFoundError(f"{full}: cannot be read ({exc.strerror})") from exc
        return os.fdopen(fd, "rb")

    def remember(
        self, scan: ScanResult, digests: dict[str, str], revision: str | None = None
    ) -> None:
        ref = scan.component.ref
        walked = self._walks.get(ref)
        if walked is None or walked[0] is not scan:
            return  # not this source's latest scan of the component: nothing to vouch for
        files = scan.files
        dirs: dict[str, tuple[Any, ...]] = {}
        listed = sorted(walked[1].items(), key=lambda item: item[1].start)
        ends = [d.start for _, d in listed[1:]] + [len(files)]
        for (rel_dir, d), end in zip(listed, ends, strict=True):
            if d.cached is not None:  # taken whole from the cache: nothing in it changed
                dirs[rel_dir] = d.cached
                continue
            names: list[str] = []
            kinds: list[str] = []
            fstats: list[int] = []
            known: list[str] = []
            targets: list[str] = []
            signed = d.signed
            newest = size = biggest = 0
            cut = len(rel_dir)
            for f in files[d.start : end]:
                if f.kind == "symlink":
                    digest = _NO_DIGEST
                    signed = False  # links are checked on every scan (their target may move)
                else:
                    digest = f.digest or digests.get(f.path) or ""
                    if not digest:
                        revision, signed = None, False  # no longer the whole tree
                        continue
                    newest = max(newest, f.stat.mtime_ns, f.stat.ctime_ns)
                size += f.stat.size
                biggest = max(biggest, f.stat.size)
                names.append(f.path[cut:])
                kinds.append(_KIND_CODES[f.kind])
                fstats.extend(f.stat)
                known.append(digest)
                targets.append(f.target or "")
            dirs[rel_dir] = (
                d.names, d.sig or b"", d.subdirs, newest, signed,
                "\0".join(names), "".join(kinds), _FILE_STATS.pack_n(fstats), "".join(known),
                "\0".join(targets) if any(targets) else "", size, biggest,
            )  # fmt: skip
        data = {"v": CACHE_VERSION, "revision": revision, "rules": walked[2], "dirs": dirs}
        path = self._cache_path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as fh:
            body = marshal.dumps(data)
            fh.write(body + digest_bytes(body).encode())
            fh.flush()
            st = os.fstat(fh.fileno())
        os.replace(tmp, path)
        if self._journal is not None:
            # The next scan may then take from this cache what the walk saw and no event
            # touched since (_vouched): the cache as _load_cache will find it.
            cache = _StatCache.decode(data, (st.st_mtime_ns, st.st_size, st.st_ino))
            self._loaded[ref] = cache
            self._walks[ref] = (scan, _rewalked(walked[1], cache), walked[2], cache, walked[4])


def _list(fd: int) -> tuple[list[str], list[tuple[int, ...]], str, bytes | None]:
    """A directory's names (sorted), their stat fields, the names joined, the fields packed."""
    names = os.listdir(fd)
    names.sort()
    stat_at = functools.partial(os.stat, dir_fd=fd, follow_symlinks=False)
    stats = list(map(_STAT_KEY, map(stat_at, names)))
    return names, stats, "\0".join(names), _pack_stats(stats)


def _unchanged(
    cached: tuple[Any, ...] | None, sig: bytes | None, listing: str, trusted_before: int
) -> TypeGuard[tuple[Any, ...]]:
    """Whether a directory may be taken whole from its cache entry: signed, the same
    names and packed stat fields, and every file past the racy window."""
    return (
        cached is not None
        and cached[_D_SIGNED]
        and cached[_D_SIG] == sig
        and cached[_D_NAMES] == listing
        and cached[_D_NEWEST] < trusted_before
    )


def _unreadable(exc: OSError, abs_dir: str) -> InputError:
    name = exc.filename if isinstance(exc.filename, str) else ""
    where = os.path.join(abs_dir, name) if name else abs_dir
    return InputError(
        f"{where}: cannot be read ({exc.strerror or exc}); fix its "
        f"permissions or list it in {IGNORE_FILE}"
    )
