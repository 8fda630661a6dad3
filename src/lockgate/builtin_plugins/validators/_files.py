"""Small helpers the builtin validators share for reading a subject's files."""

from __future__ import annotations

import re
from collections.abc import Iterator

from lockgate.plugin import ValidationSubject

__all__ = ["MISSING", "DigestMemo", "line_at", "located", "read_text", "text_files"]

_LOCATED = re.compile(r"^(?P<path>[^\n]*?):(?P<line>\d+): (?P<message>.*)$", re.DOTALL)


class DigestMemo:
    """Per-file results remembered by content digest, for the life of the process.

    A long-running caller (``lockgate watch``) validates revision after revision that
    differ in a file or two; with this, only the changed files are read again. Bounded:
    it forgets everything when it grows past ``limit`` entries.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._data: dict[tuple[object, ...], object] = {}

    def get(self, key: tuple[object, ...]) -> object:
        return self._data.get(key, _MISSING)

    def put(self, key: tuple[object, ...], value: object) -> None:
        if len(self._data) >= self.limit:
            self._data.clear()
        self._data[key] = value


_MISSING = object()
MISSING = _MISSING
_SNIFF = 8192  # bytes read to tell a binary file (a NUL among them) from text


def read_text(subject: ValidationSubject, path: str, max_bytes: int) -> str | None:
    """The UTF-8 text of ``path``, or None when it is too large, binary or undecodable.

    A file that cannot be read raises (the gate fails, naming the validator): a check
    that skipped it would pass a revision it never read.
    """
    size = subject.sizes.get(path, 0)
    if size > max_bytes:
        return None
    # A binary file is told by its first bytes: read no more of it.
    if size > _SNIFF and b"\0" in subject.read_bytes(path, _SNIFF):
        return None
    raw = subject.read_bytes(path)
    if b"\0" in raw[:_SNIFF]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def text_files(
    subject: ValidationSubject, suffixes: tuple[str, ...], max_bytes: int
) -> Iterator[tuple[str, str]]:
    """(path, text) for every file of the subject whose name ends with one of ``suffixes``."""
    for path in subject.files:
        if path.lower().endswith(suffixes):
            text = read_text(subject, path, max_bytes)
            if text is not None:
                yield path, text


def line_at(text: str, offset: int) -> int:
    """The 1-based line of character ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1


def located(message: str) -> tuple[int | None, str]:
    """Split a ``path:line: message`` error into (line, message); (None, message) if not."""
    match = _LOCATED.match(message)
    if match is None:
        return None, message
    return int(match.group("line")), match.group("message")
