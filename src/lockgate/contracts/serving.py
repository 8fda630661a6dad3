"""``server:`` in ``lockgate.yaml``: what ``lockgate serve`` takes from the project rather
than from its command line (docs/server.md). Read with the rest of the configuration, so
a misspelt key is one line naming its file and line like any other."""

from __future__ import annotations

import attrs

from lockgate.contracts.records import record

__all__ = ["JwtSection", "ServerSection"]


@record
class JwtSection:
    """``server.jwt:`` — JSON Web Tokens ``lockgate serve`` accepts besides its own
    (docs/server.md): signed by one of the public keys in ``keys`` (PEM files, relative
    to the project), with this ``issuer`` and ``audience``; ``claims`` names the claims
    that carry the actor, the role and the stage."""

    keys: list[str] = attrs.field(factory=list)
    issuer: str = ""
    audience: str = ""
    algorithms: list[str] = attrs.field(factory=lambda: ["RS256", "ES256", "EdDSA"])
    claims: dict[str, str] = attrs.field(
        factory=lambda: {"actor": "sub", "role": "lockgate_role", "stage": "lockgate_stage"}
    )
    leeway: float = attrs.field(
        default=30.0, validator=[attrs.validators.ge(0), attrs.validators.le(3600)]
    )


@record
class ServerSection:
    """``server:`` — ``lockgate serve``'s settings that belong to the project: how long
    an ``Idempotency-Key``'s answer (and a job's) is kept, and JWTs it accepts."""

    idempotency_hours: float = attrs.field(
        default=24.0, validator=[attrs.validators.ge(0.01), attrs.validators.le(24 * 365)]
    )
    jwt: JwtSection | None = None
