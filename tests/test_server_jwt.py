"""JWT bearer tokens through a real ``lockgate serve`` on 127.0.0.1, verified against
public keys generated here (RSA, P-256, Ed25519) and named in ``lockgate.yaml``: the
claims give the actor, role and stage; every forgery or misfit is 401 with why."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from conftest import run_lockgate
from test_server import ENV, Api, free_port, make_project, start, stop

ISSUER, AUDIENCE = "https://ci.example", "lockgate"


def _keys() -> dict[str, Any]:
    return {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


def _pem(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


class Signer:
    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys

    def token(self, alg: str = "ES256", key: Any = None, **claims: Any) -> str:
        body = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600,
                "sub": "ci-bot", "lockgate_role": "viewer", **claims}  # fmt: skip
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.keys[alg], algorithm=alg)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Signer]]:
    root = tmp_path_factory.mktemp("jwt") / "p"
    tokens = make_project(root)
    keys = _keys()
    (root / "keys").mkdir()
    for alg, key in keys.items():
        (root / "keys" / f"{alg}.pem").write_bytes(_pem(key))
    with (root / "lockgate.yaml").open("a") as config:
        config.write(
            "server:\n  jwt:\n    keys: [keys/RS256.pem, keys/ES256.pem, keys/EdDSA.pem]\n"
            f"    issuer: {ISSUER}\n    audience: {AUDIENCE}\n"
        )
    proc, port = start(root, "--auth-failures", "100000")
    try:
        yield Api(root, port, tokens), Signer(keys)
    finally:
        stop(proc)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_a_jwt_signed_by_a_configured_key_is_accepted(served: tuple[Api, Signer], alg: str) -> None:
    api, signer = served
    status, stats = api.call("GET", "/api/v1/stats", token=signer.token(alg))
    assert status == 200 and isinstance(stats, dict)


def test_the_claims_are_the_actor_role_and_stage_of_the_operation(
    served: tuple[Api, Signer],
) -> None:
    api, signer = served
    token = signer.token(sub="deploy-bot", lockgate_role="releaser", lockgate_stage="staging")
    status, moved = api.call("POST", "/api/v1/components/alice:etl/promote", token=token)
    assert status == 200 and moved["actor"] == "deploy-bot" and moved["stage"] == "staging"
    event = api.events("promote")[-1]
    assert event["actor"] == "deploy-bot"
    assert event["details"]["actor_via"].startswith("token:jwt-")
    status, body = api.call(
        "POST", "/api/v1/components/alice:etl/promote", token=token, body={"to": "integration"}
    )
    assert status == 403 and "limited to stage staging" in body["error"]["message"]
    status, body = api.call("POST", "/api/v1/components/alice:etl/promote", token=signer.token())
    assert status == 403 and "token jwt-" in body["error"]["message"]
    assert "of ci-bot has role viewer" in body["error"]["message"]


def _stranger() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iss": "https://evil.example"}, "Invalid issuer"),
        ({"aud": "someone-else"}, "Audience doesn't match"),
        ({"exp": int(time.time()) - 3600}, "Signature has expired"),
        ({"exp": None}, 'Token is missing the "exp" claim'),
        ({"key": "stranger"}, "no configured key verifies its signature"),
        ({"alg": "HS256", "key": "a-shared-secret-of-32-bytes-or-more!"}, "no configured key"),
        ({"lockgate_role": "root"}, "'lockgate_role' is 'root', not one of"),
        ({"lockgate_role": "developer", "lockgate_stage": "staging"}, "to an approver or rel"),
        ({"lockgate_role": "releaser", "lockgate_stage": "moon"}, "is 'moon': give a stage"),
        ({"sub": None}, "claim 'sub' (the actor) must be a name"),
    ],
)
def test_a_forged_or_misfit_jwt_is_401_saying_why(
    served: tuple[Api, Signer], claims: dict[str, Any], message: str
) -> None:
    api, signer = served
    before = len(api.events())
    alg = claims.pop("alg", "ES256")
    key = claims.pop("key", None)
    token = signer.token(alg, _stranger() if key == "stranger" else key, **claims)
    status, body = api.call("GET", "/api/v1/stats", token=token)
    assert status == 401, body
    assert body["error"]["code"] == "unauthenticated" and "\n" not in body["error"]["message"]
    assert message in body["error"]["message"]
    assert len(api.events()) == before


def test_a_server_without_jwt_settings_refuses_jwts(tmp_path: Path) -> None:
    root = tmp_path / "p"
    tokens = make_project(root)
    proc, port = start(root)
    try:
        token = Signer(_keys()).token()
        status, body = Api(root, port, tokens).call("GET", "/api/v1/stats", token=token)
        assert status == 401 and "the project sets no server.jwt" in body["error"]["message"]
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("keys: [keys/none.pem]\n    issuer: i\n    audience: a", "none.pem is not a readable"),
        ("keys: [lockgate.yaml]\n    issuer: i\n    audience: a", "not a readable PEM public key"),
        ("keys: [k.pem]", "needs keys (PEM public key files), issuer and audience"),
        ("keys: [k.pem]\n    issuer: i\n    audience: a\n    algorithms: [HS256]",
         "HS256 is not accepted"),
        ("keys: [k.pem]\n    issuer: i\n    audience: a\n    claims: {group: g}",
         "'group' is not mapped"),
    ],
)  # fmt: skip
def test_bad_jwt_settings_stop_serve_with_one_line(
    tmp_path: Path, section: str, message: str
) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "lockgate.yaml").write_text(f"server:\n  jwt:\n    {section}\n")
    (root / "k.pem").write_bytes(_pem(_keys()["ES256"]))
    assert run_lockgate("init", cwd=root, env=ENV).returncode == 0
    done = run_lockgate("serve", "--port", str(free_port()), cwd=root, env=ENV)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr
