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

Options (``stages.<stage>.targets[]``)::

    - kind: directory
      options:
        path: production        # default: stages/<stage>; must stay inside the project
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lockgate.builtin_plugins.local_releases import RELEASES_DIRNAME, LocalReleases
from lockgate.plugin import (
    ConfigError,
    ConflictError,
    InputError,
    MissingCapabilityError,
    Prepared,
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


@hookimpl
def register_targets(register: Any) -> None:
    register("directory", DirectoryTarget.from_context)


class DirectoryTarget:
    """Entries ``<dir>/<component_id>`` pointing at release directories.

    ``releases`` is where this target lays out the releases of a content store that keeps
    none; ``content`` returns the project's content store (None: unknown, as in a target
    built by hand), asked where its releases are when it keeps them.
    """

    def __init__(
        self, directory: Path, releases: Path, content: Callable[[], Any] | None = None
    ) -> None:
        self.directory = directory
        self.releases = releases
        self._content = content

    @classmethod
    def from_context(cls, ctx: RoleContext) -> DirectoryTarget:
        stage = str(ctx.options.get("stage", "stage"))
        raw = ctx.options.get("path") or f"stages/{stage}"
        unknown = sorted(set(ctx.options) - {"stage", "path"})
        if unknown:
            raise ConfigError(
                f"stages.{stage}.targets: unknown option '{unknown[0]}' for a directory "
                "target (options: path)"
            )
        root = ctx.project_root.resolve()
        directory = (root / str(raw)).resolve()
        if directory == root or root not in directory.parents:
            raise ConfigError(
                f"stages.{stage}.targets: path '{raw}' is outside the project (or is the "
                f"project itself); give a directory inside it, such as stages/{stage}"
            )
        if ctx.state_dir.resolve() in (directory, *directory.parents):
            raise ConfigError(f"stages.{stage}.targets: path '{raw}' is inside .lockgate/")
        return cls(directory, ctx.state_dir / RELEASES_DIRNAME, ctx.content)

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
        os.makedirs(self.directory, exist_ok=True)
        self._sweep(component_id)
        if revision is None:
            return Prepared(component_id, None, None)
        try:
            release = revision.materialize()
        except MissingCapabilityError:  # the store keeps no releases: lay it out here
            release = self._own_release(component_id, revision)
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
        """Remove temporary links a crashed switch left (switches are serialized)."""
        self._entry(component_id)
        prefix = f".{component_id}{_TMP}"
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.is_symlink():
                    os.unlink(entry.path)

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
