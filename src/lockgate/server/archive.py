"""A component uploaded as a tar archive, checked entry by entry before anything is written.

The rules are those of staging from a workspace: nothing may land outside the
component's directory, whatever an entry's name or link says. Every entry is checked
first; one bad entry refuses the whole archive and nothing is written:

- names: relative, no ``..`` segment, no NUL or control characters, no empty name;
- types: regular files and directories; a symbolic link only when its target, read from
  the link's own directory, stays inside the component; hard links, devices, FIFOs and
  anything else are refused;
- limits: at most ``max_entries`` entries and ``max_bytes`` bytes of files in all.

The files are then written into a new directory beside the component's and swapped in
with two renames, so the workspace holds either the old files or the new ones.
"""

from __future__ import annotations

import io
import posixpath
import shutil
import tarfile
import uuid
from pathlib import Path

from lockgate.errors import InputError

__all__ = ["check_archive", "replace_directory"]


def _entry_problem(member: tarfile.TarInfo) -> str | None:
    name = member.name
    if not name or "\x00" in name or any(ord(c) < 32 for c in name):
        return "has an empty name or control characters"
    if name.startswith("/") or posixpath.isabs(name):
        return "is an absolute path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "climbs out with '..'"
    if member.isdir() or member.isfile():
        return None
    if member.issym():
        target = member.linkname
        if target.startswith("/"):
            return f"is a symlink to an absolute path ({target})"
        joined = posixpath.normpath(posixpath.join(posixpath.dirname("/".join(parts)), target))
        if joined == ".." or joined.startswith("../"):
            return f"is a symlink out of the component ({target})"
        return None
    if member.islnk():
        return "is a hard link (not accepted: send the file itself)"
    kind = "a FIFO" if member.isfifo() else "a device file" if member.isdev() else "not a file"
    return f"is {kind}"


def check_archive(
    data: bytes, *, max_entries: int = 100_000, max_bytes: int = 1 << 32
) -> list[tarfile.TarInfo]:
    """The archive's entries, each checked (see the module docstring); a bad entry or
    archive is an :class:`InputError` naming it."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"upload: not a tar archive ({exc}); send a .tar or .tar.gz") from None
    if len(members) > max_entries:
        raise InputError(f"upload: {len(members)} entries, more than the {max_entries} allowed")
    total = 0
    for member in members:
        problem = _entry_problem(member)
        if problem is not None:
            raise InputError(f"upload: entry {member.name!r} {problem}; nothing was written")
        total += member.size if member.isfile() else 0
    if total > max_bytes:
        raise InputError(f"upload: {total} bytes of files, more than the {max_bytes} allowed")
    return members


def _write(data: bytes, members: list[tarfile.TarInfo], dest: Path) -> None:
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in members:
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if not parts:
                continue
            path = dest.joinpath(*parts)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if member.issym():
                path.symlink_to(member.linkname)
                continue
            source = tar.extractfile(member)
            assert source is not None  # a regular file, checked
            with source, open(path, "xb") as out:
                shutil.copyfileobj(source, out)
            path.chmod(0o755 if member.mode & 0o111 else 0o644)


def replace_directory(data: bytes, members: list[tarfile.TarInfo], target: Path) -> None:
    """Make ``target`` hold exactly the archive's files: written beside it, then swapped
    in (the old directory, if any, removed after the swap)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    fresh = target.parent / f".{target.name}.upload-{tag}"
    old = target.parent / f".{target.name}.old-{tag}"
    try:
        _write(data, members, fresh)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)
