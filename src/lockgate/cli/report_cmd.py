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
    from lockgate.operations.reports import summary as build

    data = build(ctx.ensure_object(AppContext).session(), recent=recent)
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
    from lockgate.operations.reports import OPERATIONS, statistics

    data = statistics(ctx.ensure_object(AppContext).session())
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
@click.option(
    "--head",
    metavar="SEQ:HASH",
    help="A head printed earlier by 'lockgate audit head': the log must still reach it.",
)
@json_option
@click.pass_context
def verify(ctx: click.Context, head: str | None, json_flag: bool) -> None:
    """Check the hash chain, and every approval, revision and pointer against it.

    An edited, deleted or reordered event is found, and so is a record changed outside
    lockgate; with --head, deleting the newest events (or all of them) is found too.
    Exit 1 when anything is wrong.
    """
    from lockgate.contracts.audit import check_head, parse_head, verify_state
    from lockgate.operations.reports import audit_verify

    if head is not None:
        parse_head(head)  # a malformed head is a usage error before any work
    session = ctx.ensure_object(AppContext).session()
    report = audit_verify(session)
    state = session.state()
    records = verify_state(state) if report.ok else []
    lost = check_head(state.chain(), head) if head is not None else None
    ok = report.ok and not records and lost is None
    if wants_json(ctx, json_flag):
        emit_json({**report.to_dict(), "ok": ok, "records": records, "head": lost})
    else:
        if report.ok:
            click.echo(f"audit log intact: {report.events} events, hash chain verified")
        else:
            click.echo(
                f"audit log broken at event {report.first_bad_seq}: {report.problem} "
                f"({report.events} events verified before it)"
            )
        for problem in records:
            click.echo(f"record not explained by the audit log: {problem}")
        if lost is not None:
            click.echo(f"audit log does not reach the recorded head: {lost}")
        elif head is not None and ok:
            click.echo(f"the log reaches the recorded head {head.strip()}")
    if not ok:
        ctx.exit(1)


@audit.command("head")
@json_option
@click.pass_context
def head(ctx: click.Context, json_flag: bool) -> None:
    """Print SEQ:HASH of the newest event, to keep outside .lockgate/ (a CI log, say).

    'lockgate audit verify --head SEQ:HASH' later shows whether the newest events (or
    all of them) were deleted since. The log is verified first: a broken log has no head
    worth keeping (exit 1).
    """
    from lockgate.contracts.audit import chain_head, verify_state
    from lockgate.errors import RefusedError
    from lockgate.operations.reports import audit_verify

    session = ctx.ensure_object(AppContext).session()
    report = audit_verify(session)
    if not report.ok:
        raise RefusedError(
            f"audit log broken at event {report.first_bad_seq}: {report.problem}; "
            "no head printed (see 'lockgate audit verify')"
        )
    records = verify_state(session.state())
    if records:
        raise RefusedError(
            f"a record is not explained by the audit log ({records[0]}); no head printed "
            "(see 'lockgate audit verify')"
        )
    value = chain_head(session.state())
    if wants_json(ctx, json_flag):
        seq, digest = value.split(":")
        emit_json({"head": value, "seq": int(seq), "hash": digest})
    else:
        click.echo(value)
