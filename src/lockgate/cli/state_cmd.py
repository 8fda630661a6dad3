"""``lockgate state migrate``."""

from __future__ import annotations

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, wants_json

__all__ = ["command"]


@click.group("state")
def command() -> None:
    """The state store: copy a project's history into another."""


@command.command("migrate")
@click.option("--to", "to", required=True, metavar="STORE", help="State store to copy into.")
@click.option(
    "--content",
    metavar="STORE",
    default=None,
    help="Also copy every stored object into this content store.",
)
@json_option
@click.pass_context
def migrate(ctx: click.Context, to: str, content: str | None, json_flag: bool) -> None:
    """Copy the project's state (and objects) into another store, checked.

    Every component, revision, pointer and its history, approval, intent (closed ones
    too) and the audit chain (hashes unchanged) go into STORE in one transaction, while
    the project is locked; STORE must be empty. The copy's chain is verified and every
    answer compared with the original's, then a 'migrate' event is appended to the copy.
    Nothing in the project's own store changes: switch state.store (and content.store) in
    lockgate.yaml afterwards. Exit 3 when STORE cannot take a history, 2 when it is the
    project's own store.
    """
    from lockgate.operations.migrate import migrate_state

    result = migrate_state(ctx.ensure_object(AppContext).session(), to, content=content)
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
        return
    click.echo(result.summary())
