"""``lockgate diff``."""

from __future__ import annotations

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, wants_json

__all__ = ["command"]


@click.command("diff")
@click.argument("component", metavar="WS:ID")
@click.argument("rev_a", required=False, metavar="[REV_A")
@click.argument("rev_b", required=False, metavar="[REV_B]]")
@click.option("--patch", "-p", is_flag=True, help="Show text diffs of changed files.")
@json_option
@click.pass_context
def command(
    ctx: click.Context,
    component: str,
    rev_a: str | None,
    rev_b: str | None,
    patch: bool,
    json_flag: bool,
) -> None:
    """Files added, modified, removed: workspace vs latest revision, vs REV_A, or REV_A vs REV_B.

    Revisions are given by a unique prefix (4+ characters) or 'latest'.
    """
    from lockgate.contracts.refs import ComponentRef
    from lockgate.operations.listing import diff_component

    ref = ComponentRef.parse(component)
    result = diff_component(ctx.ensure_object(AppContext).session(), ref, rev_a, rev_b, patch=patch)
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
        return
    click.echo(f"{result.component}: {result.old} → {result.new}")
    d = result.diff
    if d.empty:
        click.echo("  no changes")
    for mark, paths in (("A", d.added), ("M", d.modified), ("D", d.removed)):
        for path in paths:
            click.echo(f"  {mark} {path}")
    if result.patches:
        click.echo("".join(result.patches), nl=False)
