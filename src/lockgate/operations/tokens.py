"""Bearer tokens for ``lockgate serve``: issue, list, revoke, authenticate, authorize.

A token is ``lg_<id>_<secret>``: ``id`` (12 hex digits) names it in listings, the audit
log and ``token revoke``; ``secret`` is 32 random bytes. The state store keeps only the
SHA-256 of the whole token (:class:`~lockgate.contracts.state.TokenRecord`), through its
optional :class:`~lockgate.contracts.state.AccessTokens` capability, so the token is
shown once, when it is created, and a copy of the database grants nothing.

Roles (each includes what the one before it allows, but approver and releaser are
siblings):

==========  ==================================================================
viewer      every read
developer   viewer + stage, validate
approver    viewer + approve, reject (in its stage when it has one)
releaser    viewer + promote, rollback (in its stage when it has one)
admin       everything, every stage (remove: only admin)
==========  ==================================================================
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta, timezone

from lockgate.contracts.clock import now_iso, parse_time
from lockgate.contracts.identity import Identity
from lockgate.contracts.refs import check_text
from lockgate.contracts.state import AccessTokens, AuditEvent, TokenRecord, store_tokens
from lockgate.core.session import Session
from lockgate.errors import (
    AuthenticationError,
    InputError,
    MissingCapabilityError,
    NotFoundError,
    PermissionDeniedError,
)

__all__ = [
    "ACTIONS",
    "ROLES",
    "authenticate",
    "authenticate_digest",
    "authorize",
    "create_token",
    "list_tokens",
    "parse_expiry",
    "revoke_token",
]

ROLES = ("viewer", "developer", "approver", "releaser", "admin")
STAGED_ROLES = ("approver", "releaser")
"""Roles a token may limit to one stage."""

ACTIONS: dict[str, frozenset[str]] = {
    "read": frozenset(ROLES),
    "stage": frozenset({"developer", "admin"}),
    "validate": frozenset({"developer", "admin"}),
    "approve": frozenset({"approver", "admin"}),
    "reject": frozenset({"approver", "admin"}),
    "promote": frozenset({"releaser", "admin"}),
    "rollback": frozenset({"releaser", "admin"}),
    # Retiring a component takes it out of every stage at once and changes its status
    # for good: beyond what any one stage's releaser is trusted with.
    "remove": frozenset({"admin"}),
}
"""What each role may do: action -> the roles that allow it."""

_TOKEN = re.compile(r"lg_([0-9a-f]{12})_([A-Za-z0-9_-]{20,64})")
_DURATION = re.compile(r"(\d{1,6})([mhd])")


def digest_of(token: str) -> str:
    """What the store keeps of ``token``: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _tokens(session: Session) -> AccessTokens:
    store = store_tokens(session.state())
    if store is None:
        name = session.config.state.store
        raise MissingCapabilityError(
            f"state store {name!r} does not keep access tokens (the AccessTokens capability); "
            "use the sqlite state store (state.store: sqlite) to issue tokens and serve"
        )
    return store


def parse_expiry(text: str | None, *, now: datetime | None = None) -> str | None:
    """``--expires``: a duration (``30m``, ``12h``, ``90d``) or a time, as a timestamp."""
    if text is None:
        return None
    match = _DURATION.fullmatch(text.strip())
    if match is not None:
        amount, unit = int(match[1]), match[2]
        delta = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount)}.get(
            unit, timedelta(days=amount)
        )
        moment = (now or datetime.now(timezone.utc)) + delta
        return moment.isoformat(timespec="microseconds")
    return parse_time(text, option="--expires")


