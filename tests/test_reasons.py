"""Every command that changes state records ``--reason TEXT`` in the audit log."""

from __future__ import annotations

from pathlib import Path

from lockgate.operations.init import init_project
from lockgate.testing import open_project, run_cli

ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults", "LOCKGATE_ACTOR": "alice"}


def test_reason_is_recorded_by_every_state_changing_command(tmp_path: Path) -> None:
    root = tmp_path / "p"
    init_project(root)
    comp = root / "workspaces" / "alice" / "builders" / "prep"
    comp.mkdir(parents=True)
    (comp / "a.py").write_text("X = 1\n")
    bob = {**ENV, "LOCKGATE_ACTOR": "bob"}
    steps = [
        (("sync", "--reason", "r-sync"), ENV),
        (("approve", "alice:prep", "--reason", "r-approve"), bob),
        (("promote", "prep", "--reason", "r-promote"), ENV),
        (("promote", "prep", "--reason", "r-promote-2"), ENV),
        (("rollback", "prep", "--to", "none", "--reason", "r-rollback"), ENV),
        (("reject", "alice:prep", "--reason", "r-reject"), bob),
        (("gc", "--reason", "r-gc"), ENV),
        (("unlock", "--force", "--reason", "r-unlock"), ENV),
    ]
    for args, env in steps:
        result = run_cli(*args, project=root, env=env)
        assert result.exit_code == 0, (args, result.stderr)
    (comp / "a.py").write_text("X = 2\n")
    assert (
        run_cli("stage", "alice:prep", "--reason", "r-stage", project=root, env=ENV).exit_code == 0
    )
    project = open_project(root, environ=ENV)
    reasons = {(e.action, e.reason) for e in project.state().events()}
    project.close()
    for action, reason in [
        ("stage", "r-sync"),
        ("approve", "r-approve"),
        ("promote", "r-promote"),
        ("rollback", "r-rollback"),
        ("reject", "r-reject"),
        ("gc", "r-gc"),
        ("unlock", "r-unlock"),
        ("stage", "r-stage"),
    ]:
        assert (action, reason) in reasons, (action, reason, sorted(reasons, key=str))
