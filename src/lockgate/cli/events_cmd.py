"""``lockgate events``: deliver the outbox, list it, retry its dead letters."""

from __future__ import annotations

import signal
import time
from typing import Any

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["command"]


@click.group("events")
def command() -> None:
    """The outbox: events delivered to the notifiers of events.notifiers."""


def _outbox(ctx: click.Context) -> Any:
    from lockgate.operations.events import Outbox

    outbox = Outbox(ctx.ensure_object(AppContext).session())
    if not outbox.sections:
        raise click.UsageError("no notifier is configured (events.notifiers in lockgate.yaml)")
    outbox.store()  # one clear line when the state store keeps no outbox
    return outbox


@command.command("deliver")
@click.option("--follow", is_flag=True, help="Keep delivering new events until interrupted.")
@click.option(
    "--interval",
    type=click.FloatRange(0.05, 3600),
    default=0.5,
    show_default=True,
    help="With --follow: seconds between looks at the outbox.",
)
@json_option
@click.pass_context
def deliver(ctx: click.Context, follow: bool, interval: float, json_flag: bool) -> None:
    """Deliver every event that is due, to every notifier.

    Failed deliveries are retried later (exponential backoff with jitter, never sooner
    than the receiver's Retry-After); --follow keeps at it, and ends cleanly on SIGINT
    or SIGTERM. Exit 0 even when receivers are down: 'lockgate events ls' shows what waits.
    """
    outbox = _outbox(ctx)
    stop: list[int] = []
    if follow:
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    totals: dict[str, dict[str, int]] = {}
    try:
        while True:
            report = outbox.deliver(None, wait=0.0 if follow else 30.0)
            for kind in ("delivered", "failed", "dead"):
                for name, n in getattr(report, kind).items():
                    totals.setdefault(kind, {})[name] = totals.get(kind, {}).get(name, 0) + n
            totals["pending"] = dict(report.pending)
            if not follow or stop:
                break
            time.sleep(interval)
            if stop:
                break
    except KeyboardInterrupt:
        pass
    finally:
        outbox.close()
    if wants_json(ctx, json_flag):
        emit_json(totals)
        return
    for kind in ("delivered", "failed", "dead", "pending"):
        for name, n in sorted(totals.get(kind, {}).items()):
            click.echo(f"{name}: {n} {kind}")
    if not any(totals.values()):
        click.echo("nothing to deliver")


@command.command("ls")
@click.option("--pending", "state", flag_value="pending", help="Only deliveries still to come.")
@click.option("--dead", "state", flag_value="dead", help="Only dead letters.")
@click.option("--delivered", "state", flag_value="delivered", help="Only delivered events.")
@json_option
@click.pass_context
def ls(ctx: click.Context, state: str | None, json_flag: bool) -> None:
    """List deliveries: event, notifier, state, attempts, next attempt, last error."""
    outbox = _outbox(ctx)
    rows = outbox.rows(state)
    if wants_json(ctx, json_flag):
        emit_json(
            {
                "deliveries": [
                    {
                        "seq": d.seq,
                        "id": outbox.message(d.seq).id,
                        "type": outbox.message(d.seq).type,
                        "notifier": d.notifier,
                        "component": d.component,
                        "state": d.state,
                        "attempts": d.attempts,
                        "next_at": d.next_at if d.state == "pending" else None,
                        "last_error": d.last_error,
                    }
                    for d in rows
                ]
            }
        )
        return
    if not rows:
        click.echo("no deliveries" + (f" {state}" if state else ""))
        return
    table(
        None,
        ["event", "type", "notifier", "component", "state", "attempts", "next", "last error"],
        [
            (
                d.seq,
                outbox.message(d.seq).type,
                d.notifier,
                d.component or "",
                d.state,
                d.attempts,
                d.next_at if d.state == "pending" else "",
                d.last_error or "",
            )
            for d in rows
        ],
    )


@command.command("retry")
@click.argument("seqs", nargs=-1, type=int, metavar="[EVENT]...")
@click.option("--dead", "all_dead", is_flag=True, help="Retry every dead letter.")
@json_option
@click.pass_context
def retry(ctx: click.Context, seqs: tuple[int, ...], all_dead: bool, json_flag: bool) -> None:
    """Make dead letters pending again (EVENT: the event's number, from 'events ls'),
    then deliver what is due."""
    if bool(seqs) == all_dead:
        raise click.UsageError("give EVENT numbers or --dead (not both)")
    outbox = _outbox(ctx)
    try:
        revived = outbox.retry(None if all_dead else list(seqs))
        report = outbox.deliver(None, wait=30.0)
    finally:
        outbox.close()
    if wants_json(ctx, json_flag):
        emit_json({"retried": [d.seq for d in revived], **report.to_dict()})
        return
    click.echo(f"{len(revived)} dead letter(s) pending again")
    for name, n in sorted(report.delivered.items()):
        click.echo(f"{name}: {n} delivered")
