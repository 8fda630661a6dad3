"""``lockgate token``: tokens issued once, stored hashed, listed, revoked; and what a
token lets its holder do (roles, stages, expiry), as the server asks it."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pytest

if sys.version_info >= (3, 12):
    from importlib import metadata
else:
    import importlib_metadata as metadata

from lockgate.contracts.state import EventFilter
from lockgate.core.session import Session
from lockgate.errors import AuthenticationError, PermissionDeniedError
from lockgate.operations.init import init_project
from lockgate.operations.tokens import authenticate, authorize, parse_expiry
from lockgate.plugin import hookimpl
from lockgate.testing import fake_distribution, open_project, run_cli

ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults", "LOCKGATE_ACTOR": None}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    init_project(root)
    return root


def create(root: Path, *args: str) -> dict[str, str]:
    result = run_cli("token", "create", *args, "--json", project=root, env=ENV)
    assert result.exit_code == 0, result.stderr
    data: dict[str, str] = result.json()
    return data


def check(root: Path, header: str | None) -> object:
    project = open_project(root, environ={"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"})
    try:
        return authenticate(Session(project), header)
    finally:
        project.close()


def test_a_token_is_shown_once_and_stored_only_as_its_hash(root: Path) -> None:
    result = run_cli(
        "token", "create", "--actor", "carol", "--role", "viewer", project=root, env=ENV
    )
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("lg_") and "not shown again" in result.stderr
    assert token.encode() not in (root / ".lockgate" / "state.db").read_bytes()
    listed = run_cli("token", "ls", "--json", project=root, env=ENV).json()
    assert [(t["actor"], t["role"], t["revoked_at"]) for t in listed] == [("carol", "viewer", None)]
    assert token not in json.dumps(listed) and "digest" not in listed[0]
    assert check(root, f"Bearer {token}").actor == "carol"  # type: ignore[attr-defined]


def test_revoking_a_token_refuses_it_and_is_audited(root: Path) -> None:
    made = create(root, "--actor", "ci", "--role", "releaser", "--stage", "staging")
    revoked = run_cli("token", "revoke", made["id"], project=root, env=ENV)
    assert revoked.exit_code == 0 and f"token {made['id']} of ci revoked" in revoked.stdout
    with pytest.raises(AuthenticationError, match="was revoked"):
        check(root, f"Bearer {made['token']}")
    unknown = run_cli("token", "revoke", "0123456789ab", project=root, env=ENV)
    assert unknown.exit_code == 2 and "no token has id '0123456789ab'" in unknown.stderr
    project = open_project(root, environ={})
    try:
        actions = [e.action for e in project.state().events(EventFilter())]
    finally:
        project.close()
    assert actions == ["token.create", "token.revoke"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "viewer", "--stage", "production"], "--stage applies to approver"),
        (["--role", "approver", "--stage", "prod"], "prod"),
        (["--role", "viewer", "--expires", "yesterday"], "--expires 'yesterday' is not a time"),
        (["--role", "viewer", "--expires", "2001-01-01"], "is in the past"),
        (["--role", "boss"], "'boss' is not one of"),
    ],
)
def test_bad_token_requests_are_one_line_and_issue_nothing(
    root: Path, args: list[str], message: str
) -> None:
    result = run_cli("token", "create", "--actor", "carol", *args, project=root, env=ENV)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("token", "ls", "--json", project=root, env=ENV).json() == []


def test_unknown_malformed_and_expired_tokens_are_refused(root: Path) -> None:
    with pytest.raises(AuthenticationError, match="no token"):
        check(root, None)
    with pytest.raises(AuthenticationError, match="malformed"):
        check(root, "Basic abc")
    with pytest.raises(AuthenticationError, match="unknown token"):
        check(root, "Bearer lg_0123456789ab_" + "x" * 43)
    made = create(root, "--actor", "carol", "--role", "viewer", "--expires", "30m")
    assert check(root, f"Bearer {made['token']}")
    # the clock moves on: the expiry is rewritten into the past
    db = sqlite3.connect(root / ".lockgate" / "state.db")
    with db:
        db.execute("UPDATE tokens SET expires_at = '2001-01-01T00:00:00+00:00'")
    db.close()
    with pytest.raises(AuthenticationError, match="expired"):
        check(root, f"Bearer {made['token']}")


def test_roles_and_stages_decide_what_a_token_may_do(root: Path) -> None:
    from lockgate.contracts.state import TokenRecord

    def token(role: str, stage: str | None = None) -> TokenRecord:
        return TokenRecord("abc", "d", "carol", role, stage, "t", "root")

    authorize(token("viewer"), "read")
    authorize(token("developer"), "stage")
    authorize(token("releaser", "staging"), "promote", "staging")
    authorize(token("admin"), "rollback", "production")
    with pytest.raises(PermissionDeniedError, match="promote needs role releaser"):
        authorize(token("developer"), "promote", "staging")
    with pytest.raises(PermissionDeniedError, match="approve needs role approver"):
        authorize(token("releaser"), "approve")
    with pytest.raises(PermissionDeniedError, match="limited to stage staging"):
        authorize(token("releaser", "staging"), "promote", "production")


def test_expiry_reads_durations_and_times() -> None:
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_expiry("12h", now=now) == "2026-01-01T12:00:00.000000+00:00"
    assert parse_expiry("90d", now=now) == "2026-04-01T00:00:00.000000+00:00"
    assert parse_expiry(None) is None
    assert parse_expiry("2030-01-01T00:00Z") == "2030-01-01T00:00:00.000000+00:00"


class _NoTokens:
    """A state store plugin whose store hides the AccessTokens capability."""

    @staticmethod
    @hookimpl
    def register_state_stores(register: Any) -> None:
        from lockgate.builtin_plugins.memory_state import MemoryStateStore

        class Plain(MemoryStateStore):
            token_by_digest = None  # type: ignore[assignment]

        register("plain", lambda ctx: Plain())


@pytest.mark.parametrize("args", [("token", "ls"), ("serve", "--port", "1")])
def test_a_store_without_tokens_refuses_in_one_line(root: Path, args: tuple[str, ...]) -> None:
    (root / "lockgate.yaml").write_text("state:\n  store: plain\n")
    plain = fake_distribution("plain-store", {"plain": _NoTokens})
    dists = [*cast("Iterable[metadata.Distribution]", metadata.distributions()), plain]
    result = run_cli(*args, project=root, env=ENV, distributions=dists)
    assert result.exit_code == 3, result.stderr
    line = result.stderr.strip()
    assert line.count("\n") == 0 and "'plain'" in line and "AccessTokens" in line
