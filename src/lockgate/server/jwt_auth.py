"""JSON Web Tokens as bearer tokens, verified against public keys the project names.

With ``server.jwt`` in ``lockgate.yaml``, ``lockgate serve`` accepts, besides its own
``lg_…`` tokens, a JWT signed (RS256, ES256 or EdDSA; ``algorithms`` narrows the list) by
one of the public keys in ``keys`` (PEM files, relative to the project). Nothing is
fetched: no JWKS, no discovery, no network call; the keys are read when the server
starts. A token is accepted when its signature verifies, ``exp`` is in the future,
``iss`` is ``issuer`` and ``aud`` holds ``audience`` (``leeway`` seconds of clock skew
allowed); its claims then give the actor, the role and the stage (names from
``claims``: ``sub``, ``lockgate_role`` and ``lockgate_stage`` by default), checked as
``lockgate token create`` checks its options. A JWT cannot be revoked before it
expires: keep them short-lived.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lockgate.contracts.serving import JwtSection
from lockgate.contracts.state import TokenRecord
from lockgate.errors import AuthenticationError, ConfigError, MissingCapabilityError

__all__ = ["JwtVerifier", "looks_like_jwt"]

ALGORITHMS = ("RS256", "ES256", "EdDSA")
_CLAIMS = {"actor": "sub", "role": "lockgate_role", "stage": "lockgate_stage"}


def looks_like_jwt(value: str) -> bool:
    """Three base64url parts joined by dots (a lockgate token has none)."""
    return value.count(".") == 2 and not value.startswith("lg_")


def _family(key: Any) -> str | None:
    """The algorithm a public key verifies (None: a kind lockgate does not accept)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return "ES256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    return None


class JwtVerifier:
    """Verifies JWTs against the keys of one ``server.jwt`` section."""

    def __init__(self, section: JwtSection, root: Path, stages: Sequence[str]) -> None:
        try:
            import jwt
            from cryptography.hazmat.primitives.serialization import load_pem_public_key
        except ImportError:  # pragma: no cover - the server extra installs both
            raise MissingCapabilityError(
                "server.jwt needs PyJWT and cryptography; install the server extra: "
                "pip install 'lockgate[server]'"
            ) from None
        self._jwt = jwt
        bad = [a for a in section.algorithms if a not in ALGORITHMS]
        if bad or not section.algorithms:
            raise ConfigError(
                f"server.jwt.algorithms: {bad[0] if bad else 'empty'} is not accepted; "
                f"choose among {', '.join(ALGORITHMS)}"
            )
        if not section.keys or not section.issuer or not section.audience:
            raise ConfigError(
                "server.jwt needs keys (PEM public key files), issuer and audience; "
                "set all three in lockgate.yaml"
            )
        unknown = sorted(set(section.claims) - set(_CLAIMS))
        if unknown:
            raise ConfigError(
                f"server.jwt.claims: {unknown[0]!r} is not mapped; map actor, role or stage"
            )
        self.section, self.stages = section, tuple(stages)
        self.claims = {**_CLAIMS, **section.claims}
        self.keys: list[Any] = []
        for name in section.keys:
            path = root / name
            try:
                key = load_pem_public_key(path.read_bytes())
            except (OSError, ValueError, TypeError) as exc:
                raise ConfigError(
                    f"server.jwt.keys: {name} is not a readable PEM public key ({exc}); "
                    "give the path of one, relative to the project"
                ) from None
            if _family(key) is None:
                raise ConfigError(
                    f"server.jwt.keys: {name} is a {type(key).__name__}; give an RSA, "
                    "P-256 or Ed25519 public key"
                )
            self.keys.append(key)

    def authenticate(self, value: str) -> TokenRecord:
        """The identity ``value`` carries, as a token record; else
        :class:`AuthenticationError` saying why."""
        jwt = self._jwt
        try:
            alg = jwt.get_unverified_header(value).get("alg")
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"JWT refused: {exc}") from None
        if alg not in self.section.algorithms:
            raise AuthenticationError(
                f"JWT refused: algorithm {alg!r} is not accepted "
                f"({', '.join(self.section.algorithms)}); no configured key verifies its signature"
            )
        candidates = [k for k in self.keys if _family(k) == alg]
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    value,
                    key,
                    algorithms=[alg],
                    audience=self.section.audience,
                    issuer=self.section.issuer,
                    leeway=self.section.leeway,
                    options={"require": ["exp", "iss", "aud"]},
                )
            except jwt.InvalidSignatureError:
                continue  # another key of the same kind may have signed it
            except jwt.PyJWTError as exc:
                raise AuthenticationError(f"JWT refused: {exc}") from None
            return self._record(value, claims)
        raise AuthenticationError(
            f"JWT refused: no configured key verifies its signature ({alg}, "
            f"{len(candidates)} key(s) of that kind)"
        )

    def _record(self, value: str, claims: dict[str, Any]) -> TokenRecord:
        from lockgate.operations.tokens import ROLES, STAGED_ROLES

        def claim(what: str) -> Any:
            return claims.get(self.claims[what])

        actor, role, stage = claim("actor"), claim("role"), claim("stage")
        if not isinstance(actor, str) or not actor.strip() or len(actor) > 128:
            raise AuthenticationError(
                f"JWT refused: claim {self.claims['actor']!r} (the actor) must be a name"
            )
        if role not in ROLES:
            raise AuthenticationError(
                f"JWT refused: claim {self.claims['role']!r} is {role!r}, not one of "
                f"{', '.join(ROLES)}"
            )
        if stage is not None and (role not in STAGED_ROLES or stage not in self.stages):
            raise AuthenticationError(
                f"JWT refused: claim {self.claims['stage']!r} is {stage!r}: give a stage of "
                f"this project ({', '.join(self.stages)}) to an approver or releaser only"
            )
        token_id = "jwt-" + hashlib.sha256(value.encode()).hexdigest()[:12]
        expires = datetime.fromtimestamp(int(claims["exp"]), timezone.utc)
        return TokenRecord(
            token_id,
            "",
            actor.strip(),
            role,
            stage,
            "",
            f"jwt:{self.section.issuer}",
            expires.isoformat(timespec="microseconds"),
        )
