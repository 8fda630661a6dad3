"""Builtin plugin ``directory``: a stage is a directory of atomically swapped symlinks.

Each deployed component is an entry ``<dir>/<component_id>``: a relative symlink to the
immutable release directory of its revision, which the revision handle's
``materialize()`` asks of the content store (the ``local`` store's release cache,
``.lockgate/releases/<revision>/``: the kernel verified it before the switch). With a
content store that keeps no releases, the target lays the revision out itself in its own
releases directory (``.lockgate/releases/`` too: ``LocalReleases`` over the store's
``open``, every digest checked as it is written), and removes those ``gc`` does not keep
(``collect``, the ``Collectable`` capability). ``check`` and ``strays`` accept an entry
into either releases directory, the target's own or the one the store reports. A switch
writes a temporary symlink beside the entry, renames it over the entry (``rename(2)`` is
atomic) and fsyncs the directory, so a reader sees the old tree or the new one, never a
mix and never nothing.

Several entries at once (the ``GroupSwitch`` capability, what a pipeline run uses): the
stage directory becomes a *generation*, as a Nix profile is. ``<dir>`` is then a relative
symlink to a sibling directory ``.<name>.gen-<n>`` holding the entries; a group switch
writes the next generation beside it (the entries not switched copied, link for link),
fsyncs it, and renames a new ``<dir>`` symlink over the old one: one ``rename(2)``, so a
reader that resolves ``<dir>`` once (``realpath``, or a directory descriptor it reads
relative to) sees every member as before or every member as switched. Paths through
``<dir>`` (``<dir>/<id>/...``) resolve as before, and a single switch still swaps one
entry inside the current generation. The first group switch of a stage that is still a
plain directory exchanges it with the symlink atomically (``renameat2`` with
``RENAME_EXCHANGE``, Linux); where that is not available the directory is renamed aside
first (the one moment ``<dir>`` is missing; a switch after a crash there finishes the
swap). The old directory is kept as generation 0. The current generation and the
``KEEP_GENERATIONS - 1`` before it are kept, so a reader in the middle of reading one
is not cut short by the next switch; older ones are removed (only the links lockgate
put there; anything else stays).

Options (``stages.<stage>.targets[]``)::

    - kind: directory
      options:
        path: production        # default: stages/<stage>; must stay inside the project
        generations: true       # false: <dir> stays a plain directory, and a pipeline
                                # run switches its members one by one
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lockgate.builtin_plugins.local_releases import RELEASES_DIRNAME, LocalReleases
from lockgate.plugin import (
    ConfigError,
    ConflictError,
    InputError,
    MissingCapabilityError,
    Prepared,
    PreparedGroup,
    RevisionHandle,
    RoleContext,
    fsync_dir,
    hookimpl,
    name_problem,
)

if TYPE_CHECKING:
    from lockgate.plugin import ContentStore, ReleaseCache

_REVISION = re.compile(r"[0-9a-f]{64}")
_TMP = ".tmp-"
_GEN = ".gen-"
_LINK = ".link-"
KEEP_GENERATIONS = 3
"""Generations kept: the current one and the two before it."""


@hookimpl
def register_targets(register: Any) -> None:
    register("directory", DirectoryTarget.from_context)


class DirectoryTarget:
    """Entries ``<dir>/<component_id>`` pointing at release directories.

    ``releases`` is where this target lays out the releases of a content store that keeps
    none; ``content`` returns the project's content store (None: unknown, as in a target
    built by hand), asked where its releases are when it keeps them.
    """

    concurrent_switches = True
    """Switches of different components touch different entries (each its own rename,
    its own temporary link), so they may run at the same time
    (``target_concurrent_switches``)."""

    def __init__(
        self,
        directory: Path,
        releases: Path,
        content: Callable[[], Any] | None = None,
        *,
        generations: bool = True,
    ) -> None:
        self.directory = directory
        self.releases = releases
        self._content = content
        self.group_switch = generations

    @classmethod
    def from_context(cls, ctx: RoleContext) -> DirectoryTarget:
        stage = str(ctx.options.get("stage", "stage"))
        raw = ctx.options.get("path") or f"stages/{stage}"
        unknown = sorted(set(ctx.options) - {"stage", "path", "generations"})
        if unknown:
            raise ConfigError(
                f"stages.{stage}.targets: unknown option '{unknown[0]}' for a directory "
                "target (options: path, generations)"
            )
        generations = ctx.options.get("generations", True)
        if not isinstance(generations, bool):
            raise ConfigError(
                f"stages.{stage}.targets: generations: {generations!r} is not true or false"
            )
        root = ctx.project_root.resolve()
        directory = _stage_path(root / str(raw))
        if directory == root or root not in directory.parents:
            raise ConfigError(
                f"stages.{stage}.targets: path '{raw}' is outside the project (or is the "
                f"project itself); give a directory inside it, such as stages/{stage}"
            )
        if ctx.state_dir.resolve() in (directory, *directory.parents):
            raise ConfigError(f"stages.{stage}.targets: path '{raw}' is inside .lockgate/")
        return cls(
            directory, ctx.state_dir / RELEASES_DIRNAME, ctx.content, generations=generations
        )

    # ------------------------------------------------------------------ the switch

    def _entry(self, component_id: str, prefix: str = "", suffix: str = "") -> str:
        """``<dir>/<prefix><component_id><suffix>``, refused unless it is an entry of
        ``<dir>`` itself: ids come back from the state store, which may have been edited."""
        problem = name_problem(component_id)
        entry = os.path.join(self.directory, f"{prefix}{component_id}{suffix}")
        if problem is None and os.path.dirname(entry) != str(self.directory):
            problem = "is not a single path segment"
        if problem is not None:
            raise InputError(
                f"component id {component_id!r} {problem}: refusing to deploy it outside the "
                f"stage directory {self.directory}"
            )
        return entry

    def prepare(self, component_id: str, revision: RevisionHandle | None) -> Prepared:
        self._finish_swap()
        os.makedirs(self.directory, exist_ok=True)
        self._sweep(component_id)
        if revision is None:
            return Prepared(component_id, None, None)
        release = self._release(component_id, revision)
        tmp = self._entry(component_id, ".", f"{_TMP}{uuid.uuid4().hex[:12]}")
        os.symlink(os.path.relpath(release, self.directory), tmp)
        return Prepared(component_id, revision.revision, tmp)

    def _own_release(self, component_id: str, revision: RevisionHandle) -> Path:
        """The release of ``revision`` laid out and verified by this target, for a content
        store that keeps none: as the kernel does with the ``local`` store's, one that
        fails verification is laid out again unless this stage deploys it, else refused."""
        releases = LocalReleases(self.releases, revision.store)
        rev = revision.revision
        release = releases.ensure(rev)
        problems = releases.verify(rev)
        if problems and rev not in self.deployed().values():
            releases.remove(rev)
            release = releases.ensure(rev)
            problems = releases.verify(rev)
        if problems:
            raise ConflictError(
                f"{component_id}: the release of {rev[:12]} is damaged ({problems[0]}); "
                "run 'lockgate verify'"
            )
        return release

    def _release(self, component_id: str, revision: RevisionHandle) -> Path:
        try:
            return revision.materialize()
        except MissingCapabilityError:  # the store keeps no releases: lay it out here
            return self._own_release(component_id, revision)

    def commit(self, prepared: Prepared) -> None:
        entry = self._entry(prepared.component_id)
        if prepared.revision is None:
            gone = self._entry(prepared.component_id, ".", f"{_TMP}{uuid.uuid4().hex[:12]}")
            try:
                os.rename(entry, gone)
            except FileNotFoundError:
                return
            os.unlink(gone)
        else:
            token = str(prepared.token)
            if os.path.dirname(token) != str(self.directory):
                raise InputError(f"{token!r} is not a temporary link this target prepared")
            os.rename(token, entry)
        fsync_dir(self.directory)

    def abort(self, prepared: Prepared) -> None:
        if prepared.token is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(prepared.token))

    def _sweep(self, component_id: str) -> None:
        """Remove temporary links a crashed switch of this component left (switches of one
        component are serialized: another component's links are not touched)."""
        self._entry(component_id)
        prefix = f".{component_id}{_TMP}"
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.is_symlink():
                    os.unlink(entry.path)

    # ------------------------------------------------------------------ generations

    def _generation(self, number: int) -> Path:
        return self.directory.parent / f".{self.directory.name}{_GEN}{number:06d}"

    def _generations(self) -> dict[int, Path]:
        """Every generation directory beside ``<dir>``, by number."""
        prefix = f".{self.directory.name}{_GEN}"
        found: dict[int, Path] = {}
        try:
            names = os.listdir(self.directory.parent)
        except FileNotFoundError:
            return found
        for name in names:
            number = name[len(prefix) :]
            if name.startswith(prefix) and number.isdigit():
                found[int(number)] = self.directory.parent / name
        return found

    def _current(self) -> int | None:
        """The generation ``<dir>`` points at (None: a plain directory, or nothing)."""
        try:
            link = os.readlink(self.directory)
        except OSError:
            return None
        prefix = f".{self.directory.name}{_GEN}"
        number = link[len(prefix) :]
        return int(number) if link.startswith(prefix) and number.isdigit() else None

    def _finish_swap(self) -> None:
        """A group switch killed between renaming a plain ``<dir>`` aside and putting its
        symlink in place (only where an atomic exchange is not available) left ``<dir>``
        missing: put the prepared symlink in place. Recovery then brings every entry to
        what the pointers say."""
        if os.path.lexists(self.directory):
            return
        parent = self.directory.parent
        prefix = f".{self.directory.name}{_LINK}"
        with contextlib.suppress(FileNotFoundError):
            for name in sorted(os.listdir(parent)):
                path = parent / name
                if name.startswith(prefix) and (parent / os.readlink(path)).is_dir():
                    os.rename(path, self.directory)
                    fsync_dir(parent)
                    return

    def _sweep_group(self) -> None:
        """Remove what an interrupted group switch left: its symlink, and generations
        newer than the current one (prepared, never committed)."""
        parent = self.directory.parent
        prefix = f".{self.directory.name}{_LINK}"
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(parent):
                if name.startswith(prefix) and os.path.islink(parent / name):
                    os.unlink(parent / name)
        current = self._current()
        for number, path in self._generations().items():
            if current is None or number > current:
                _remove_generation(path)

    def prepare_group(self, changes: Mapping[str, RevisionHandle | None]) -> PreparedGroup:
        """The next generation: the current entries, with ``changes`` applied."""
        self._finish_swap()
        os.makedirs(self.directory.parent, exist_ok=True)
        self._sweep_group()
        for component_id in changes:
            self._entry(component_id)  # refuses an id that is not one path segment
        number = max(self._generations(), default=0) + 1
        generation = self._generation(number)
        os.mkdir(generation)
        try:
            kept: dict[str, str] = {}
            with contextlib.suppress(FileNotFoundError), os.scandir(self.directory) as found:
                for entry in found:
                    if not entry.name.startswith(".") and entry.is_symlink():
                        kept[entry.name] = os.readlink(entry.path)
            for component_id, handle in changes.items():
                kept.pop(component_id, None)
                if handle is not None:
                    release = self._release(component_id, handle)
                    kept[component_id] = os.path.relpath(release, generation)
            for name, link in kept.items():
                os.symlink(link, generation / name)
            fsync_dir(generation)
            swap = self.directory.parent / f".{self.directory.name}{_LINK}{uuid.uuid4().hex[:12]}"
            os.symlink(generation.name, swap)
        except BaseException:
            _remove_generation(generation)
            raise
        revisions = tuple(
            sorted((cid, None if h is None else h.revision) for cid, h in changes.items())
        )
        return PreparedGroup(revisions, (str(generation), str(swap)))

    def commit_group(self, prepared: PreparedGroup) -> None:
        """Swap ``<dir>`` to the prepared generation: one rename."""
        generation, swap = (str(t) for t in cast("tuple[str, str]", prepared.token))
        parent = self.directory.parent
        if os.path.dirname(swap) != str(parent) or os.path.dirname(generation) != str(parent):
            raise InputError(f"{swap!r} is not a generation link this target prepared")
        if not os.path.lexists(swap):
            if self._current() == _number(generation):
                return  # committed already: a repeat after a crash
            raise ConflictError(
                f"the prepared generation {os.path.basename(generation)} of {self.directory} "
                "is gone (swept by a later switch); prepare the group again"
            )
        if os.path.isdir(self.directory) and not os.path.islink(self.directory):
            # A plain directory (a stage deployed before generations): it becomes
            # generation 0, exchanged with the symlink in one step where possible.
            old = self._generation(0)
            if not _exchange(swap, str(self.directory)):
                os.rename(self.directory, old)
                os.rename(swap, self.directory)
            else:
                os.rename(swap, old)
        else:
            os.rename(swap, self.directory)
        fsync_dir(parent)
        current = _number(generation)
        for number, path in self._generations().items():
            if number <= current - KEEP_GENERATIONS:
                _remove_generation(path)

    def abort_group(self, prepared: PreparedGroup) -> None:
        generation, swap = (str(t) for t in cast("tuple[str, str]", prepared.token))
        if self._current() == _number(generation):
            return  # committed: nothing to drop
        with contextlib.suppress(FileNotFoundError):
            os.unlink(swap)
        if os.path.dirname(generation) == str(self.directory.parent):
            _remove_generation(Path(generation))

    # ------------------------------------------------------------------ releases

    def _store_cache(self) -> ReleaseCache | None:
        """The content store when it keeps releases (``ReleaseCache``), else None (also
        when the store is unknown)."""
        store = self._content() if self._content is not None else None
        offers = all(callable(getattr(store, m, None)) for m in ("release", "has_release"))
        return cast("ReleaseCache", store) if offers else None

    def _release_paths(self, revision: str) -> set[str]:
        """Where an entry deploying ``revision`` may point, as real paths: this target's
        own release of it, and the store's when the store keeps it laid out."""
        found = {os.path.realpath(self.releases / revision)}
        cache = self._store_cache()
        if cache is not None and cache.has_release(revision):
            found.add(os.path.realpath(cache.release(revision)))
        return found

    def collect(self, keep: frozenset[str], dry_run: bool) -> list[str]:
        """``gc``: remove the releases this target laid out itself for revisions not in
        ``keep`` (nor deployed here), and return them. Nothing when the content store keeps
        releases: those are the store's, and ``gc`` removes them through its cache."""
        if self._store_cache() is not None:
            return []
        store = self._content() if self._content is not None else None
        releases = LocalReleases(self.releases, cast("ContentStore", store))
        spared = keep | set(self.deployed().values())
        doomed = [revision for revision in releases.revisions() if revision not in spared]
        if not dry_run:
            for revision in doomed:
                releases.remove(revision)
        return doomed

    # ------------------------------------------------------------------ inspecting

    def deployed(self) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_symlink():
                continue
            name = os.path.basename(os.readlink(entry.path).rstrip("/"))
            if _REVISION.fullmatch(name):
                found[entry.name] = name
        return found

    def location(self, component_id: str) -> str:
        return self._entry(component_id)

    def strays(self) -> list[str]:
        """Entries of the stage directory that deploy no component: a file, a directory,
        a link to anything but a release (what ``lockgate verify`` reports as unexplained).

        A temporary link an interrupted switch left (``.<id>.tmp-…`` into the releases)
        is not one: the next switch sweeps it, and ``check`` reports it meanwhile.
        """
        deployed = self.deployed()
        found: list[str] = []
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.name in deployed and entry.is_symlink():
                continue
            if entry.is_symlink() and _TMP in entry.name and entry.name.startswith("."):
                target = os.path.realpath(entry.path)
                name = os.path.basename(target)
                if _REVISION.fullmatch(name) and target in self._release_paths(name):
                    continue
            kind = "symlink" if entry.is_symlink() else "directory" if entry.is_dir() else "file"
            found.append(
                f"{os.path.relpath(entry.path)}: a {kind} that no stage pointer explains "
                "(put there outside lockgate?); remove it"
            )
        return found

    def check(self, component_id: str, revision: str) -> list[str]:
        entry = self._entry(component_id)
        where = os.path.relpath(entry)
        prefix = f".{component_id}{_TMP}"
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:  # the whole stage directory is gone: reported below
            names = []
        leftovers = [n for n in names if n.startswith(prefix)]
        if leftovers:
            return [f"{where}: a temporary link {leftovers[0]} was left by an interrupted switch"]
        if not os.path.lexists(entry):
            return [f"{where} is missing (expected revision {revision[:12]})"]
        if not os.path.islink(entry):
            return [f"{where} is not a symlink to a release; something replaced it"]
        target = os.path.realpath(entry)
        got = os.path.basename(target)
        if got != revision:
            return [f"{where} points at {got[:12]}, not the current revision {revision[:12]}"]
        if not os.path.isdir(target):
            return [f"{where} points at a missing release {revision[:12]}"]
        if target not in self._release_paths(revision):
            return [
                f"{where} points at {target}, not a release lockgate laid out; something "
                "replaced it"
            ]
        return []


def _stage_path(raw: Path) -> Path:
    """The stage directory ``raw`` names, its parents resolved but not itself when it is
    (or will be) a symlink to one of its own generations: a session must not pin the
    generation it found. Any other symlink is followed, as before generations."""
    if raw.name in ("", ".", ".."):
        return raw.resolve()
    path = raw.parent.resolve() / raw.name
    try:
        link = os.readlink(path)
    except OSError:
        return path
    return path if link.startswith(f".{raw.name}{_GEN}") else path.resolve()


def _number(generation: str) -> int:
    tail = os.path.basename(generation).rpartition(_GEN)[2]
    return int(tail) if tail.isdigit() else -1


def _remove_generation(path: Path) -> None:
    """Remove a generation: the links in it (lockgate's), then the directory when that
    leaves it empty (anything else put there stays, and so does the directory)."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _exchange(a: str, b: str) -> bool:
    """Exchange paths ``a`` and ``b`` atomically (``renameat2`` with ``RENAME_EXCHANGE``);
    False when this system or file system cannot."""
    import ctypes  # only for the one switch that turns a plain directory into generations

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), b)
