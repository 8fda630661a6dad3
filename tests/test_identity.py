"""Who is acting on the command line and in the Python API: the OS user, unless the
project allows the actor to be claimed (``identity.allow_override``); every audit event
records how its actor was established."""

from __future__ import annotations

import getpass
from pathlib import Path

from lockgate import WorkspaceManager
from lockgate.contracts.state import EventFilter
from lockgate.operations.init import init_project
from lockgate.testing import open_project, run_cli

NO_TEAM = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}
APPROVALS = "plugins:\n  approvals:\n    stages:\n      production:\n        required: 1\n"


def project(tmp_path: Path, config: str = "") -> Path:
    root = tmp_path / "p"
    init_project(root)
    if config:
        (root / "lockgate.yaml").write_text(config)
    files = root / "workspaces" / "alice" / "builders" / "etl"
    files.mkdir(parents=True)
    (files / "run.py").write_text("print('hi')\n")
    return root


def events(root: Path, action: str) -> list[tuple[str, object]]:
    opened = open_project(root, environ=NO_TEAM)
    try:
        found = opened.state().events(EventFilter(action=action))
        return [(e.actor, e.details.get("actor_via")) for e in found]
    finally:
        opened.close()


def test_a_claimed_actor_is_refused_where_a_stage_requires_approvals(tmp_path: Path) -> None:
    root = project(tmp_path, APPROVALS)
    staged = run_cli("stage", "alice:etl", project=root, env={**NO_TEAM, "LOCKGATE_ACTOR": "bob"})
    assert staged.exit_code == 1
    line = staged.stderr.strip()
    assert line.count("\n") == 0 and "LOCKGATE_ACTOR 'bob' is not allowed" in line
    assert "stage production requires approvals" in line and "identity.allow_override" in line
    assert events(root, "stage") == []  # nothing was recorded under the claimed name

    by_flag = run_cli("--actor", "bob", "stage", "alice:etl", project=root, env=NO_TEAM)
    assert by_flag.exit_code == 1 and "--actor 'bob' is not allowed" in by_flag.stderr


def test_without_a_claim_the_actor_is_the_os_user_and_the_event_says_so(tmp_path: Path) -> None:
    root = project(tmp_path, APPROVALS)
    result = run_cli("stage", "alice:etl", project=root, env={**NO_TEAM, "LOCKGATE_ACTOR": None})
    assert result.exit_code == 0, result.stderr
    assert events(root, "stage") == [(getpass.getuser(), "os-user")]


def test_overrides_are_allowed_by_default_when_no_stage_requires_approvals(
    tmp_path: Path,
) -> None:
    root = project(tmp_path)
    env = {**NO_TEAM, "LOCKGATE_ACTOR": "ci-bot"}
    assert run_cli("stage", "alice:etl", project=root, env=env).exit_code == 0
    assert run_cli("--actor", "carol", "promote", "etl", project=root, env=env).exit_code == 0
    assert events(root, "stage") == [("ci-bot", "LOCKGATE_ACTOR")]
    assert events(root, "promote") == [("carol", "--actor")]


def test_an_explicit_setting_wins_both_ways(tmp_path: Path) -> None:
    allowed = project(tmp_path, APPROVALS + "identity:\n  allow_override: true\n")
    env = {**NO_TEAM, "LOCKGATE_ACTOR": "bob"}
    assert run_cli("stage", "alice:etl", project=allowed, env=env).exit_code == 0
    assert events(allowed, "stage") == [("bob", "LOCKGATE_ACTOR")]

    refused = project(tmp_path / "x", "identity:\n  allow_override: false\n")
    result = run_cli("stage", "alice:etl", project=refused, env=env)
    assert result.exit_code == 1 and "identity.allow_override is false" in result.stderr


def test_the_environment_cannot_allow_overrides(tmp_path: Path) -> None:
    root = project(tmp_path, APPROVALS)
    env = {**NO_TEAM, "LOCKGATE_ACTOR": "bob", "LOCKGATE__IDENTITY__ALLOW_OVERRIDE": "true"}
    result = run_cli("stage", "alice:etl", project=root, env=env)
    assert result.exit_code == 2
    assert "LOCKGATE__IDENTITY__ALLOW_OVERRIDE" in result.stderr
    assert "read from lockgate.yaml only" in result.stderr
    assert events(root, "stage") == []


def test_the_python_api_actor_follows_the_same_rule(tmp_path: Path) -> None:
    from lockgate import WorkspaceIntegrationManager

    open_root = project(tmp_path)
    manager = WorkspaceIntegrationManager(WorkspaceManager(open_root, actor="ci", environ=NO_TEAM))
    assert manager.stage_for_integration("etl", "alice")["success"] is True
    assert events(open_root, "stage") == [("ci", "python-api")]

    guarded = project(tmp_path / "g", APPROVALS)
    refused = WorkspaceIntegrationManager(WorkspaceManager(guarded, actor="ci", environ=NO_TEAM))
    result = refused.stage_for_integration("etl", "alice")
    assert result["success"] is False
    assert any("python-api 'ci' is not allowed" in str(i) for i in result["issues"])
    assert events(guarded, "stage") == []
