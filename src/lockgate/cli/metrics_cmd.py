"""``lockgate metrics``: what every plugin reports through on_metrics_collect."""

from __future__ import annotations

from pathlib import Path

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["command"]


@click.command("metrics")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "prometheus"]),
    default=None,
    help="table (default), json (as --json), or the Prometheus text exposition format.",
)
@click.option(
    "--textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the Prometheus format to this file atomically (node_exporter's textfile "
    "collector) instead of printing it.",
)
@json_option
@click.pass_context
def command(ctx: click.Context, fmt: str | None, textfile: Path | None, json_flag: bool) -> None:
    """Collect metrics from every plugin, named <plugin>.<metric>.

    Names may carry labels, Prometheus style (metrics.components{status="staged"});
    kernel.plugins_failed counts plugins that failed to load."""
    from lockgate.core.context import MetricsContext

    project = ctx.ensure_object(AppContext).project(require=False)
    metrics = project.hooks.on_metrics_collect(
        MetricsContext(
            project_root=project.root,
            config=project.resolved(),
            state=project.state() if project.root is not None else None,
        )
    )
    metrics["kernel.plugins_failed"] = len(project.plugins.failures)
    if textfile is not None or fmt == "prometheus":
        from lockgate.cli import prometheus

        if textfile is not None:
            prometheus.write_textfile(textfile, metrics)
            return
        click.echo(prometheus.render(metrics), nl=False)
        return
    if fmt == "json" or wants_json(ctx, json_flag):
        emit_json(metrics)
        return
    table(None, ["metric", "value"], sorted(metrics.items()))
