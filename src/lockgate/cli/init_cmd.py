"""``lockgate init``."""

from __future__ import annotations

from pathlib import Path

import click

from lockgate.cli.output import emit_json, json_option, wants_json

__all__ = ["command"]


@click.command("init")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Project name written to lockgate.yaml (default: the directory name).")
@json_option
@click.pass_context
def command(ctx: click.Context, directory: Path | None, name: str | None, json_flag: bool) -> None:
    """Create a project here (or in DIRECTORY): lockgate.yaml, workspaces/, .lockgate/.

    Safe to rerun: existing files are kept, never overwritten.
    """
    from lockgate.cli.context import AppContext
    from lockgate.core.scaffold import init_project

    app = ctx.find_object(AppContext)
    target = directory or (app.project_dir if app and app.project_dir else Path.cwd())
    result = init_project(target, name=name)
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
        return
    click.echo(f"lockgate project at {result.root}")
    for item in result.created:
        click.echo(f"  created  {item}")
    for item in result.kept:
        click.echo(f"  kept     {item}")
