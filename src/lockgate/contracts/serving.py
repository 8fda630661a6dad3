"""``server:`` in ``lockgate.yaml``: what ``lockgate serve`` takes from the project rather
than from its command line (docs/server.md). Read with the rest of the configuration, so
a misspelt key is one line naming its file and line like any other."""

from __future__ import annotations

from typing import Literal

import attrs

from lockgate.contracts.records import record

__all__ = ["JwtSection", "ServerSection"]


def _workers(instance: object, attribute: object, value: object) -> None:
    if isinstance(value, int) and not 1 <= value <= 256:
        raise ValueError(f"workers must be from 1 to 256 or auto, not {value}")


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
    an ``Idempotency-Key``'s answer (and a job's) is kept, JWTs it accepts, and how many
    worker processes it runs when ``--workers`` does not say (``auto``: one per CPU)."""

    idempotency_hours: float = attrs.field(
        default=24.0, validator=[attrs.validators.ge(0.01), attrs.validators.le(24 * 365)]
    )
    jwt: JwtSection | None = None
    workers: int | Literal["auto"] | None = attrs.field(default=None, validator=_workers)
