"""``lockgate promote``, ``rollback``, ``remove``, ``recover``, ``unlock``, ``verify`` and
``gc``."""

from __future__ import annotations

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, wants_json

__all__ = ["gc", "promote", "recover", "remove", "rollback", "unlock", "verify"]


def _emit(ctx: click.Context, json_flag: bool, result: object) -> None:
    from lockgate.operations.switch import SwitchResult

    assert isinstance(result, SwitchResult)
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
        return
    click.echo(result.summary())
    if result.gate is not None and (result.dry_run or result.forced):
        click.echo(f"gates: {result.gate.summary()}")
        for component in result.gate.components:
            for issue in component.issues:
                if issue.blocking:
                    click.echo(f"  {issue.describe()}")
    if result.diff is not None:
        for path in result.diff.added:
            click.echo(f"  + {path}")
        for path in result.diff.modified:
            click.echo(f"  ~ {path}")
        for path in result.diff.removed:
            click.echo(f"  - {path}")
    if result.changed and not result.dry_run:
        for location in result.locations:
            click.echo(f"  deployed: {location}")
    for warning in result.warnings:
        click.echo(f"lockgate: warning: {warning}", err=True)


@click.command("promote")
@click.argument("component", metavar="ID|WS:ID")
@click.option("--to", "to_stage", metavar="STAGE", help="Stage to enter (default: the next rung).")
@click.option("--rev", metavar="REV", help="Revision to promote (default: see below).")
@click.option(
    "--expect-current",
    metavar="REV|none",
    help="Refuse (exit 4) unless this is what the stage holds now.",
)
@click.option(
    "--dry-run", is_flag=True, help="Show the plan, the diff and the gates; change nothing."
)
@click.option("--force", is_flag=True, help="Promote past failing gates (needs --reason).")
@click.option("--reason", metavar="TEXT", help="Recorded in the audit log.")
@json_option
@click.pass_context
def promote(
    ctx: click.Context,
    component: str,
    to_stage: str | None,
    rev: str | None,
    expect_current: str | None,
    dry_run: bool,
    force: bool,
    reason: str | None,
    json_flag: bool,
) -> None:
    """Make a revision current in a stage, atomically, after its gates pass.

    By default the revision is the one current in the stage below (for the first stage:
    the component's latest revision), and the stage is the first rung that does not hold
    it yet. Exit 1 when a gate fails, 4 when another change won.
    """
    from lockgate.operations.promote import Promoter

    app = ctx.ensure_object(AppContext)
    result = Promoter(app.session()).promote(
        component,
        to=to_stage,
        rev=rev,
        expect_current=expect_current,
        dry_run=dry_run,
        force=force,
        reason=reason,
    )
    _emit(ctx, json_flag, result)
    if result.warnings:
        ctx.exit(3)


@click.command("rollback")
@click.argument("component", metavar="ID|WS:ID")
@click.option(
    "--stage", metavar="STAGE", help="Stage to roll back (default: the highest holding it)."
)
@click.option(
    "--to",
    "to",
    metavar="previous|last-good|none|REV",
    help="Where to go (default: last-good; none removes it from the stage).",
)
@click.option("--at", metavar="TIME", help="Go back to what was live at TIME.")
@click.option("--dry-run", is_flag=True, help="Show the switch; change nothing.")
@click.option("--reason", metavar="TEXT", help="Recorded in the audit log.")
@json_option
@click.pass_context
def rollback(
    ctx: click.Context,
    component: str,
    stage: str | None,
    to: str | None,
    at: str | None,
    dry_run: bool,
    reason: str | None,
    json_flag: bool,
) -> None:
    """Switch a stage back to a retained revision: instant, verified, audited."""
    from lockgate.operations.promote import Promoter

    if to is not None and at is not None:
        raise click.UsageError("give --to or --at, not both")
    app = ctx.ensure_object(AppContext)
    result = Promoter(app.session()).rollback(
        component, stage=stage, to=to, at=at, reason=reason, dry_run=dry_run
    )
    _emit(ctx, json_flag, result)
    if result.warnings:
        ctx.exit(3)


@click.command("remove")
@click.argument("component", metavar="ID|WS:ID")
@click.option("--reason", metavar="TEXT", help="Why it is retired (required; audited).")
@click.option("--dry-run", is_flag=True, help="Show the stages it would leave; change nothing.")
@json_option
@click.pass_context
def remove(
    ctx: click.Context, component: str, reason: str | None, dry_run: bool, json_flag: bool
) -> None:
    """Retire a component: take it out of every stage (each switch audited) and mark it
    retired, so ls and sync stop reporting it; gc reclaims its revisions under the usual
    retention. 'lockgate stage WS:ID' brings it back."""
    from lockgate.operations.remove import Removal

    app = ctx.ensure_object(AppContext)
    result = Removal(app.session()).remove(component, reason=reason, dry_run=dry_run)
    warnings = [w for s in result.switches for w in s.warnings]
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
    else:
        click.echo(result.summary())
        for warning in warnings:
            click.echo(f"lockgate: warning: {warning}", err=True)
    if warnings:
        ctx.exit(3)