def create_token(
    session: Session,
    actor: str,
    role: str,
    *,
    stage: str | None = None,
    expires: str | None = None,
) -> tuple[str, TokenRecord]:
    """Issue a token for ``actor`` with ``role`` (and ``stage``); returns the token, to be
    shown once, and its stored record. Recorded as a ``token.create`` event."""
    actor = (check_text("--actor", actor) or "").strip()
    if not actor or len(actor) > 128 or any(c.isspace() and c != " " for c in actor):
        raise InputError(f"--actor {actor!r}: give a name of 1 to 128 characters, no tabs")
    if role not in ROLES:
        raise InputError(f"--role {role!r} is not a role; choose one of {', '.join(ROLES)}")
    if stage is not None:
        if role not in STAGED_ROLES:
            raise InputError(
                f"--stage applies to approver and releaser tokens, not {role}; drop --stage"
            )
        session.project.check_stage(stage)
    expires_at = parse_expiry(expires)
    at = now_iso()
    if expires_at is not None and expires_at <= at:
        raise InputError(f"--expires {expires!r} is in the past; give a later time")
    store = _tokens(session)
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    token = f"lg_{token_id}_{secret}"
    issuer = session.identity
    record = TokenRecord(
        token_id, digest_of(token), actor, role, stage, at, issuer.name, expires_at
    )
    store.add_token(record, _event(issuer, "token.create", at, record))
    return token, record


def list_tokens(session: Session) -> list[TokenRecord]:
    """Every token issued, oldest first (revoked and expired ones too)."""
    return _tokens(session).tokens()


def revoke_token(session: Session, token_id: str) -> TokenRecord:
    """Revoke token ``token_id`` (at once: the next request with it gets 401)."""
    at = now_iso()
    placeholder = TokenRecord(token_id, "", "", "", None, at, "")
    revoked = _tokens(session).revoke_token(
        token_id, at, _event(session.identity, "token.revoke", at, placeholder)
    )
    if revoked is None:
        raise NotFoundError(f"no token has id {token_id!r}; 'lockgate token ls' lists them")
    return revoked


def _event(issuer: Identity, action: str, at: str, token: TokenRecord) -> AuditEvent:
    details: dict[str, object] = {"token": token.id, **issuer.details()}
    if action == "token.create":
        details.update(actor=token.actor, role=token.role, stage=token.stage)
        details["expires_at"] = token.expires_at
    return AuditEvent(at=at, actor=issuer.name, action=action, details=details)


def authenticate(session: Session, header: str | None) -> TokenRecord:
    """The token an ``Authorization: Bearer ...`` header carries, if lockgate accepts it;
    else :class:`AuthenticationError` saying why (never which part of a secret was
    wrong)."""
    if not header:
        raise AuthenticationError("no token: send 'Authorization: Bearer <token>'")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or _TOKEN.fullmatch(value.strip()) is None:
        raise AuthenticationError(
            "malformed Authorization header: send 'Bearer lg_<id>_<secret>', "
            "as 'lockgate token create' printed it"
        )
    return authenticate_digest(session, digest_of(value.strip()))


def authenticate_digest(session: Session, digest: str) -> TokenRecord:
    """The token whose SHA-256 is ``digest``, if lockgate accepts it now (the dashboard
    checks a sign-in again by this, keeping no token); else :class:`AuthenticationError`."""
    record = _tokens(session).token_by_digest(digest)
    if record is None:
        raise AuthenticationError("unknown token: it was never issued here")
    if record.revoked_at is not None:
        raise AuthenticationError(f"token {record.id} was revoked at {record.revoked_at}")
    if record.expires_at is not None and record.expires_at <= now_iso():
        raise AuthenticationError(f"token {record.id} expired at {record.expires_at}")
    return record


def authorize(token: TokenRecord, action: str, stage: str | None = None) -> None:
    """Nothing when ``token`` may do ``action`` (in ``stage``), else
    :class:`PermissionDeniedError` saying what was missing."""
    allowed = ACTIONS[action]
    if token.role not in allowed:
        need = " or ".join(sorted(allowed - {"admin"})) or "admin"
        raise PermissionDeniedError(
            f"{action} needs role {need} (or admin); token {token.id} of {token.actor} "
            f"has role {token.role}"
        )
    if token.stage is not None and stage is not None and stage != token.stage:
        raise PermissionDeniedError(
            f"{action} in stage {stage} needs a token for stage {stage} or every stage; "
            f"token {token.id} of {token.actor} is limited to stage {token.stage}"
        )
