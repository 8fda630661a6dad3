"""Builtin plugin ``watch``: ``lockgate watch``, the dev-mode watcher.

``lockgate watch [WS...] [--stage STAGE]`` keeps components staged and validated while
people edit them. File events (watchdog: inotify on Linux, polling as a fallback) are
only *hints*: they are debounced and coalesced per component, then the component is
rescanned through the workspace source's stat cache, restaged only if its content
changed, and validated. It never promotes. See ``docs/watcher.md``.

This module is imported whenever plugins load, so it holds only the hooks and the
command (the settings are in :mod:`~lockgate.builtin_plugins.watcher.settings`); the
watch loop (and watchdog) is imported by the command itself, from
:mod:`lockgate.builtin_plugins.watcher.engine`.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import click

from lockgate.builtin_plugins.watcher.settings import WatchSettings
from lockgate.plugin import hookimpl

__all__ = ["WatchSettings", "watch"]


@hookimpl
def register_settings() -> type:
    return WatchSettings


@hookimpl
def register_commands(register: Callable[[click.Command], None]) -> None:
    register(watch)


@click.command("watch")
@click.argument("workspaces", nargs=-1, metavar="[WS]...")
@click.option(
    "--stage",
    "stage_name",
    metavar="STAGE",
    help="Stage the revisions are meant for (default: the first).",
)
@click.option(
    "--poll",
    "force_polling",
    is_flag=True,
    help="Poll the files instead of using OS file events (plugins.watch.force_polling).",
)
@click.option("--json", "json_flag", is_flag=True, help="One JSON object per line instead of text.")
@click.pass_context
def watch(
    ctx: click.Context,
    workspaces: tuple[str, ...],
    stage_name: str | None,
    force_polling: bool,
    json_flag: bool,
) -> None:
    """Stage and validate components as their files change (never promotes).

    Watches every workspace, or only WS...; prints one line per new revision (JSON lines
    with --json) and stops cleanly on Ctrl-C or SIGTERM (exit 0).
    """
    from lockgate.builtin_plugins.watcher.engine import Output, Watcher
    from lockgate.plugin import check_name, current_context

    for ws in workspaces:
        check_name("workspace", ws)
    context = current_context()
    settings = context.settings
    if not isinstance(settings, WatchSettings):
        settings = WatchSettings()
    if force_polling:
        settings = attrs.evolve(settings, force_polling=True)
    output = Output(json=json_flag or context.json, verbosity=context.verbosity)
    watcher = Watcher(
        context, workspaces=workspaces, stage=stage_name, settings=settings, output=output
    )
    watcher.run()
