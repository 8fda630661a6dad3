"""``lockgate plugin``: tools for plugin authors (``plugin new``)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from lockgate.cli.output import emit_json, json_option, wants_json
from lockgate.operations.scaffold import KINDS

__all__ = ["group"]


@click.group("plugin")
def group() -> None:
    """Tools for writing plugins (to list the installed ones: 'lockgate plugins')."""


@group.command("new")
@click.argument("name")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(list(KINDS)),
    help="What the plugin does ('store' is a content store).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="The directory to create (default: ./lockgate-NAME); it must not exist.",
)
@json_option
@click.pass_context
def new(ctx: click.Context, name: str, kind: str, directory: Path | None, json_flag: bool) -> None:
    """Write a ready plugin distribution NAME: pyproject.toml with the lockgate entry
    point, the plugin module, a README and tests (pip install -e 'DIR[test]', then pytest
    in it).

    Never overwrites: an existing directory is refused.
    """
    from lockgate.cli.main import KERNEL_COMMANDS
    from lockgate.core.plugins import discover
    from lockgate.operations.scaffold import new_plugin

    builtins = {c.name for c in discover() if c.builtin}
    result = new_plugin(name, kind, directory, taken=builtins, taken_commands=KERNEL_COMMANDS)
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
        return
    click.echo(
        f"{result.kind} plugin '{result.plugin}' ({result.distribution}) in {result.directory}"
    )
    for item in result.files:
        click.echo(f"  created  {item}")
    # The tests' own extra brings pytest: a fresh environment with lockgate has none.
    where = shlex.quote(str(result.directory))
    click.echo(
        f"next: pip install -e {shlex.quote(f'{result.directory}[test]')} && cd {where} && pytest"
    )
