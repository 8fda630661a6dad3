"""Revisions are manifests: every file's path, size, mode and digest, in canonical form.

The revision id is the digest of the canonical manifest bytes (sorted entries, compact
JSON, sorted keys), so the same tree always gives the same id whatever order it was
walked in. Digests are BLAKE3 (hex), chosen by measurement over sha256 — see
docs/performance.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from json.encoder import encode_basestring as _encode_string
from typing import Any, Literal, NamedTuple

import attrs
import blake3

from lockgate.contracts.records import record
from lockgate.errors import InputError

__all__ = [
    "MANIFEST_FORMAT",
    "MAX_DEPTH",
    "MAX_PATH_BYTES",
    "CanonicalManifest",
    "FileEntry",
    "Manifest",
    "ManifestDiff",
    "check_path_limits",
    "check_paths",
    "digest_bytes",
    "hash_file",
    "hash_into",
    "new_hasher",
]

MANIFEST_FORMAT = 1

MAX_DEPTH = 256
"""Directory levels a revision may have below its component directory. Deeper trees are
refused when staged: what builds, verifies and removes releases (``pathlib``'s
``mkdir(parents=True)``, ``shutil.rmtree``, ``os.walk`` before Python 3.12) recurses once
per level, and a thousand levels would end in a ``RecursionError`` long after staging."""

MAX_PATH_BYTES = 2048
"""The longest path of a file inside a revision, in UTF-8 bytes: a release file's path,
``.lockgate/releases/<revision>/<path>``, must stay well within the system's 4096."""


def check_path_limits(path: str, where: str) -> None:
    """Refuse a path deeper than :data:`MAX_DEPTH` levels or longer than
    :data:`MAX_PATH_BYTES` (``where`` names it in the message, shortened)."""
    if path.count("/") <= MAX_DEPTH and len(path) <= MAX_PATH_BYTES // 4:
        return  # the common case: no need to encode
    where = where if len(where) <= 120 else f"{where[:100]}…"
    if path.count("/") > MAX_DEPTH:
        raise InputError(
            f"{where}: more than {MAX_DEPTH} directory levels; lockgate stages trees up to "
            f"{MAX_DEPTH} levels deep: flatten it or ignore it in .lockgateignore"
        )
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise InputError(
            f"{where}: path longer than {MAX_PATH_BYTES} bytes; shorten it or ignore it in "
            ".lockgateignore"
        )


Kind = Literal["file", "exec", "symlink"]


def new_hasher(*, threads: bool = False) -> Any:
    """A fresh incremental content hasher (``update(bytes)``, ``hexdigest()``).

    ``threads=True`` lets BLAKE3 hash large inputs on several cores.
    """
    return blake3.blake3(max_threads=blake3.blake3.AUTO) if threads else blake3.blake3()


def digest_bytes(data: bytes) -> str:
    """The content digest of ``data`` (hex)."""
    return str(blake3.blake3(data).hexdigest())


HASH_WINDOW = 64 << 20
"""The most of one file mapped at once while hashing it: resident memory stays flat
however large the file (a 4 GiB file is hashed 64 MiB at a time)."""


def hash_into(hasher: Any, path: str | os.PathLike[str], size: int) -> None:
    """Feed the ``size`` bytes of the file at ``path`` to ``hasher`` (OSError when it
    cannot be read): read whole under 1 MiB, else mapped, at most :data:`HASH_WINDOW`
    at a time, each window unmapped before the next."""
    if size < 1 << 20:
        with open(path, "rb") as fh:
            hasher.update(fh.read())
        return
    if size <= HASH_WINDOW:
        hasher.update_mmap(os.fspath(path))
        return
    import mmap

    with open(path, "rb") as fh:
        offset = 0
        while offset < size:
            length = min(HASH_WINDOW, size - offset)
            with mmap.mmap(fh.fileno(), length, access=mmap.ACCESS_READ, offset=offset) as view:
                hasher.update(view)
            offset += length


def hash_file(path: str | os.PathLike[str], size: int | None = None) -> str:
    """The content digest of the file at ``path`` (OSError when it cannot be read).

    Files of 1 MiB and more are hashed through mmap, with BLAKE3's threads, at most
    :data:`HASH_WINDOW` mapped at once.
    """
    if size is None:
        size = os.stat(path).st_size
    hasher = new_hasher(threads=size >= 1 << 20)
    hash_into(hasher, path, size)
    return str(hasher.hexdigest())


class FileEntry(NamedTuple):
    """One file of a revision. ``kind`` is ``file``, ``exec`` (executable) or ``symlink``.

    For a symlink, ``target`` is the link text (always relative and inside the component)
    and ``digest``/``size`` describe those bytes. A NamedTuple (ordered by path first)
    because revisions hold one per file and tuples are cheap to build and compare.
    """

    path: str
    kind: Kind
    size: int
    digest: str
    target: str | None = None

    @property
    def executable(self) -> bool:
        """True for an executable regular file."""
        return self.kind == "exec"

    def to_json(self) -> dict[str, Any]:
        """Plain data, as written in the canonical manifest."""
        data: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "size": self.size,
            "digest": self.digest,
        }
        if self.target is not None:
            data["target"] = self.target
        return data