@click.command("recover")
@json_option
@click.pass_context
def recover(ctx: click.Context, json_flag: bool) -> None:
    """Finish or undo operations a crash interrupted (any command also does this)."""
    from lockgate.operations.recover import recover_pending

    app = ctx.ensure_object(AppContext)
    settled = recover_pending(app.session(), thorough=True)
    if wants_json(ctx, json_flag):
        import attrs

        emit_json([attrs.asdict(s) for s in settled])
        return
    for item in settled:
        click.echo(item.summary())
    click.echo(f"{len(settled)} interrupted operation(s) settled")


@click.command("unlock")
@click.option(
    "--force",
    count=True,
    help="Remove the lock of a holder past its lease; twice (--force --force) even of a "
    "live holder within its lease.",
)
@click.option("--reason", metavar="TEXT", help="Why (required with --force; audited).")
@click.pass_context
def unlock(ctx: click.Context, force: int, reason: str | None) -> None:
    """Show who holds the project's operation lock; with --force, break it (audited)."""
    from lockgate.contracts.clock import now_iso
    from lockgate.contracts.refs import check_text
    from lockgate.contracts.state import AuditEvent
    from lockgate.errors import RefusedError
    from lockgate.operations.recover import settle

    app = ctx.ensure_object(AppContext)
    project = app.project()
    session = app.session()
    state = session.locking_state()
    owner = state.holder("operation")
    if not force:
        click.echo(f"locked by {owner.describe()}" if owner else "not locked")
        return
    if not reason:
        raise click.UsageError("--force needs --reason TEXT (it is audited)")
    check_text("--reason", reason)
    # A live holder within its lease is most likely working, not hung: breaking its lock
    # lets a second switch run beside it. One --force is for the hung; twice is "I know".
    live = owner is not None and owner.within_lease()
    if owner is not None and live and force < 2:
        who = owner.describe() if owner.known else "a live process"
        raise RefusedError(
            f"the lock is held by {who}, alive and within its lease; wait for it, or "
            "if you are sure it is hung, repeat --force (--force --force --reason TEXT)"
        )
    state.break_lock("operation")
    settle(session)
    state.append_event(
        AuditEvent(
            at=now_iso(),
            actor=project.actor,
            action="unlock",
            reason=reason,
            details={
                "owner": owner.to_dict() if owner else {},
                "holder_live": live,
                **project.identity.details(),
            },
        )
    )
    owner_pid = owner.pid if owner else None
    click.echo("lock removed" + (f" (was held by pid {owner_pid})" if owner_pid else ""))


@click.command("verify")
@click.option("--stage", metavar="STAGE", help="Only this stage's deployed entries.")
@json_option
@click.pass_context
def verify(ctx: click.Context, stage: str | None, json_flag: bool) -> None:
    """Check every deployed file, stored object and the audit chain; exit 1 on a problem."""
    from lockgate.operations.verify import verify as run_verify

    app = ctx.ensure_object(AppContext)
    report = run_verify(app.session(), stage)
    if wants_json(ctx, json_flag):
        emit_json(report.to_dict())
    else:
        for problem in report.problems:
            click.echo(f"problem: {problem}")
        checked = ", ".join(f"{v} {k}" for k, v in report.checked.items())
        click.echo(
            ("ok: " if report.ok else f"{len(report.problems)} problem(s); ") + f"checked {checked}"
        )
    if not report.ok:
        ctx.exit(1)


@click.command("gc")
@click.option("--keep", type=click.IntRange(min=1), help="Revisions kept per stage and component.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    help="Keep unreferenced objects younger than this many seconds (default gc.grace).",
)
@click.option("--reason", metavar="TEXT", help="Recorded in the audit log.")
@json_option
@click.pass_context
def gc(
    ctx: click.Context,
    keep: int | None,
    dry_run: bool,
    grace: float | None,
    reason: str | None,
    json_flag: bool,
) -> None:
    """Remove releases and objects no stage, last-good or retained revision needs."""
    from lockgate.operations.gc import collect_garbage

    app = ctx.ensure_object(AppContext)
    result = collect_garbage(app.session(), keep=keep, dry_run=dry_run, grace=grace, reason=reason)
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
    else:
        click.echo(result.summary())
