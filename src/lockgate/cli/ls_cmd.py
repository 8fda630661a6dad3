"""``lockgate ls``: components, their last revision and status, and local changes."""

from __future__ import annotations

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["command"]


@click.command("ls")
@click.argument("workspace", required=False, metavar="[WS]")
@json_option
@click.pass_context
def command(ctx: click.Context, workspace: str | None, json_flag: bool) -> None:
    """List components: workspace, type, id, last revision, status, changed or not."""
    from lockgate.contracts.refs import check_name
    from lockgate.operations.listing import list_components

    if workspace is not None:
        check_name("workspace", workspace)
    rows = list_components(ctx.ensure_object(AppContext).session(), workspace)
    if wants_json(ctx, json_flag):
        emit_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo("no components found")
        return
    table(
        None,
        ["workspace", "type", "id", "revision", "status", "workspace vs revision"],
        [
            (r.workspace, r.component_type, r.component_id, r.short_revision, r.status, r.change)
            for r in rows
        ],
    )