def _sorted_entries(entries: Iterable[FileEntry]) -> tuple[FileEntry, ...]:
    return tuple(sorted(entries))


@record
class Manifest:
    """The files of one revision, sorted by path."""

    entries: tuple[FileEntry, ...] = attrs.field(converter=_sorted_entries)
    _canonical: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False)
    """:meth:`canonical`, once built (staging needs it for the id and to store it)."""

    def canonical(self) -> bytes:
        """The exact bytes whose digest is the revision id: compact JSON with sorted keys,
        ``{"files":[{"digest":…,"kind":…,"path":…,"size":…[,"target":…]},…],"format":1}``.

        Built once per manifest, by formatting each entry with the JSON encoder's own
        string escaping (the bytes ``json.dumps(…, sort_keys=True, separators=(",", ":"),
        ensure_ascii=False)`` gives, at a third of its cost; a test holds them equal).
        """
        data = self._canonical
        if data is None:
            data = _canonical_bytes(self.entries)
            object.__setattr__(self, "_canonical", data)
        return data

    def revision_id(self) -> str:
        """The digest of :meth:`canonical`."""
        return digest_bytes(self.canonical())

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "manifest") -> Manifest:
        """Parse canonical bytes written by :meth:`canonical`."""
        try:
            doc = json.loads(data)
            if doc.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {doc.get('format')!r}")
            entries = [
                FileEntry(i["path"], i["kind"], i["size"], i["digest"], i.get("target"))
                for i in doc["files"]
            ]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # AttributeError: valid JSON that is not an object (``doc.get`` of a list).
            raise InputError(f"{where}: not a lockgate manifest ({exc})") from exc
        return cls(entries)

    @property
    def total_size(self) -> int:
        """Bytes in all entries."""
        return sum(e.size for e in self.entries)

    def by_path(self) -> dict[str, FileEntry]:
        """Entries keyed by path."""
        return {e.path: e for e in self.entries}

    @property
    def paths(self) -> tuple[str, ...]:
        """All paths, sorted."""
        return tuple(e.path for e in self.entries)


def _canonical_bytes(entries: tuple[FileEntry, ...]) -> bytes:
    """The canonical JSON of ``entries`` (see :meth:`Manifest.canonical`)."""
    enc = _encode_string
    parts = []
    for path, kind, size, digest, target in entries:
        if type(size) is not int:  # a crafted manifest (a float, a bool): json writes it
            doc = {"format": MANIFEST_FORMAT, "files": [e.to_json() for e in entries]}
            text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            return text.encode()
        more = "" if target is None else f',"target":{enc(target)}'
        parts.append(
            f'{{"digest":{enc(digest)},"kind":{enc(kind)},"path":{enc(path)},"size":{size}{more}}}'
        )
    return f'{{"files":[{",".join(parts)}],"format":{MANIFEST_FORMAT}}}'.encode()


_HEAD = b'{"files":['
_TAIL = b'],"format":%d}' % MANIFEST_FORMAT
_FIRST = b'{"digest":"'
_BETWEEN = b'},{"digest":"'


def _segments(data: bytes) -> list[bytes] | None:
    """Each entry of canonical manifest bytes, split without decoding (``digest":"…``
    up to its closing brace, both left off); None when ``data`` is not laid out so.

    The split is exact: ``},{"digest":"`` holds quotes, and inside a JSON string every
    quote is escaped, so the sequence only ever occurs between two entries.
    """
    if not (data.startswith(_HEAD) and data.endswith(_TAIL)):
        return None
    body = data[len(_HEAD) : len(data) - len(_TAIL)]
    if not body:
        return []
    if not (body.startswith(_FIRST) and body.endswith(b"}")):
        return None
    return body[len(_FIRST) : -1].split(_BETWEEN)


def _segment_path(segment: bytes) -> str:
    path = json.loads(_FIRST + segment + b"}")["path"]
    if not isinstance(path, str):
        raise TypeError(f"path {path!r} is not text")
    return path


