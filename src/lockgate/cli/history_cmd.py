"""``lockgate history`` and ``lockgate log``: the audit trail, and what was live when."""

from __future__ import annotations

from typing import Any

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["history", "log"]


def _action(event: dict[str, Any]) -> str:
    from lockgate.operations.gates import gates_note

    text = (
        event["action"] if event["outcome"] == "ok" else f"{event['action']} ({event['outcome']})"
    )
    note = gates_note(event["details"])  # a weakened gate shows where people look
    if event["action"] == "announce":  # which plugin failed to hear what
        note = f"{event['details'].get('plugin')} in {event['details'].get('hook')}"
    return f"{text} ({note})" if note else text


def _event_rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    from lockgate.contracts.refs import short

    return [
        (
            e["seq"],
            e["at"][:19].replace("T", " "),
            e["actor"],
            _action(e),
            e["component"] or "",
            e["stage"] or "",
            short(e["revision"]),
            e["reason"] or "",
        )
        for e in events
    ]


EVENT_COLUMNS = ["seq", "at (UTC)", "actor", "action", "component", "stage", "revision", "reason"]


@click.command("history")
@click.argument("component", required=False, metavar="[WS:ID]")
@click.option("--stage", metavar="STAGE", help="With --at: the stage to look at.")
@click.option("--at", "at", metavar="TIME", help="What was live in --stage at TIME (ISO 8601).")
@json_option
@click.pass_context
def history(
    ctx: click.Context, component: str | None, stage: str | None, at: str | None, json_flag: bool
) -> None:
    """A component's audit history, or what was live in a stage at a moment.

    \b
    lockgate history alice:etl
    lockgate history --stage production --at 2026-11-20T10:00
    """
    from lockgate.contracts.clock import parse_time
    from lockgate.contracts.refs import ComponentRef
    from lockgate.contracts.state import EventFilter
    from lockgate.errors import InputError
    from lockgate.operations.reports import event_dict, history, live_at

    session = ctx.ensure_object(AppContext).session()
    if at is not None or stage is not None:
        if at is None or stage is None:
            raise InputError(
                "--stage and --at go together: lockgate history --stage STAGE --at TIME"
            )
        when = parse_time(at)
        component_id = ComponentRef.parse(component).component_id if component else None
        rows = live_at(session, stage, when, component_id)
        if wants_json(ctx, json_flag):
            emit_json({"stage": stage, "at": when, "live": rows})
            return
        if not rows:
            click.echo(f"nothing was live in {stage} at {when}")
            return
        table(
            f"live in {stage} at {when}",
            ["component", "revision", "since (UTC)", "by", "action", "reason"],
            [
                (
                    r["component"],
                    r["revision"][:12],
                    r["since"][:19].replace("T", " "),
                    r["by"],
                    r["action"],
                    r["reason"] or "",
                )
                for r in rows
            ],
        )
        return
    if component is None:
        raise InputError("give a component (lockgate history WS:ID) or --stage STAGE --at TIME")
    ref = ComponentRef.parse(component)
    events = [event_dict(e) for e in history(session, EventFilter(component=str(ref)))]
    if wants_json(ctx, json_flag):
        emit_json({"component": str(ref), "events": events})
        return
    if not events:
        click.echo(f"{ref} has no history yet")
        return
    table(f"history of {ref}", EVENT_COLUMNS, _event_rows(events))


@click.command("log")
@click.option("--component", metavar="WS:ID", help="Only this component.")
@click.option("--stage", metavar="STAGE", help="Only this stage.")
@click.option("--actor", metavar="NAME", help="Only this actor.")
@click.option("--action", metavar="ACTION", help="Only this action (stage, promote, …).")
@click.option("--since", metavar="TIME", help="From this time (ISO 8601).")
@click.option("--until", metavar="TIME", help="Up to this time (ISO 8601).")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@click.pass_context
def log(
    ctx: click.Context,
    component: str | None,
    stage: str | None,
    actor: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    json_flag: bool,
) -> None:
    """The audit log, newest first, filtered."""
    from lockgate.contracts.clock import parse_time
    from lockgate.contracts.refs import ComponentRef
    from lockgate.contracts.state import EventFilter
    from lockgate.operations.reports import event_dict, history

    session = ctx.ensure_object(AppContext).session()
    where = EventFilter(
        component=str(ComponentRef.parse(component)) if component else None,
        stage=session.check_stage(stage) if stage else None,
        actor=actor,
        action=action,
        since=parse_time(since, option="--since") if since else None,
        until=parse_time(until, option="--until") if until else None,
        limit=limit,
        newest_first=True,
    )
    events = [event_dict(e) for e in history(session, where)]
    if wants_json(ctx, json_flag):
        emit_json(events)
        return
    if not events:
        click.echo("no matching events")
        return
    table(None, EVENT_COLUMNS, _event_rows(events))
