"""Names and references: workspace names, component ids, ``WS:ID`` and revision ids.

Names are checked against one strict pattern before they are ever used in a path, so no
name can climb out of the project (``..``), name a directory (``/``), or smuggle NUL or
control characters.
"""

from __future__ import annotations

import re

import attrs

from lockgate.errors import InputError

__all__ = ["NAME_PATTERN", "ComponentRef", "check_name", "check_text", "short"]

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
"""Workspace names, component ids, component types and stage names: a letter or digit,
then up to 63 letters, digits, ``.``, ``_`` or ``-``."""

_NAME = re.compile(NAME_PATTERN)


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid name, else raise a clear :class:`InputError`."""
    if _NAME.fullmatch(value) and ".." not in value:
        return value
    if not value:
        problem = "is empty"
    elif "\x00" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        problem = "contains NUL or control characters"
    elif "/" in value or "\\" in value:
        problem = "contains a path separator"
    elif ".." in value:
        problem = "contains '..'"
    elif len(value) > 64:
        problem = "is longer than 64 characters"
    else:
        problem = (
            "has characters outside letters, digits, '.', '_' and '-', "
            "or starts with '.', '_' or '-'"
        )
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
