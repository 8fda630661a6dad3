"""The ``local`` store's release cache: revisions laid out as directories.

A release lives at ``.lockgate/releases/<revision>/`` and is immutable once it exists: it
is built in a temporary directory beside it and renamed into place, so a release
directory is always complete. It is made of hardlinks to (or reflinks and copies of) the
store's objects, so laying a revision out costs one ``link`` per file, and validators,
the builtin ``directory`` target and ``lockgate verify`` all use the same one.

This is the ``ReleaseCache`` capability of the content store (see
``lockgate.plugin.ReleaseCache``): the kernel asks the store for a verified directory
only when the store offers one, and a target asks for it through its revision handle
only when it needs a directory. A store without it (the memory twin, an object store)
serves targets that read files through the handle instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.plugin import (
    LinkMode,
    boot_id,
    check_paths,
    check_revision,
    hash_file,
    materialize_files,
)
from lockgate.plugin import syncfs as _syncfs

if TYPE_CHECKING:
    from collections.abc import Collection

    from lockgate.plugin import ContentStore, Manifest

__all__ = ["RELEASES_DIRNAME", "LocalReleases", "remove_tree"]

RELEASES_DIRNAME = "releases"
_REVISION = re.compile(r"[0-9a-f]{64}")
RECENT_STAMPS = 4
"""How many of the most recent verification stamps a new release's layout consults."""
VOUCHED = 1
"""A stamp entry's sixth field when the file was hashed (or vouched for) at that stat; 0
when only the link-count exception carried it (which vouches for nothing further)."""


def syncfs(path: str | Path) -> None:
    """Flush the file system holding ``path`` (a seam: tests watch which paths flush)."""
    _syncfs(path)


