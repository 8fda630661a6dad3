"""``lockgate token create|ls|revoke``: the bearer tokens ``lockgate serve`` accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from lockgate.cli.context import AppContext
from lockgate.cli.output import emit_json, json_option, table, wants_json

if TYPE_CHECKING:
    from lockgate.contracts.state import TokenRecord

__all__ = ["group"]


@click.group("token")
def group() -> None:
    """Bearer tokens for 'lockgate serve' (stored hashed; shown once)."""


@group.command("create")
@click.option("--actor", "actor", required=True, metavar="NAME", help="Who the token acts as.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["viewer", "developer", "approver", "releaser", "admin"]),
    help="What the token may do (docs/server.md).",
)
@click.option("--stage", metavar="STAGE", help="Limit an approver or releaser to one stage.")
@click.option(
    "--expires", metavar="WHEN", help="A duration (30m, 12h, 90d) or a time (2027-01-31)."
)
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    actor: str,
    role: str,
    stage: str | None,
    expires: str | None,
    json_flag: bool,
) -> None:
    """Issue a token acting as NAME; it is printed once and never again."""
    from lockgate.operations.tokens import create_token

    session = ctx.ensure_object(AppContext).session()
    token, record = create_token(session, actor, role, stage=stage, expires=expires)
    if wants_json(ctx, json_flag):
        emit_json({"token": token, **_row(record)})
        return
    click.echo(token)
    scope = f" in stage {record.stage}" if record.stage else ""
    until = f", expires {record.expires_at}" if record.expires_at else ""
    click.echo(
        f"token {record.id}: {record.actor} as {record.role}{scope}{until} "
        "(copy it now: it is not shown again)",
        err=True,
    )


@group.command("ls")
@json_option
@click.pass_context
def ls(ctx: click.Context, json_flag: bool) -> None:
    """List issued tokens (never their secrets)."""
    from lockgate.operations.tokens import list_tokens

    records = list_tokens(ctx.ensure_object(AppContext).session())
    if wants_json(ctx, json_flag):
        emit_json([_row(r) for r in records])
        return
    columns = ["id", "actor", "role", "stage", "created (UTC)", "by", "expires", "revoked"]
    rows = [
        [r.id, r.actor, r.role, r.stage or "*", r.created_at, r.created_by, *_until(r)]
        for r in records
    ]
    table(None, columns, rows)


def _until(record: TokenRecord) -> tuple[str, str]:
    return record.expires_at or "never", record.revoked_at or ""


@group.command("revoke")
@click.argument("token_id", metavar="ID")
@json_option
@click.pass_context
def revoke(ctx: click.Context, token_id: str, json_flag: bool) -> None:
    """Revoke token ID: the server refuses it from the next request on."""
    from lockgate.operations.tokens import revoke_token

    record = revoke_token(ctx.ensure_object(AppContext).session(), token_id)
    if wants_json(ctx, json_flag):
        emit_json(_row(record))
        return
    click.echo(f"token {record.id} of {record.actor} revoked at {record.revoked_at}")


def _row(record: object) -> dict[str, object]:
    import attrs

    data = attrs.asdict(record)  # type: ignore[arg-type]
    data.pop("digest")
    return data
