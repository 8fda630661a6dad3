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

    Safe to rerun: existing files are kept, never overwritten. The state store is opened
    once, so it is ready; an invalid configuration, a state store that cannot be opened
    or (with --strict-plugins) a plugin that fails to load is a warning.
    """
    from lockgate.cli.context import AppContext
    from lockgate.errors import LockgateError
    from lockgate.operations.init import init_project, prepare_state

    app = ctx.find_object(AppContext)
    target = directory or (app.project_dir if app and app.project_dir else Path.cwd())
    result = init_project(target, name=name)
    store: str | None = None
    warning = None
    try:
        store = prepare_state(result.root, strict_plugins=app.strict_plugins if app else None)
    except LockgateError as exc:
        warning = f"the project is created but not ready: {exc.message}"
    except Exception as exc:  # a third-party store's own error: init has done its part
        warning = f"the project is created but its state store failed to open: {exc!r}"
    if wants_json(ctx, json_flag):
        emit_json({**result.to_dict(), "state": store, "warnings": [warning] if warning else []})
    else:
        click.echo(f"lockgate project at {result.root}")
        for item in result.created:
            click.echo(f"  created  {item}")
        for item in result.kept:
            click.echo(f"  kept     {item}")
        if store is not None:
            click.echo(f"  ready    state store '{store}'")
    if warning:
        click.echo(f"lockgate: warning: {warning}", err=True)