class LocalReleases:
    """Release directories under ``directory``, laid out from ``store``."""

    def __init__(self, directory: Path, store: ContentStore, *, ledgers: str | None = None) -> None:
        self.directory = directory
        self.store = store
        self.ledgers = ledgers
        """Where the store keeps the stat of the objects each staging wrote (None: none)."""

    def path(self, revision: str) -> Path:
        """Where the release of ``revision`` lives (whether or not it exists yet).

        ``revision`` must be a revision id (64 hex digits): ids come back from the state
        store, and nothing else may be joined to the releases directory.
        """
        return self.directory / check_revision(revision)

    def exists(self, revision: str) -> bool:
        """Whether the release of ``revision`` is laid out."""
        return self.path(revision).is_dir()

    def ensure(self, revision: str, link: LinkMode | None = None) -> Path:
        """The release directory of ``revision``, laid out from the store if needed (``link``
        None: the store's own setting, ``plugins.local.link``)."""
        final = self.path(revision)
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        import uuid  # only on this path (as shutil below)

        tmp = final.parent / f".tmp-{revision[:16]}-{uuid.uuid4().hex[:8]}"
        manifest = self.store.get_manifest(revision)
        # Whatever the manifest says, it must not lay files (or links) out of the release.
        check_paths(manifest, where=f"revision {revision[:12]}")
        vouched = self._vouched(revision, manifest)
        try:
            materialize_files(self.store, manifest, tmp, link)
            try:
                tmp.rename(final)
            except OSError:
                if not final.is_dir():  # not a concurrent builder that won the race
                    raise
                vouched = {}
        finally:
            if tmp.exists():
                remove_tree(tmp)
        if vouched:
            _stamp_layout(final, manifest, vouched)
        return final

    def _vouched(self, revision: str, manifest: Manifest) -> dict[str, tuple[list[int], int]]:
        """The objects of ``revision`` whose bytes are, by their stat, known to match
        their digest: each one's stat then and its link count now (see
        :func:`_stamp_layout`). Without a boot id to tell a restart, none.

        Two records vouch for an object. Staging's ledger (one per revision, read once and
        removed here) holds the stat each object it wrote had when published, the bytes
        it had just hashed. The verification stamps of the most recently verified
        releases hold the stat each of their files had when it was hashed, or stamped at
        layout (an entry carried only by the link-count exception of
        :func:`verify_release` does not vouch): an object shared with them is the same
        inode. Either way the object's stat must still be exactly the recorded one (with
        the link count, for a stamp): any write changes the mtime, and setting the mtime
        back, a chmod or a new link changes the ctime, which no one can set back. Records
        from another boot are not trusted.
        """
        if self.ledgers is None or boot_id() is None:
            return {}
        objects = _read_ledger(f"{self.ledgers}/{revision}")
        object_path = getattr(self.store, "object_path", None)
        if object_path is None:
            return {}
        by_inode: dict[int, list[int]] | None = None
        vouched: dict[str, tuple[list[int], int]] = {}
        for entry in manifest.entries:
            if entry.kind != "file" or entry.digest in vouched:
                continue
            try:
                st = os.lstat(str(object_path(entry.digest)))
            except OSError:
                continue
            now = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
            if objects.get(entry.digest) == now:
                vouched[entry.digest] = (now, st.st_nlink)
                continue
            if by_inode is None:
                by_inode = self._stamped_inodes(revision)
            if by_inode.get(st.st_ino) == [*now, st.st_nlink]:
                vouched[entry.digest] = (now, st.st_nlink)
        return vouched

    def _stamped_inodes(self, revision: str) -> dict[int, list[int]]:
        """Inode -> stat key (inode, size, mtime, ctime, links) of each file that the
        :data:`RECENT_STAMPS` most recently written stamps (of this boot, other than
        ``revision``'s) record as hashed or vouched for at that very stat."""
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(".verified")]
        except OSError:
            return {}
        dated = []
        for name in names:
            path = self.directory / name
            if name[: -len(".verified")] == revision:
                continue
            try:
                dated.append((path.stat().st_mtime_ns, path))
            except OSError:
                continue
        dated.sort(reverse=True)
        by_inode: dict[int, list[int]] = {}
        for _, path in dated[:RECENT_STAMPS]:
            files = _read_trusted_stamp(path).get("files")
            if not isinstance(files, dict):
                continue
            for key in files.values():
                if isinstance(key, list) and len(key) == 6 and key[5] == VOUCHED:
                    by_inode.setdefault(key[0], key[:5])
        return by_inode

    def revisions(self) -> list[str]:
        """Every revision laid out, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(e.name for e in self.directory.iterdir() if _REVISION.fullmatch(e.name))

    def remove(self, revision: str) -> None:
        """Remove the release of ``revision`` and its verification stamp (it is laid out
        again from the store when next needed). Only for a release no stage deploys."""
        release = self.path(revision)
        if release.is_dir():
            remove_tree(release)
        _stamp_path(release).unlink(missing_ok=True)

    def sweep(self, cutoff: float) -> int:
        """Remove unfinished releases and stamps older than ``cutoff``; return how many."""
        removed = 0
        for pattern in (".tmp-*", "*.verified.*"):
            if not self.directory.is_dir():
                break
            for path in self.directory.glob(pattern):
                try:
                    if path.lstat().st_mtime >= cutoff:
                        continue
                    if path.is_dir() and not path.is_symlink():
                        remove_tree(path)
                    else:
                        path.unlink()
                    removed += 1
                except OSError:
                    continue
        return removed

    def make_durable(self, revision: str) -> bool:
        return make_durable(self.path(revision))

    def verify(self, revision: str, *, full: bool = False) -> list[str]:
        return verify_release(self.path(revision), revision, self.store, full=full)


def _read_ledger(ledger_file: str) -> dict[str, Any]:
    """Staging's ledger of ``revision`` (digest -> stat key), removed once read; ``{}``
    when there is none to trust (absent, unreadable, or written in another boot)."""
    import json

    try:
        ledger = json.loads(Path(ledger_file).read_bytes())
        os.unlink(ledger_file)
    except (OSError, ValueError):
        return {}
    if not isinstance(ledger, dict) or ledger.get("boot") != boot_id():
        return {}
    objects = ledger.get("objects")
    return objects if isinstance(objects, dict) else {}


def remove_tree(path: Path) -> None:
    """Remove a release (its files are read-only, but its directories are not)."""
    import shutil  # with lzma and bz2: ~2 ms of every command's start-up at module level

    shutil.rmtree(path)


def _stamp_path(release: Path) -> Path:
    return release.parent / f"{release.name}.verified"


def make_durable(release: Path) -> bool:
    """Make sure the release of ``revision`` is on the disk; True when this flushed.

    A release holds bytes the content store may never have flushed (executables are
    copies, not links to objects) and its directory entries are new, so before it is
    first deployed the file system holding it is flushed. Its verification stamp (see
    :func:`verify_release`) then says so, and later switches to the same release in the
    same boot flush nothing: a rollback stays one rename. Call it right after
    :func:`verify_release` found no problem.
    """
    import json

    stamp_file = _stamp_path(release)
    try:
        stamp = json.loads(stamp_file.read_bytes())
    except (OSError, ValueError):
        stamp = None
    current = isinstance(stamp, dict) and stamp.get("boot") == boot_id()
    if current and stamp.get("durable") is True:
        return False
    syncfs(release)
    if current:
        _write_stamp(stamp_file, {**stamp, "durable": True})
    return True


def _write_stamp(stamp_file: Path, stamp: dict[str, Any]) -> None:
    """Replace the stamp atomically (a stamp only saves time: failing to write is fine)."""
    import json
    import uuid

    tmp = stamp_file.with_name(f"{stamp_file.name}.{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(stamp), encoding="utf-8")
        tmp.replace(stamp_file)
    except OSError:
        tmp.unlink(missing_ok=True)


def verify_release(
    release: Path, revision: str, store: ContentStore, *, full: bool = False
) -> list[str]:
    """Problems with the release of ``revision`` (empty: every byte matches its digest).

    Each file is hashed and compared with the manifest, and nothing else may be there.
    A file is not hashed again while its inode, size and mtime are those recorded when it
    last verified and its ctime is too — unless only its link count changed (another
    release hardlinking the same object changes the ctime, not the bytes). Any write
    changes the mtime, and any chmod or mtime reset changes the ctime, which no one can
    set back. When no directory of the release changed (inode, mtime, ctime) no entry was
    added or removed, so the tree is not walked. ``full=True`` hashes and walks
    everything regardless (``lockgate verify``), which also catches what no stat shows,
    such as bits rotting on the disk. A stamp is also only trusted in the boot of the
    machine that wrote it: a restart can take bytes that were never flushed while leaving
    every stat as it was. Each stamp entry is ``[inode, size, mtime, ctime, links, how]``:
    ``how`` is :data:`VOUCHED` when the file was hashed (or vouched for at layout) at
    that stat, 0 when only the link-count exception carried it; a new release's layout
    trusts only the former (see :meth:`LocalReleases._vouched`).
    """
    base = str(release)
    manifest = store.get_manifest(revision)
    stamp_file = _stamp_path(release)
    stamps = {} if full else _read_trusted_stamp(stamp_file)
    old_files: dict[str, list[int]] = stamps.get("files", {})
    problems: list[str] = []
    files = _check_files(base, revision, manifest, old_files, problems)
    old_dirs: dict[str, list[int]] | None = stamps.get("dirs")
    names = old_dirs.keys() if old_dirs else {os.path.dirname(e.path) for e in manifest.entries}
    dirs = _dir_keys(base, names)
    if full or dirs != old_dirs:
        problems.extend(_strays(release, revision, manifest))
    if problems:
        stamp_file.unlink(missing_ok=True)
    elif files != old_files or dirs != old_dirs or not stamps:
        # Anything new in the release is not known to be on the disk: not "durable".
        _write_stamp(stamp_file, {"boot": boot_id(), "files": files, "dirs": dirs})
    return problems


def _stamp_layout(
    release: Path, manifest: Manifest, vouched: dict[str, tuple[list[int], int]]
) -> None:
    """Write the verification stamp of a release just laid out, for the files that are
    hardlinks of objects :meth:`LocalReleases._vouched` vouched for, so that
    :func:`verify_release` hashes only the others before its first deployment.

    A file is stamped only when it is the vouched object itself (same inode, size and
    mtime) and its link count grew by exactly the links this layout made: a link made by
    anyone else meanwhile, or a copy (an executable, a reflink), is hashed as before.
    Its stat is taken now, after the links (which moved its ctime), so from here on the
    stamp's rules apply: any later write or mtime reset shows.
    """
    linked = [e for e in manifest.entries if e.kind == "file" and e.digest in vouched]
    links: dict[str, int] = {}
    for entry in linked:
        links[entry.digest] = links.get(entry.digest, 0) + (not entry.executable)
    base = str(release)
    files: dict[str, list[int]] = {}
    for entry in linked:
        if entry.executable:
            continue  # a copy (a hardlink would share the object's mode): hashed
        (ino, size, mtime, _ctime), nlink = vouched[entry.digest]
        try:
            st = os.lstat(f"{base}/{entry.path}")
        except OSError:
            continue
        same = (st.st_ino, st.st_size, st.st_mtime_ns) == (ino, size, mtime)
        if same and st.st_nlink == nlink + links[entry.digest]:
            files[entry.path] = [ino, size, mtime, st.st_ctime_ns, st.st_nlink, VOUCHED]
    if files:
        dirs = _dir_keys(base, {os.path.dirname(e.path) for e in manifest.entries})
        _write_stamp(_stamp_path(release), {"boot": boot_id(), "files": files, "dirs": dirs})


def _read_trusted_stamp(stamp_file: Path) -> dict[str, Any]:
    """The release's verification stamp, or ``{}`` when there is none to trust (absent,
    unreadable, or written in another boot of the machine)."""
    import json

    try:
        loaded = json.loads(stamp_file.read_bytes())
    except (OSError, ValueError):
        return {}
    trusted = isinstance(loaded, dict) and "files" in loaded
    return loaded if trusted and loaded.get("boot") == boot_id() else {}


def _check_files(
    base: str,
    revision: str,
    manifest: Manifest,
    old_files: dict[str, list[int]],
    problems: list[str],
) -> dict[str, list[int]]:
    """The stat pass over the manifest's entries, hashing only the files whose stat is
    not the one ``old_files`` recorded: append what is wrong to ``problems``, and return
    the stat key of each file that verified (the stamp's ``files``)."""
    files: dict[str, list[int]] = {}
    lstat = os.lstat
    for entry in manifest.entries:
        path = f"{base}/{entry.path}"
        try:
            st = lstat(path)
        except OSError:
            problems.append(f"{revision[:12]}: {entry.path} is missing from its release")
            continue
        if entry.kind == "symlink":
            if not os.path.islink(path) or os.readlink(path) != entry.target:
                problems.append(f"{revision[:12]}: {entry.path} is not the recorded symlink")
            continue
        key = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink]
        old = old_files.get(entry.path)
        if old is not None and old[:3] == key[:3]:
            if old[3] == key[3]:  # untouched: it vouches as much as it did
                files[entry.path] = key + old[5:6]
                continue
            if old[4] != key[4]:  # relinked (see above); no longer "hashed at this stat"
                files[entry.path] = [*key, 0]
                continue
        problem = _hash_problem(path, st.st_size, entry.digest)
        if problem is not None:
            problems.append(f"{revision[:12]}: {entry.path} {problem}")
            continue
        files[entry.path] = [*key, VOUCHED]
    return files


def _hash_problem(path: str, size: int, digest: str) -> str | None:
    """The hash pass for one file: what is wrong with its bytes, or None when they match."""
    try:
        found = hash_file(path, size)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if found != digest:
        return "does not match its digest (damaged bytes)"
    return None


def _dir_keys(base: str, names: Collection[str]) -> dict[str, list[int]]:
    """Inode, mtime and ctime of the release's directory and of each of ``names`` in it
    (an entry added or removed changes its directory's): those that exist."""
    dirs: dict[str, list[int]] = {}
    for rel in {"", *names}:
        try:
            st = os.lstat(f"{base}/{rel}" if rel else base)
        except OSError:
            continue
        dirs[rel] = [st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
    return dirs


def _strays(release: Path, revision: str, manifest: Manifest) -> list[str]:
    """A problem for each file in the release that its revision does not have."""
    expected = {e.path for e in manifest.entries}
    problems = []
    for dirpath, _dirs, entries in os.walk(release):
        for name in entries:
            rel = os.path.relpath(os.path.join(dirpath, name), release).replace(os.sep, "/")
            if rel not in expected:
                problems.append(f"{revision[:12]}: {rel} is in the release but not the revision")
    return problems
