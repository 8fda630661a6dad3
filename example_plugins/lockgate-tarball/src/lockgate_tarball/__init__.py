"""A stage target that deploys each revision as a ``.tar.gz`` archive.

Configured per stage in ``lockgate.yaml``::

    stages:
      production:
        targets:
          - kind: tarball
            options:
              path: archives/production   # default: archives/<stage>, inside the project

For every component deployed to the stage, the directory holds one archive per revision
ever deployed, ``<component_id>-<revision>.tar.gz`` (immutable: its name says what it
holds), and one pointer, ``<component_id>.current``, a one-line text file naming the
revision deployed now. A switch writes the new pointer beside the old one and renames it
over it (``rename(2)`` is atomic), so a reader of the pointer sees the old revision or
the new one, never a mix and never nothing; the archive it names is complete before the
pointer can name it.

The archives are reproducible: members sorted, owners, groups and times zeroed, so the
same revision always gives the same bytes. The files are read through the revision
handle (``RevisionHandle.open``, each checked against its digest), straight from the
content store: this target needs no release directory, so it works with any content
store, local or not.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.plugin import (
    ConfigError,
    InputError,
    Prepared,
    RevisionHandle,
    RoleContext,
    fsync_dir,
    hookimpl,
    name_problem,
    short,
)

if TYPE_CHECKING:  # tarfile and gzip are imported when an archive is written or read
    import tarfile

__all__ = ["TarballTarget"]

POINTER_SUFFIX = ".current"
ARCHIVE_SUFFIX = ".tar.gz"
_TMP = ".tmp-"
_REVISION = re.compile(r"[0-9a-f]{64}")


@hookimpl
def register_targets(register: Any) -> None:
    register("tarball", TarballTarget.from_context)


class TarballTarget:
    """Archives ``<dir>/<id>-<revision>.tar.gz`` and pointers ``<dir>/<id>.current``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_context(cls, ctx: RoleContext) -> TarballTarget:
        stage = str(ctx.options.get("stage", "stage"))
        unknown = sorted(set(ctx.options) - {"stage", "path"})
        if unknown:
            raise ConfigError(
                f"stages.{stage}.targets: unknown option '{unknown[0]}' for a tarball "
                "target (options: path)"
            )
        raw = str(ctx.options.get("path") or f"archives/{stage}")
        root = ctx.project_root.resolve()
        directory = (root / raw).resolve()
        if directory == root or root not in directory.parents:
            raise ConfigError(
                f"stages.{stage}.targets: path '{raw}' is outside the project (or is the "
                f"project itself); give a directory inside it, such as archives/{stage}"
            )
        if ctx.state_dir.resolve() in (directory, *directory.parents):
            raise ConfigError(f"stages.{stage}.targets: path '{raw}' is inside .lockgate/")
        return cls(directory)

    # ------------------------------------------------------------------ names

    def _path(self, component_id: str, suffix: str) -> Path:
        # Ids come back from the state store, which may have been edited: refuse any that
        # would name a file outside the stage directory.
        problem = name_problem(component_id)
        if problem is not None:
            raise InputError(
                f"component id {component_id!r} {problem}: refusing to deploy it outside "
                f"the stage directory {self.directory}"
            )
        return self.directory / f"{component_id}{suffix}"

    def archive(self, component_id: str, revision: str) -> Path:
        """Where the archive of ``revision`` of ``component_id`` is."""
        return self._path(component_id, f"-{revision}{ARCHIVE_SUFFIX}")

    def pointer(self, component_id: str) -> Path:
        """The ``current`` pointer of ``component_id``."""
        return self._path(component_id, POINTER_SUFFIX)

    # ------------------------------------------------------------------ the switch

    def prepare(self, component_id: str, revision: RevisionHandle | None) -> Prepared:
        """Write the archive (unless it is already there) and a temporary pointer.

        Nothing a reader looks at changes: the pointer is still the old one. The token is
        the temporary pointer's path (None to remove the component from the stage).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sweep(component_id)
        if revision is None:
            return Prepared(component_id, None, None)
        archive = self.archive(component_id, revision.revision)
        if not archive.exists():
            self._write_archive(archive, revision)
        tmp = self._path(component_id, f"{POINTER_SUFFIX}{_TMP}{uuid.uuid4().hex[:12]}")
        _write_synced(tmp, f"{revision.revision}\n".encode())
        return Prepared(component_id, revision.revision, str(tmp))

    def commit(self, prepared: Prepared) -> None:
        """Rename the temporary pointer over the current one: one atomic switch."""
        pointer = self.pointer(prepared.component_id)
        if prepared.revision is None:
            with contextlib.suppress(FileNotFoundError):
                pointer.unlink()
        else:
            token = Path(str(prepared.token))
            if token.parent != self.directory or not token.name.startswith(pointer.name):
                raise InputError(f"{token} is not a temporary pointer this target prepared")
            token.replace(pointer)
        fsync_dir(self.directory)

    def abort(self, prepared: Prepared) -> None:
        """Drop the temporary pointer; an archive already written stays (it is immutable
        and named by its revision, so a later switch reuses it)."""
        if prepared.token is not None:
            with contextlib.suppress(FileNotFoundError):
                Path(str(prepared.token)).unlink()

    def _write_archive(self, archive: Path, revision: RevisionHandle) -> None:
        import gzip
        import tarfile

        tmp = archive.with_name(f".{archive.name}{_TMP}{uuid.uuid4().hex[:12]}")
        try:
            with open(tmp, "wb") as raw:
                # No name, mtime=0: the same revision gives the same bytes.
                with (
                    gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
                    tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
                ):
                    _add_revision(tar, revision)
                raw.flush()
                os.fsync(raw.fileno())
            tmp.replace(archive)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def _sweep(self, component_id: str) -> None:
        """Remove temporary files an interrupted switch left (switches are serialized)."""
        prefixes = (f"{component_id}{POINTER_SUFFIX}{_TMP}", f".{component_id}-")
        for entry in self.directory.iterdir():
            if entry.name.startswith(prefixes) and _TMP in entry.name:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()

    # ------------------------------------------------------------------ inspecting

    def deployed(self) -> dict[str, str]:
        """Component id -> the revision its pointer names, for every pointer."""
        found: dict[str, str] = {}
        if not self.directory.is_dir():
            return found
        for entry in self.directory.iterdir():
            if not entry.name.endswith(POINTER_SUFFIX) or entry.name.startswith("."):
                continue
            revision = _read_pointer(entry)
            if revision is not None:
                found[entry.name.removesuffix(POINTER_SUFFIX)] = revision
        return found

    def location(self, component_id: str) -> str:
        """The component's pointer: where a reader finds what is deployed (stable across
        switches; called before a switch too)."""
        return str(self.pointer(component_id))

    def check(self, component_id: str, revision: str) -> list[str]:
        """Problems with what is deployed for ``component_id``; empty when its pointer
        names ``revision`` and that revision's archive is whole."""
        import tarfile

        pointer = self.pointer(component_id)
        if not pointer.exists():
            return [f"{pointer} is missing (expected revision {short(revision)})"]
        current = _read_pointer(pointer)
        if current != revision:
            got = short(current) if current else "nothing readable"
            return [f"{pointer} names {got}, not the current revision {short(revision)}"]
        archive = self.archive(component_id, revision)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for _ in tar:
                    pass
        except FileNotFoundError:
            return [f"{archive} is missing; promote the revision again to rewrite it"]
        except (OSError, tarfile.TarError, EOFError) as exc:
            return [f"{archive} is damaged ({exc}); delete it and promote the revision again"]
        return []


def _add_revision(tar: tarfile.TarFile, revision: RevisionHandle) -> None:
    """Every directory, file and symlink of ``revision``, sorted by path, with the modes
    of a release (directories 0755, files 0444, executables 0555), owners and times zeroed."""
    import tarfile

    entries = {e.path: e for e in revision.manifest.entries}
    dirs = {str(p) for path in entries for p in Path(path).parents if str(p) != "."}
    for name in sorted(dirs | set(entries)):
        info = tarfile.TarInfo(name)
        entry = entries.get(name)
        if entry is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        elif entry.kind == "symlink":
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(entry.target), 0o777
            tar.addfile(info)
        else:
            info.size, info.mode = entry.size, 0o555 if entry.executable else 0o444
            with revision.open(name) as stream:
                tar.addfile(info, stream)  # reads exactly entry.size bytes
                stream.read()  # then to the end: there the handle checks the digest


def _read_pointer(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if _REVISION.fullmatch(text) else None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