class CanonicalManifest:
    """A stored revision's canonical bytes (checked against its id by whoever read them),
    compared with a new manifest entry by entry without decoding the entries.

    Staging compares the latest revision with the tree it just scanned. Decoding 10,000
    entries costs more than the whole comparison needs: equal entries have equal
    canonical bytes, so two set differences of byte strings leave only the entries that
    changed, and only those are decoded (for their paths). Bytes not in the canonical
    layout (a manifest written by hand) are decoded whole, as before.
    """

    __slots__ = ("_decoded", "_segments", "data")

    def __init__(self, data: bytes, *, where: str = "manifest") -> None:
        self.data = data
        self._segments = _segments(data)
        self._decoded: Manifest | None = None
        if self._segments is None:
            self._decoded = Manifest.from_bytes(data, where=where)

    def manifest(self) -> Manifest:
        """The decoded manifest (decoded once, when first asked for)."""
        if self._decoded is None:
            self._decoded = Manifest.from_bytes(self.data)
        return self._decoded

    def digests(self) -> set[str]:
        """Every entry's digest (read from its place in the bytes when the layout is
        canonical: the first 64 characters of each entry's segment)."""
        if self._segments is None:
            return {e.digest for e in self.manifest().entries}
        return {seg[:64].decode("ascii", "replace") for seg in self._segments}

    def diff(self, new: Manifest) -> ManifestDiff:
        """What changed from this revision to ``new`` (:meth:`ManifestDiff.between`)."""
        mine, theirs = self._segments, _segments(new.canonical())
        if mine is None or theirs is None:
            return ManifestDiff.between(self.manifest(), new)
        try:
            gone = {_segment_path(s) for s in set(mine).difference(theirs)}
            came = {_segment_path(s) for s in set(theirs).difference(mine)}
        except (ValueError, TypeError, KeyError):  # not an entry after all: decode whole
            return ManifestDiff.between(self.manifest(), new)
        return ManifestDiff(
            added=tuple(sorted(came - gone)),
            modified=tuple(sorted(came & gone)),
            removed=tuple(sorted(gone - came)),
        )


@record
class ManifestDiff:
    """Paths added, modified (content, mode or link target) and removed from ``old`` to ``new``."""

    added: tuple[str, ...]
    modified: tuple[str, ...]
    removed: tuple[str, ...]

    @classmethod
    def between(cls, old: Manifest | None, new: Manifest | None) -> ManifestDiff:
        """What changed going from ``old`` to ``new`` (None is an empty tree).

        Only the entries that differ are looked at by path: the others (all but one
        after a one-file edit) drop out of two set differences of whole entries.
        """
        before = old.entries if old is not None else ()
        after = new.entries if new is not None else ()
        gone = {e.path for e in set(before).difference(after)}
        came = {e.path for e in set(after).difference(before)}
        return cls(
            added=tuple(sorted(came - gone)),
            modified=tuple(sorted(came & gone)),
            removed=tuple(sorted(gone - came)),
        )

    @property
    def empty(self) -> bool:
        """True when nothing changed."""
        return not (self.added or self.modified or self.removed)

    def counts(self) -> dict[str, int]:
        """``{"added": n, "modified": n, "removed": n}``."""
        return {
            "added": len(self.added),
            "modified": len(self.modified),
            "removed": len(self.removed),
        }

    def to_dict(self) -> dict[str, list[str]]:
        """Plain data for ``--json``."""
        return {
            "added": list(self.added),
            "modified": list(self.modified),
            "removed": list(self.removed),
        }


def check_paths(manifest: Manifest, where: str = "manifest") -> None:
    """Refuse a manifest that could write or point outside the directory it is laid out
    in: an absolute path, ``..``, an entry under a symlink, or a symlink whose target
    leaves the tree, directly or through another of its symlinks. Staging never records
    one; a manifest read back from the content store may have been crafted. (Every switch
    checks its revision's manifest, so a path is matched by one pattern first and taken
    apart only when it misses or the manifest holds symlinks.)
    """
    links = {e.path: str(e.target) for e in manifest.entries if e.kind == "symlink"}
    short = MAX_PATH_BYTES // 4  # no need to encode a path this short to measure it
    for entry in manifest.entries:
        path = entry.path
        if not (_SAFE.fullmatch(path) and path.count("/") <= MAX_DEPTH and len(path) <= short):
            _check_path(path, where)
        if not links:
            continue
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise InputError(f"{where}: entry {path!r} lies under a symlink")
        if entry.kind == "symlink" and _resolve(links, parts[:-1], str(entry.target)) is None:
            raise InputError(
                f"{where}: symlink {path!r} -> {entry.target!r} points outside the revision"
            )


def _check_path(path: str, where: str) -> None:
    """The checks :data:`_SAFE` stands for, one by one, to say which one fails."""
    # No deeper than staging allows: laying a release out recurses once per level.
    check_path_limits(path, f"{where}: entry {path!r}")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InputError(f"{where}: entry {path!r} is not a safe relative path")
    if any(_CONTROL.search(p) for p in parts):
        raise InputError(f"{where}: entry {path!r} holds control characters")


# A relative path of segments that are neither empty, "." nor "..", without control
# characters: what _check_path accepts (but for the length and depth limits).
_SAFE = re.compile(r"(?!\.\.?(?:/|$))[^/\x00-\x1f\x7f]+(?:/(?!\.\.?(?:/|$))[^/\x00-\x1f\x7f]+)*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _resolve(
    links: dict[str, str], base: list[str], target: str, depth: int = 0
) -> list[str] | None:
    """Where ``target`` (relative to directory ``base``) leads, following the manifest's
    own symlinks; None when it leaves the tree, is absolute or loops."""
    if target.startswith("/") or depth > 40:
        return None
    parts = list(base)
    for segment in target.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(segment)
        link = links.get("/".join(parts))
        if link is not None:
            resolved = _resolve(links, parts[:-1], link, depth + 1)
            if resolved is None:
                return None
            parts = resolved
    return parts
