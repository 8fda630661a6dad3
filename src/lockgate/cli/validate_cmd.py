"""``lockgate validate``, ``lockgate approve`` and ``lockgate reject``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

__all__ = ["approve", "reject", "validate"]


@click.command("validate")
@click.argument("components", nargs=-1, metavar="[WS:ID]...")
@click.option(
    "--stage",
    metavar="STAGE",
    help="Validate for entering this stage (default: each component's next stage).",
)
@click.option(
    "--workspace", is_flag=True, help="Validate the files as they are in the workspace now."
)
@click.option("--no-cache", is_flag=True, help="Call every validator again.")
@json_option
@click.pass_context
def validate(
    ctx: click.Context,
    components: tuple[str, ...],
    stage: str | None,
    workspace: bool,
    no_cache: bool,
    json_flag: bool,
) -> None:
    """Run every enabled validator and report readiness; exit 1 when not ready.

    Without WS:ID, every staged component is validated. Components are validated
    together, so dependencies between them and conflicts are checked as a whole.
    """
    from lockgate.operations.recover import settle
    from lockgate.operations.validate import Validation

    app = ctx.ensure_object(AppContext)
    session = app.session()
    settle(session)
    refs = list(components) or [r.component for r in session.state().components()]
    if not refs:
        raise click.UsageError("nothing is staged yet; stage components first")
    report = Validation(session).run(refs, stage, use_cache=not no_cache, workspace=workspace)
    if wants_json(ctx, json_flag):
        emit_json(report.to_dict())
    else:
        from lockgate.contracts.models import Severity
        from lockgate.contracts.refs import short

        table(
            None,
            ["component", "revision", "stage", "ready", "errors", "warnings", "cached"],
            (
                (
                    r.component,
                    short(r.revision) if r.revision else "workspace",
                    r.stage,
                    "yes" if r.ready else "NO",
                    r.count(Severity.ERROR),
                    r.count(Severity.WARNING),
                    f"{r.cached}/{len(r.validators)}",
                )
                for r in report.components
            ),
        )
        for result in report.components:
            for issue in result.issues:
                if issue.components:
                    continue
                click.echo(f"{result.component}: {issue.describe()}")
        for issue in report.integration_issues:
            click.echo(f"integration: {issue.describe()}")
        for hint in report.recommendations:
            click.echo(f"recommendation: {hint}")
        click.echo(
            f"{report.summary()} ({len(report.components)} validated in {report.elapsed:.2f} s)"
        )
    if not report.ready:
        ctx.exit(1)


@click.command("approve")
@click.argument("component", metavar="WS:ID")
@click.option("--rev", "revision", metavar="REV", help="Revision to approve (default: latest).")
@click.option("--comment", metavar="TEXT", help="Recorded with the approval.")
@click.option("--reason", metavar="TEXT", help="Recorded in the audit log.")
@click.option("--sign", is_flag=True, help="Sign the approval with an SSH key (ssh-keygen -Y).")
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key to sign with (default: LOCKGATE_SIGNING_KEY, else ~/.ssh/id_ed25519).",
)
@click.option("--stage", metavar="STAGE", help="Stage the signature is for (default: the next).")
@json_option
@click.pass_context
def approve(
    ctx: click.Context,
    component: str,
    revision: str | None,
    comment: str | None,
    reason: str | None,
    sign: bool,
    key: Path | None,
    stage: str | None,
    json_flag: bool,
) -> None:
    """Approve a revision (never your own); restaging voids approvals.

    With --sign, the approval carries an SSH signature over the component, the revision's
    digest, the stage and the decision, verified against allowed_signers (beside
    lockgate.yaml) before it is recorded; stages may count only signed approvals.
    """
    if (key or stage) and not sign:
        raise click.UsageError("--key and --stage go with --sign")
    if sign and key is None:
        default = os.environ.get("LOCKGATE_SIGNING_KEY") or "~/.ssh/id_ed25519"
        key = Path(default).expanduser()
    signing = {"sign_key": key, "signed_stage": stage} if sign else {}
    _decide(ctx, component, "approve", revision, comment, reason, json_flag, **signing)


@click.command("reject")
@click.argument("component", metavar="WS:ID")
@click.option("--reason", required=True, metavar="TEXT", help="Why (required; audited).")
@click.option("--rev", "revision", metavar="REV", help="Revision to reject (default: latest).")
@json_option
@click.pass_context
def reject(
    ctx: click.Context, component: str, reason: str, revision: str | None, json_flag: bool
) -> None:
    """Reject a revision: it cannot be promoted until it is restaged."""
    _decide(ctx, component, "reject", revision, None, reason, json_flag)


def _decide(
    ctx: click.Context,
    component: str,
    decision: str,
    revision: str | None,
    comment: str | None,
    reason: str | None,
    json_flag: bool,
    **signing: Any,
) -> None:
    from lockgate.operations.approve import decide

    app = ctx.ensure_object(AppContext)
    result = decide(
        app.session(),
        component,
        "approve" if decision == "approve" else "reject",
        revision=revision,
        comment=comment,
        reason=reason,
        **signing,
    )
    if wants_json(ctx, json_flag):
        emit_json(result.to_dict())
    else:
        click.echo(result.summary())
