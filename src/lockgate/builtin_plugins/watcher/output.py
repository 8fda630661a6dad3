"""What the watcher prints (:class:`Output`) and the test hooks it reads (:func:`failpoints`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
import click

__all__ = ["FAILPOINTS_ENV", "Output", "_ms", "_plural", "failpoints"]

FAILPOINTS_ENV = "LOCKGATE_FAILPOINTS"


def failpoints(environ: Mapping[str, str]) -> frozenset[str]:
    """The failpoints ``LOCKGATE_FAILPOINTS`` turns on (test hooks; see the engine's module doc)."""
    raw = environ.get(FAILPOINTS_ENV, "")
    return frozenset(p.strip() for p in raw.split(",") if p.strip())


@attrs.define
class Output:
    """One line per sync on stdout (a JSON object each with ``--json``); warnings on stderr."""

    json: bool = False
    verbosity: int = 0

    def emit(self, data: dict[str, Any], text: str) -> None:
        if self.json:
            click.echo(json.dumps(data, default=str))
        else:
            click.echo(text)

    def warn(self, message: str) -> None:
        click.echo(f"lockgate: warning: {message}", err=True)

    def note(self, message: str) -> None:
        """Detail shown with ``-v`` only."""
        if self.verbosity > 0:
            click.echo(f"lockgate: {message}", err=True)


def _ms(start: float, end: float) -> float:
    """Milliseconds from ``start`` to ``end`` (monotonic seconds), to a tenth."""
    return round((end - start) * 1000, 1)


def _plural(n: int, word: str) -> str:
    """``1 component``, ``2 components``, ``3 directories``."""
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"
