"""``lockgate metrics``: what every plugin reports through on_metrics_collect."""

from __future__ import annotations

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["command"]


@click.command("metrics")
@json_option
@click.pass_context
def command(ctx: click.Context, json_flag: bool) -> None:
    """Collect metrics from every plugin, named <plugin>.<metric>."""
    from lockgate.core.context import MetricsContext

    project = ctx.ensure_object(AppContext).project(require=False)
    metrics = project.hooks.on_metrics_collect(
        MetricsContext(project_root=project.root, config=project.resolved())
    )
    if wants_json(ctx, json_flag):
        emit_json(metrics)
        return
    if not metrics:
        click.echo("no plugin reported metrics")
        return
    table(None, ["metric", "value"], sorted(metrics.items()))
