"""``lockgate stage`` and ``lockgate sync``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, wants_json

__all__ = ["progress_bar", "stage", "stopped_cleanly", "sync"]


@contextmanager
def stopped_cleanly() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the command like Ctrl-C (exit 130, one line).

    Their default action ends the process at once, so a staging cut short that way left
    its temporary objects behind; raised as ``KeyboardInterrupt`` they unwind like an
    interrupt: every thread finishes its current file and every temporary file is
    removed. (``kill -9`` cannot be caught: the next staging, or ``gc``, removes what it
    leaves.)
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(
        signal.SIGTERM
    ) not in (signal.SIG_DFL, None):
        # Not ours to handle: a process that runs commands for others (``lockgate watch``
        # answering the warm path) stops on its own terms, after the command.
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def progress_bar(app: AppContext, label: str) -> Iterator[Any]:
    """A progress callback: a bar on a terminal for large jobs, silence otherwise.

    Large means ``staging.progress_min_files`` files or ``staging.progress_min_bytes``
    bytes to store (a thousand 1 MiB files take longer than the file count suggests).
    The bar follows bytes, with the file count beside it.
    """
    import sys

    settings = app.project().config.staging
    if app.json or app.verbosity < 0 or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[files]}"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    # On stderr, the stream checked above: stdout stays clean for what the command prints.
    console = Console(stderr=True)
    with Progress(*columns, console=console, transient=True, redirect_stdout=False) as bar:
        task = None

        def update(files_done: int, files_total: int, done: int, total: int) -> None:
            nonlocal task
            if task is None:
                if (
                    files_total < settings.progress_min_files
                    and total < settings.progress_min_bytes
                ):
                    return
                task = bar.add_task(label, total=total, files="")
            # sync reports one component after another: the total follows each.
            bar.update(task, completed=done, total=total, files=f"{files_done}/{files_total} files")

        yield update


@click.command("stage")
@click.argument("component", metavar="WS:ID")
@click.option(
    "--to", "to_stage", metavar="STAGE", help="Stage it is meant for (default: the first)."
)
@click.option("--dry-run", is_flag=True, help="Show what would be staged; store nothing.")
@click.option("--reason", metavar="TEXT", help="Recorded in the audit log.")
@json_option
@click.pass_context
def stage(
    ctx: click.Context,
    component: str,
    to_stage: str | None,
    dry_run: bool,
    reason: str | None,
    json_flag: bool,
) -> None:
    """Snapshot a component's files as an immutable revision.

    Staging an unchanged component creates no revision and says so.
    """
    from lockgate.operations.stage import Stager

    app = ctx.ensure_object(AppContext)
    session = app.session()
    with stopped_cleanly(), progress_bar(app, f"staging {component}") as progress:
        result = Stager(session).stage(
            component, to=to_stage, dry_run=dry_run, progress=progress, reason=reason
        )
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
    else:
        click.echo(result.summary())
    for warning in result.warnings:
        click.echo(f"lockgate: warning: {warning}", err=True)
    if result.warnings:
        ctx.exit(3)


@click.command("sync")
@click.argument("workspaces", nargs=-1, metavar="[WS]...")
@click.option("--to", "to_stage", metavar="STAGE", help="Stage they are meant for.")
@click.option("--dry-run", is_flag=True, help="Show what would change; store nothing.")
@click.option("--reason", metavar="TEXT", help="Recorded in the audit log.")
@json_option
@click.pass_context
def sync(
    ctx: click.Context,
    workspaces: tuple[str, ...],
    to_stage: str | None,
    dry_run: bool,
    reason: str | None,
    json_flag: bool,
) -> None:
    """Stage every component whose files changed since its last revision.

    One component's failure never stops the others; exits 1 if any failed.
    """
    from lockgate.contracts.refs import check_name
    from lockgate.operations.stage import Stager

    for ws in workspaces:
        check_name("workspace", ws)
    app = ctx.ensure_object(AppContext)
    session = app.session()
    with stopped_cleanly(), progress_bar(app, "sync") as progress:
        result = Stager(session).sync(
            list(workspaces) or None,
            to=to_stage,
            dry_run=dry_run,
            progress=progress,
            reason=reason,
        )
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
    else:
        for r in result.results:
            if r.created:
                click.echo(r.summary())
        for comp, reason in result.failures:
            click.echo(f"{comp}: FAILED: {reason}")
        for comp in result.retired:
            click.echo(f"{comp}: retired, left alone ('lockgate stage {comp}' brings it back)")
        verb = "would stage" if dry_run else "staged"
        click.echo(
            f"found {result.found}, {verb} {result.staged}, unchanged {result.unchanged}, "
            f"failed {len(result.failures)}"
        )
    if result.failures:
        ctx.exit(1)
