"""The in-memory source: components defined in code, the twin of the builtin ``workspace``.

Components are created and changed with the :class:`~lockgate.testing.ComponentFiles`
methods (``create``, ``write``, ``symlink``, ``delete``). Every write gives the file a
new stat (a tick of the source's own clock), so a scan tells a changed file from an
unchanged one as the workspace source does with ``stat``. Nothing is on disk: a file's
bytes are read with :meth:`MemorySource.open_file`, and ``Component.path`` is a name
that only says where the component came from.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import attrs

from lockgate.contracts.refs import ComponentRef, check_name
from lockgate.contracts.source import (
    Component,
    ComponentSpec,
    Discovery,
    FileStat,
    ScannedFile,
    ScanResult,
    Source,
)
from lockgate.errors import InputError, NotFoundError

__all__ = ["MemorySource"]


@attrs.define
class _File:
    kind: Literal["file", "exec", "symlink"]
    data: bytes
    stat: FileStat
    target: str | None = None


@attrs.define
class _Component:
    component: Component
    files: dict[str, _File] = attrs.field(factory=dict)


class MemorySource:
    """Components and their files held in process memory, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._components: dict[ComponentRef, _Component] = {}
        self._clock = itertools.count(1)
        self._inodes = itertools.count(1)
        self._known: dict[ComponentRef, tuple[dict[str, tuple[FileStat, str]], str | None]] = {}
        """What :meth:`remember` learnt: each file's stat and digest, and the revision."""

    # ------------------------------------------------------------------ defining

    def create(
        self, ref: str, *, component_type: str = "scripts", spec: ComponentSpec | None = None
    ) -> None:
        """Make component ``ref`` exist (empty if new) of ``component_type``."""
        parsed = ComponentRef.parse(ref)
        check_name("component type", component_type)
        path = Path("memory:", parsed.workspace, component_type, parsed.component_id)
        component = Component(parsed, component_type, path, spec or ComponentSpec())
        with self._lock:
            found = self._components.get(parsed)
            files = found.files if found is not None else {}
            self._components[parsed] = _Component(component, files)

    def write(self, ref: str, path: str, data: bytes, *, executable: bool = False) -> None:
        """Create or replace the file ``path`` of component ``ref``."""
        self._put(ref, path, "exec" if executable else "file", bytes(data))

    def symlink(self, ref: str, path: str, target: str) -> None:
        """Create the symlink ``path`` -> ``target``."""
        self._put(ref, path, "symlink", target.encode(), target)

    def delete(self, ref: str, path: str) -> None:
        """Remove the file ``path`` (and everything under it, for a directory)."""
        with self._lock:
            files = self._entry(ref).files
            for name in [n for n in files if n == path or n.startswith(f"{path}/")]:
                del files[name]

    def remove_component(self, ref: str) -> None:
        """Forget component ``ref`` altogether."""
        with self._lock:
            self._components.pop(ComponentRef.parse(ref), None)

    def _entry(self, ref: str) -> _Component:
        found = self._components.get(ComponentRef.parse(ref))
        if found is None:
            raise NotFoundError(f"no component '{ref}' in the memory source; create it first")
        return found

    def _put(
        self,
        ref: str,
        path: str,
        kind: Literal["file", "exec", "symlink"],
        data: bytes,
        target: str | None = None,
    ) -> None:
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InputError(f"{path!r} is not a relative path inside the component")
        with self._lock:
            files = self._entry(ref).files
            tick = next(self._clock)
            old = files.get(path)
            inode = old.stat.ino if old is not None else next(self._inodes)
            files[path] = _File(kind, data, FileStat(len(data), tick, tick, inode), target)

    # ------------------------------------------------------------------ the Source role

    def discover(self, workspaces: Sequence[str] | None = None) -> Discovery:
        with self._lock:
            found = sorted(self._components.items())
        wanted = set(workspaces) if workspaces is not None else None
        return Discovery(
            tuple(c.component for ref, c in found if wanted is None or ref.workspace in wanted)
        )

    def find(self, ref: ComponentRef) -> Component:
        with self._lock:
            found = self._components.get(ref)
        if found is None:
            raise NotFoundError(f"no component '{ref}' in the memory source")
        return found.component

    def scan(self, component: Component) -> ScanResult:
        with self._lock:
            found = self._components.get(component.ref)
            if found is None:
                raise NotFoundError(f"{component.ref}: the component is gone")
            files = dict(found.files)
            known, revision = self._known.get(component.ref, ({}, None))
        scanned = []
        for path, f in sorted(files.items()):
            remembered = known.get(path)
            clean = f.kind != "symlink" and remembered is not None and remembered[0] == f.stat
            digest = remembered[1] if clean and remembered is not None else None
            scanned.append(ScannedFile(path, f.kind, f.stat, digest, f.target))
        # The remembered revision holds only while every path and every stat is as it was.
        same = known.keys() == files.keys() and all(known[p][0] == f.stat for p, f in files.items())
        return ScanResult(component, tuple(scanned), revision if same else None)

    def remember(
        self, scan: ScanResult, digests: dict[str, str], revision: str | None = None
    ) -> None:
        known: dict[str, tuple[FileStat, str]] = {}
        for f in scan.files:
            if f.kind == "symlink":
                known[f.path] = (f.stat, "")
                continue
            digest = f.digest or digests.get(f.path)
            if digest is None:
                revision = None  # no longer the whole tree
                continue
            known[f.path] = (f.stat, digest)
        with self._lock:
            self._known[scan.component.ref] = (known, revision)

    def open_file(self, component: Component, path: str) -> BinaryIO:
        """The bytes of file ``path`` of ``component`` as they are now."""
        with self._lock:
            found = self._components.get(component.ref)
            entry = found.files.get(path) if found is not None else None
        if entry is None or entry.kind == "symlink":
            raise NotFoundError(f"{component.ref}: no file {path!r} in the memory source")
        return io.BytesIO(entry.data)


if TYPE_CHECKING:  # mypy checks the twin against the role's protocol and the suite's
    from lockgate.testing._files import ComponentFiles

    _source: Source = MemorySource()
    _files: ComponentFiles = MemorySource()
