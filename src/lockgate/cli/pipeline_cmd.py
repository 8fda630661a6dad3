"""``lockgate pipeline``: plan, promote, roll back and show pipeline runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["group"]


@click.group("pipeline")
def group() -> None:
    """Groups of components that climb the ladder together, all or nothing (docs/pipelines.md)."""


@group.command("list")
@json_option
@click.pass_context
def list_(ctx: click.Context, json_flag: bool) -> None:
    """The pipelines defined under pipelines/ and their recorded runs."""
    from lockgate.operations.pipeline_report import list_pipelines
    from lockgate.operations.recover import note_pending

    app = ctx.ensure_object(AppContext)
    session = app.session()
    note_pending(session)
    rows = list_pipelines(session.state(), session.project.root)
    if wants_json(ctx, json_flag):
        emit_json(rows)
        return
    table(
        None,
        ["pipeline", "runs", "last run", "stage"],
        [
            (r["pipeline_id"], r["runs"], r["last_status"] or "-", r["last_stage"] or "-")
            for r in rows
        ],
    )


@group.command("plan")
@click.argument("name")
@click.option("--to", "to_stage", metavar="STAGE", required=True, help="Stage to enter.")
@json_option
@click.pass_context
def plan(ctx: click.Context, name: str, to_stage: str, json_flag: bool) -> None:
    """Show the levels of pipeline NAME and what each member's step will do."""
    from lockgate.operations.pipeline import PipelineRunner

    app = ctx.ensure_object(AppContext)
    planned = PipelineRunner(app.session()).plan(name, to_stage)
    if wants_json(ctx, json_flag):
        emit_json(planned.to_dict())
        return
    click.echo(
        f"pipeline {name} into {planned.stage}: {len(planned.steps)} member(s), "
        f"{len(planned.levels)} level(s), {len(planned.changing)} to promote"
    )
    for number, level in enumerate(planned.levels):
        click.echo(f"level {number}:")
        for step in level:
            after = f" (after {', '.join(step.depends_on)})" if step.depends_on else ""
            click.echo(f"  {step.describe()}{after}")


def _progress(ctx: click.Context, json_flag: bool) -> Callable[[dict[str, Any]], None] | None:
    """On a terminal (and not for --json), a line per member as its step settles."""
    import sys

    if wants_json(ctx, json_flag) or not sys.stderr.isatty():
        return None

    def show(step: dict[str, Any]) -> None:
        tries = f" after {step['attempts']} attempts" if step["attempts"] > 1 else ""
        click.echo(f"  {step['component']}: {step['status']}{tries}", err=True)

    return show


def _render(
    ctx: click.Context, json_flag: bool, report: dict[str, Any], *, exit_code: bool = True
) -> None:
    if wants_json(ctx, json_flag):
        emit_json(report)
    else:
        from lockgate.contracts.refs import short

        rows = [
            (
                s["component"],
                s["action"],
                short(s["revision_from"]) if s["revision_from"] else "-",
                short(s["revision_to"]) if s["revision_to"] else "-",
                s["status"],
                s["attempts"],
                f"{s['duration']:.2f}",
                "; ".join(s["issues"]),
            )
            for s in report["step_results"]
        ]
        title = (
            f"pipeline {report['pipeline_id']} ({report['kind']} into {report['stage']}"
            f"{', dry run' if report['dry_run'] else ''}): {report['status']}"
        )
        table(
            title, ["component", "action", "from", "to", "status", "attempts", "s", "issues"], rows
        )
        for issue in report["issues"]:
            click.echo(f"  {issue}")
        if report.get("cause"):
            click.echo(f"cause: {report['cause']}")
        click.echo(
            f"{report['completed_steps']}/{report['total_steps']} step(s) done, "
            f"{report['failed_steps']} failed, {report['execution_time']:.2f} s"
        )
    if exit_code and report["status"] not in ("completed", "planned"):
        ctx.exit(1)


@group.command("promote")
@click.argument("name")
@click.option("--to", "to_stage", metavar="STAGE", required=True, help="Stage to enter.")
@click.option("--dry-run", is_flag=True, help="Plan and gate every member; change nothing.")
@click.option("--reason", metavar="TEXT", help="Recorded in the audit log.")
@json_option
@click.pass_context
def promote(
    ctx: click.Context, name: str, to_stage: str, dry_run: bool, reason: str | None, json_flag: bool
) -> None:
    """Promote every member of pipeline NAME into STAGE, all or nothing.

    Every member is gated before anything moves; then each is switched in dependency
    order, and if one fails the members already switched are switched back. Exit 1 when
    the run was refused or rolled back.
    """
    from lockgate.operations.pipeline import PipelineRunner

    app = ctx.ensure_object(AppContext)
    runner = PipelineRunner(app.session())
    runner.on_step = _progress(ctx, json_flag)
    report = runner.promote(name, to=to_stage, dry_run=dry_run, reason=reason)
    _render(ctx, json_flag, report)


@group.command("rollback")
@click.argument("name")
@click.option(
    "--stage", metavar="STAGE", help="Stage of the run to undo (default: the last run's)."
)
@click.option("--dry-run", is_flag=True, help="Show what would switch; change nothing.")
@click.option("--reason", metavar="TEXT", help="Recorded in the audit log.")
@json_option
@click.pass_context
def rollback(
    ctx: click.Context,
    name: str,
    stage: str | None,
    dry_run: bool,
    reason: str | None,
    json_flag: bool,
) -> None:
    """Return every member of pipeline NAME to what it was before its last completed run."""
    from lockgate.operations.pipeline import PipelineRunner

    app = ctx.ensure_object(AppContext)
    runner = PipelineRunner(app.session())
    runner.on_step = _progress(ctx, json_flag)
    report = runner.rollback(name, stage=stage, dry_run=dry_run, reason=reason)
    _render(ctx, json_flag, report)


@group.command("show")
@click.argument("name")
@click.option("--run", "number", type=int, metavar="N", help="Run number (default: the last).")
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, number: int | None, json_flag: bool) -> None:
    """The report of a recorded run of pipeline NAME."""
    from lockgate.operations.pipeline_report import find_run
    from lockgate.operations.recover import note_pending

    app = ctx.ensure_object(AppContext)
    session = app.session()
    note_pending(session)
    report = find_run(session.state(), name, number=number)
    assert report is not None
    if wants_json(ctx, json_flag):
        emit_json(report)
        return
    click.echo(f"run {report['run']} of pipeline {name} ({report.get('started_at')})")
    _render(ctx, False, report, exit_code=False)
