"""Tables printed into a pipe are the characters rich would print, without rich."""

from __future__ import annotations

import contextlib
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.cli import output

TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=14)


def drawn_by_rich(
    title: str | None, columns: list[str], rows: list[list[str]], caption: str
) -> str:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tbl = Table(title=title, box=box.SIMPLE_HEAD, caption=caption or None, title_justify="left")
        for column in columns:
            tbl.add_column(column, overflow="fold")
        for row in rows:
            tbl.add_row(*(Text(v) for v in row))
        output.console().print(tbl)
    return buffer.getvalue()


def tables() -> st.SearchStrategy[tuple[list[str], list[list[str]], str | None, str]]:
    return st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.lists(TEXT, min_size=n, max_size=n),
            st.lists(st.lists(TEXT, min_size=n, max_size=n), max_size=5),
            st.none() | TEXT,
            TEXT,
        )
    )


@settings(max_examples=200, deadline=None)
@given(tables())
def test_a_plain_table_is_what_rich_draws_on_a_console_that_is_no_terminal(
    table: tuple[list[str], list[list[str]], str | None, str],
) -> None:
    columns, rows, title, caption = table
    plain = output._plain_table(title, columns, rows, caption)
    if plain is not None:
        assert plain == drawn_by_rich(title, columns, rows, caption)


def test_what_rich_would_fold_or_measure_is_left_to_rich() -> None:
    assert output._plain_table(None, ["a"], [["x" * 200]], "") is None  # folded at 160
    assert output._plain_table(None, ["name"], [["café ☕"]], "") is None  # not ASCII
    assert output._plain_table(None, ["[bold]x"], [], "") is None  # markup in a header
    assert output._plain_table("a title wider than the table", ["a"], [], "") is None
    assert output._plain_table(None, ["a", "b"], [["x"]], "") is None  # a short row
    assert output._plain_table(None, ["id"], [["x"]], "") is not None
