"""Rendering: tables for people (rich, imported only when a table is drawn), JSON for tools."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "emit_json", "json_option", "printable", "table", "wants_json"]

# C0 and C1 controls (ANSI escapes start with ESC), DEL, line separators and the bidi
# controls that reorder what follows them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\n``, ``\\x1b``).

    Tables show what actors, reasons and file names hold, which anyone who can run a
    command chooses: on a terminal an escape sequence would recolour, move the cursor or
    rewrite earlier lines, and a newline would forge a row. JSON output keeps the value.
    """
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: _ESCAPES.get(m[0]) or _escape(ord(m[0])), text)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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
    """Print ``data`` as indented JSON on stdout.

    Warnings plugins gave through ``context.warn`` are added to a mapping's ``warnings``
    list (created if missing); they do not change the exit code.
    """
    from lockgate.cli.context import AppContext

    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(AppContext) if ctx is not None else None
    if app is not None and app.pending_warnings and isinstance(data, dict):
        data = {**data, "warnings": [*data.get("warnings", ()), *app.take_warnings()]}
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def console() -> Console:
    """A rich console on stdout; wide and plain when stdout is not a terminal."""
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(width=None if tty else 160, highlight=False, soft_wrap=not tty)


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str = ""
) -> None:
    """Print a simple table (drawn by rich; into a pipe or a file, the same characters
    without importing rich, when :func:`_plain_table` can write them)."""
    cells = [["" if v is None else printable(str(v)) for v in row] for row in rows]
    if not sys.stdout.isatty():
        plain = _plain_table(title, columns, cells, caption)
        if plain is not None:
            click.echo(plain, nl=False)
            return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    tbl = Table(title=title, box=box.SIMPLE_HEAD, caption=caption or None, title_justify="left")
    for column in columns:
        tbl.add_column(column, overflow="fold")
    for row in cells:
        # Text, not a string: rich would read "[bold]" in a reason as markup.
        tbl.add_row(*(Text(v) for v in row))
    console().print(tbl)


_PLAIN_WIDTH = 160  # console()'s width when stdout is not a terminal


def _plain_table(
    title: str | None, columns: Sequence[str], cells: list[list[str]], caption: str
) -> str | None:
    """What rich prints for :func:`table` on a console that is not a terminal (no colour,
    160 columns): one line per row, each cell padded by a space on each side, a space
    between cells and at each edge, a rule under the header, a blank line above and below.
    None when rich would do more than that (fold a cell, wrap the title, read markup in
    a header, the title or the caption, measure a wide character): rich draws those.
    Importing rich costs some 25 ms of a command that prints a table into a pipe
    (tests/test_output.py compares the two)."""
    texts = [*columns, *(v for row in cells for v in row), title or "", caption]
    # Printable ASCII only: one column per character, nothing rich would measure.
    markup = any("[" in c for c in (*columns, title or "", caption))
    if markup or not all(t.isascii() and t.isprintable() for t in texts):
        return None
    if any(len(row) != len(columns) for row in cells) or not columns:
        return None
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    total = sum(widths) + 3 * len(widths) + 1
    if total > _PLAIN_WIDTH or len(title or "") > total or len(caption) > total:
        return None

    def line(values: Sequence[str]) -> str:
        padded = " ".join(f" {v.ljust(w)} " for v, w in zip(values, widths, strict=True))
        return f" {padded} \n"

    out = [f"{title}\n"] if title else []
    out += [" " * total + "\n", line(columns), " " + "\u2500" * (total - 2) + " \n"]
    out += [line(row) for row in cells]
    out.append(" " * total + "\n")
    if caption:
        out.append(f"{caption}\n")
    return "".join(out)
