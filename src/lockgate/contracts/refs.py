"""Names and references: workspace names, component ids, ``WS:ID`` and revision ids.

Names are checked against one strict pattern before they are ever used in a path, so no
name can climb out of the project (``..``), name a directory (``/``), or smuggle NUL or
control characters.
"""

from __future__ import annotations

import re

import attrs

from lockgate.errors import InputError

__all__ = [
    "NAME_PATTERN",
    "ComponentRef",
    "check_name",
    "check_revision",
    "check_text",
    "name_problem",
    "short",
]

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
"""Workspace names, component ids, component types and stage names: a letter or digit,
then up to 63 letters, digits, ``.``, ``_`` or ``-``."""

_NAME = re.compile(NAME_PATTERN)
_REVISION = re.compile(r"[0-9a-f]{64}")


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid name, else raise a clear :class:`InputError`."""
    problem = name_problem(value)
    if problem is None:
        return value
    raise InputError(
        f"{kind} {value!r} {problem}; {kind}s match {NAME_PATTERN} (letters, digits, '.', '_', '-')"
    )


def check_text(what: str, value: str | None) -> str | None:
    """Return ``value`` if it can be recorded (UTF-8), else raise a clear :class:`InputError`.

    Free text (a reason, a comment, an actor) goes into the state store, which stores
    UTF-8: a string carrying undecodable bytes (a non-UTF-8 command line or environment
    arrives as lone surrogates) would fail there, after the change it describes was made.
    """
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        try:  # show the bytes as they were given (they arrive surrogate-escaped)
            shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            shown = value.encode("utf-8", "backslashreplace").decode("utf-8")
        raise InputError(
            f"{what} '{shown}' is not valid UTF-8 (at character {exc.start + 1}); "
            "give it as UTF-8 text"
        ) from None
    return value


def name_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a name (``"contains '..'"``), or None when it is one."""
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a string"
    if _NAME.fullmatch(value) and ".." not in value:
        return None
    if not value:
        return "is empty"
    if "\x00" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains NUL or control characters"
    if "/" in value or "\\" in value:
        return "contains a path separator"
    if ".." in value:
        return "contains '..'"
    if len(value) > 64:
        return "is longer than 64 characters"
    return (
        "has characters outside letters, digits, '.', '_' and '-', or starts with '.', '_' or '-'"
    )


def check_revision(value: object) -> str:
    """Return ``value`` if it is a revision id (64 lowercase hex digits), else raise
    :class:`InputError`: only such ids are ever joined to a path (a release directory)."""
    if isinstance(value, str) and _REVISION.fullmatch(value):
        return value
    raise InputError(
        f"{value!r} is not a revision id (64 lowercase hex digits); "
        "name a revision by a prefix of its id, as 'lockgate history' shows it"
    )


@attrs.frozen(order=True)
class ComponentRef:
    """``workspace:component_id``, the name a component is known by."""

    workspace: str
    component_id: str

    @classmethod
    def parse(cls, text: str, *, default_workspace: str | None = None) -> ComponentRef:
        """Parse ``WS:ID`` (or a bare ``ID`` when ``default_workspace`` is given)."""
        if ":" in text:
            workspace, _, component_id = text.partition(":")
        elif default_workspace is not None:
            workspace, component_id = default_workspace, text
        else:
            raise InputError(
                f"component {text!r} needs its workspace: write WORKSPACE:ID, e.g. alice:{text}"
            )
        return cls(check_name("workspace", workspace), check_name("component id", component_id))

    def __str__(self) -> str:
        return f"{self.workspace}:{self.component_id}"


def short(revision: str | None, length: int = 12) -> str:
    """The first ``length`` characters of a revision id (``-`` for none)."""
    return revision[:length] if revision else "-"
