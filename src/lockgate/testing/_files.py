"""How the source suite edits components behind a source's back, as a developer would.

A source has no write methods (components come from where developers keep them), so the
suite needs a second handle on the same components: a :class:`ComponentFiles`. A source
that reads directories is tested with :class:`DirectoryComponentFiles`; the in-memory
source is its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs

from lockgate.contracts.refs import ComponentRef
from lockgate.contracts.source import ComponentSpec, Source

__all__ = ["ComponentFiles", "DirectoryComponentFiles", "SourceFixture"]


class ComponentFiles(Protocol):
    """Create and change components (refs are ``workspace:id``, paths POSIX, relative)."""

    def create(
        self, ref: str, *, component_type: str = "scripts", spec: ComponentSpec | None = None
    ) -> None:
        """Make component ``ref`` exist (empty if new), described by ``spec`` if given."""

    def write(self, ref: str, path: str, data: bytes, *, executable: bool = False) -> None:
        """Create or replace the file ``path`` of the existing component ``ref``."""

    def symlink(self, ref: str, path: str, target: str) -> None:
        """Create the symlink ``path`` -> ``target`` (relative, inside the component)."""

    def delete(self, ref: str, path: str) -> None:
        """Remove the file or symlink ``path`` of component ``ref``."""


@attrs.frozen
class SourceFixture:
    """What :class:`~lockgate.testing.SourceConformance` needs: a fresh source holding no
    component, and the :class:`ComponentFiles` that changes what it finds."""

    source: Source
    files: ComponentFiles


class DirectoryComponentFiles:
    """Components as directories ``<root>/<workspace>/<type>/<id>/`` (the default layout
    of the builtin ``workspace`` source); a spec is written as ``component.yaml``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._types: dict[str, str] = {}

    def _dir(self, ref: str) -> Path:
        parsed = ComponentRef.parse(ref)
        kind = self._types.get(ref)
        if kind is None:
            raise KeyError(f"{ref} was not created: call create() first")
        return self.root / parsed.workspace / kind / parsed.component_id

    def create(
        self, ref: str, *, component_type: str = "scripts", spec: ComponentSpec | None = None
    ) -> None:
        self._types[ref] = component_type
        directory = self._dir(ref)
        directory.mkdir(parents=True, exist_ok=True)
        if spec is not None:
            # JSON is YAML: no serializer needed for the fields of a spec.
            doc = attrs.asdict(spec)
            (directory / "component.yaml").write_text(json.dumps(doc), encoding="utf-8")

    def write(self, ref: str, path: str, data: bytes, *, executable: bool = False) -> None:
        file = self._dir(ref) / path
        file.parent.mkdir(parents=True, exist_ok=True)
        if file.is_symlink():
            file.unlink()
        file.write_bytes(data)
        file.chmod(0o755 if executable else 0o644)

    def symlink(self, ref: str, path: str, target: str) -> None:
        link = self._dir(ref) / path
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)

    def delete(self, ref: str, path: str) -> None:
        entry = self._dir(ref) / path
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


if TYPE_CHECKING:  # mypy checks the writer against the protocol it implements
    _files: ComponentFiles = DirectoryComponentFiles(Path())
