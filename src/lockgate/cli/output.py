"""Rendering: tables for people (rich, imported only when a table is drawn), JSON for tools."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "emit_json", "json_option", "table", "wants_json"]


def json_option(f: Any) -> Any:
    """``--json`` on a command, the same as the global ``lockgate --json``."""
    return click.option("--json", "json_flag", is_flag=True, help="Print JSON instead of a table.")(
        f
    )


def wants_json(ctx: click.Context, json_flag: bool) -> bool:
    """True when the command or the global option asked for JSON."""
    from lockgate.cli.context import AppContext

    app = ctx.find_object(AppContext)
    return json_flag or bool(app and app.json)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def console() -> Console:
    """A rich console on stdout; wide and plain when stdout is not a terminal."""
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(width=None if tty else 160, highlight=False, soft_wrap=not tty)


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str = ""
) -> None:
    """Print a simple table."""
    from rich import box
    from rich.table import Table

    tbl = Table(title=title, box=box.SIMPLE_HEAD, caption=caption or None, title_justify="left")
    for column in columns:
        tbl.add_column(column, overflow="fold")
    for row in rows:
        tbl.add_row(*("" if v is None else str(v) for v in row))
    console().print(tbl)
