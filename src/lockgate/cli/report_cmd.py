"""``lockgate summary``, ``lockgate stats`` and ``lockgate audit verify``."""

from __future__ import annotations

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["audit", "stats", "summary"]


@click.command("summary")
@click.option("--recent", type=click.IntRange(min=0), default=10, show_default=True)
@json_option
@click.pass_context
def summary(ctx: click.Context, recent: int, json_flag: bool) -> None:
    """Staged components, pipelines, status distribution, recent activities."""
    from lockgate.core.reports import summary as build

    data = build(ctx.ensure_object(AppContext).project(), recent=recent)
    if wants_json(ctx, json_flag):
        emit_json(data)
        return
    click.echo(
        f"staged components: {data['staged_components']}    "
        f"integration pipelines: {data['integration_pipelines']}"
    )
    table("status", ["status", "components"], data["component_status_distribution"].items())
    table(
        "recent activities",
        ["at (UTC)", "component", "action", "actor", "stage"],
        [
            (
                a["activity"]["timestamp"][:19].replace("T", " "),
                a["component_id"] or "",
                a["activity"]["action"]
                + ("" if a["activity"]["outcome"] == "ok" else f" ({a['activity']['outcome']})"),
                a["activity"]["actor"],
                a["activity"]["stage"] or "",
            )
            for a in data["recent_activities"]
        ],
    )


@click.command("stats")
@json_option
@click.pass_context
def stats(ctx: click.Context, json_flag: bool) -> None:
    """Operation counts and success rates; components by type, status, workspace."""
    from lockgate.core.reports import OPERATIONS, statistics

    data = statistics(ctx.ensure_object(AppContext).project())
    if wants_json(ctx, json_flag):
        emit_json(data)
        return
    ops = data["integration_operations"]
    table(
        "operations",
        ["operation", "total", "succeeded", "failed", "success rate"],
        [
            (
                name,
                ops[name]["total"],
                ops[name]["succeeded"],
                ops[name]["failed"],
                "-" if ops[name]["success_rate"] is None else f"{ops[name]['success_rate']:.1%}",
            )
            for name in OPERATIONS
        ],
    )
    comps = data["component_statistics"]
    for key in ("by_type", "by_status", "by_workspace"):
        table(f"components {key.replace('_', ' ')}", [key[3:], "components"], comps[key].items())


@click.group("audit")
def audit() -> None:
    """Check the audit log."""


@audit.command("verify")
@json_option
@click.pass_context
def verify(ctx: click.Context, json_flag: bool) -> None:
    """Check the hash chain: an edited, deleted or reordered event is found (exit 1)."""
    from lockgate.core.reports import audit_verify

    report = audit_verify(ctx.ensure_object(AppContext).project())
    if wants_json(ctx, json_flag):
        emit_json(report.to_dict())
    elif report.ok:
        click.echo(f"audit log intact: {report.events} events, hash chain verified")
    else:
        click.echo(
            f"audit log broken at event {report.first_bad_seq}: {report.problem} "
            f"({report.events} events verified before it)"
        )
    if not report.ok:
        ctx.exit(1)
