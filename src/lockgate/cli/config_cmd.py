"""``lockgate config show|validate``."""

from __future__ import annotations

from typing import Any

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["command"]


@click.group("config")
def command() -> None:
    """Show or check the resolved configuration."""


@command.command("show")
@json_option
@click.pass_context
def show(ctx: click.Context, json_flag: bool) -> None:
    """Print every setting, its value and where it came from.

    Sources: default, file (lockgate.yaml:LINE), environment (LOCKGATE__...), or
    plugin (NAME, through on_config_load).
    """
    project = ctx.ensure_object(AppContext).project(require=False)
    rows = [
        {"key": ".".join(path), "value": value, "source": str(project.layers.source(path))}
        for path, value in _leaves(project.resolved())
    ]
    if wants_json(ctx, json_flag):
        emit_json(
            {
                "file": str(project.layers.file) if project.layers.file else None,
                "settings": rows,
            }
        )
        return
    where = project.layers.file or "no lockgate.yaml found: defaults only"
    table(f"configuration ({where})", ["key", "value", "source"], _rows(rows))


@command.command("validate")
@json_option
@click.pass_context
def validate(ctx: click.Context, json_flag: bool) -> None:
    """Check lockgate.yaml, the LOCKGATE__* overrides and every plugin's settings.

    Exits 0 when valid, 2 with the first problem's file, line and key when not, 3 when a
    plugin ``plugins.require`` names is missing, failed, disabled or of the wrong version.
    """
    project = ctx.ensure_object(AppContext).project()
    project.check_role_names(strict=True)
    failed = [i.label for i in project.plugins.failures]
    unsatisfied = project.required_problems()
    result = {
        "valid": not unsatisfied,
        "file": str(project.layers.file),
        "plugins_with_settings": sorted(project.settings),
        "plugins_failed": failed,
        "plugins_required_unsatisfied": unsatisfied,
    }
    if wants_json(ctx, json_flag):
        emit_json(result)
    elif not unsatisfied:
        click.echo(f"{project.layers.file}: valid")
    if unsatisfied:
        project.check_required()  # the one-line error, exit 3


def _rows(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    import json

    return [(r["key"], json.dumps(r["value"], default=str), r["source"]) for r in rows]


def _leaves(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(data, dict) and data:
        out = []
        for key, value in data.items():
            out.extend(_leaves(value, (*prefix, str(key))))
        return out
    return [(prefix, data)]
