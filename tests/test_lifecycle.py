"""The status machine, pointer moves by compare-and-swap, actors, and history at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate import ComponentStatus, ConflictError, RefusedError
from lockgate.operations.init import init_project
from lockgate.operations.lifecycle import TRANSITIONS, allowed_actions, move_pointer, next_status
from lockgate.operations.stage import Stager
from lockgate.testing import open_project, run_cli

ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}
S = ComponentStatus


def _project(root: Path, actor: str = "alice") -> tuple[object, list[str]]:
    init_project(root)
    comp = root / "workspaces" / "alice" / "scripts" / "etl"
    comp.mkdir(parents=True)
    project = open_project(root, environ={**ENV, "LOCKGATE_ACTOR": actor})
    revisions = []
    for text in ("one", "two"):
        (comp / "run.py").write_text(text)
        revisions.append(Stager(project).stage("alice:etl").revision)
    return project, revisions


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        (S.PENDING, "stage", S.STAGED),
        (S.STAGED, "approve", S.APPROVED),
        (S.STAGED, "reject", S.REJECTED),
        (S.APPROVED, "promote", S.PROMOTED),
        (S.PROMOTED, "rollback", S.ROLLED_BACK),
        (S.ROLLED_BACK, "promote", S.PROMOTED),
        (S.REJECTED, "stage", S.STAGED),
    ],
)
def test_allowed_transitions(
    status: ComponentStatus, action: str, expected: ComponentStatus
) -> None:
    assert next_status("alice:etl", status, action) is expected


def test_refused_transition_names_status_and_allowed_actions() -> None:
    with pytest.raises(RefusedError) as info:
        next_status("alice:etl", S.REJECTED, "promote")
    assert str(info.value) == (
        "alice:etl is rejected: cannot promote; allowed from rejected: stage, retire"
    )
    assert info.value.exit_code == 1


def test_every_status_allows_at_least_staging() -> None:
    for status in ComponentStatus:
        assert "stage" in allowed_actions(status)
    assert set(TRANSITIONS) == {"stage", "approve", "reject", "promote", "rollback", "retire"}


def test_a_retired_component_only_comes_back_by_staging() -> None:
    assert allowed_actions(S.RETIRED) == ["stage"]
    with pytest.raises(RefusedError, match="is retired: cannot promote"):
        next_status("alice:etl", S.RETIRED, "promote")
    for status in ComponentStatus:
        if status is not S.RETIRED:
            assert next_status("alice:etl", status, "retire") is S.RETIRED


def test_pointer_moves_by_generation_and_stale_callers_conflict(tmp_path: Path) -> None:
    project, (r1, r2) = _project(tmp_path)
    first = move_pointer(
        project, stage="staging", component="alice:etl", revision=r1, action="promote"
    )  # type: ignore[arg-type]
    assert (first.generation, first.revision, first.actor) == (1, r1, "alice")
    second = move_pointer(  # type: ignore[arg-type]
        project,
        stage="staging",
        component="alice:etl",
        revision=r2,
        action="promote",
        expected_generation=1,
    )
    assert second.generation == 2
    with pytest.raises(ConflictError) as info:
        move_pointer(  # type: ignore[arg-type]
            project,
            stage="staging",
            component="alice:etl",
            revision=r1,
            action="promote",
            expected_generation=1,
        )
    assert info.value.exit_code == 4
    assert project.state().pointer("staging", "etl").revision == r2  # type: ignore[attr-defined]
    history = project.state().pointer_history("staging", "etl")  # type: ignore[attr-defined]
    assert [h.generation for h in history] == [1, 2]
    assert history[1].previous_revision == r1
    assert project.state().component("alice:etl").status is S.PROMOTED  # type: ignore[attr-defined]


def test_refused_status_transition_changes_nothing(tmp_path: Path) -> None:
    project, (r1, _) = _project(tmp_path)
    before = len(project.state().events())  # type: ignore[attr-defined]
    with pytest.raises(RefusedError, match="staged: cannot rollback"):
        move_pointer(
            project, stage="staging", component="alice:etl", revision=r1, action="rollback"
        )  # type: ignore[arg-type]
    assert project.state().pointer("staging", "etl") is None  # type: ignore[attr-defined]
    assert len(project.state().events()) == before  # type: ignore[attr-defined]


def test_history_at_a_time_says_what_was_live_and_who_put_it_there(tmp_path: Path) -> None:
    project, (r1, r2) = _project(tmp_path)
    move_pointer(
        project,
        stage="production",
        component="alice:etl",
        revision=r1,
        action="promote",
        reason="go",
    )  # type: ignore[arg-type]
    middle = project.state().pointer("production", "etl").updated_at  # type: ignore[attr-defined]
    project.actor_override = "bob"  # type: ignore[attr-defined]
    move_pointer(project, stage="production", component="alice:etl", revision=r2, action="promote")  # type: ignore[arg-type]
    result = run_cli(
        "--json", "history", "--stage", "production", "--at", middle, project=tmp_path, env=ENV
    )
    assert result.exit_code == 0, result.stderr
    (live,) = result.json()["live"]
    assert (live["revision"], live["by"], live["reason"]) == (r1, "alice", "go")
    now = run_cli(
        "--json", "history", "--stage", "production", "--at", "now", project=tmp_path, env=ENV
    )
    assert now.json()["live"][0]["by"] == "bob"
    early = run_cli(
        "--json",
        "history",
        "--stage",
        "production",
        "--at",
        "2000-01-01",
        project=tmp_path,
        env=ENV,
    )
    assert early.json()["live"] == []
    bad = run_cli(
        "history", "--stage", "production", "--at", "yesterday-ish", project=tmp_path, env=ENV
    )
    assert bad.exit_code == 2 and "is not a time" in bad.stderr


def test_actor_comes_from_flag_then_environment_then_os_user(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "workspaces" / "alice" / "scripts" / "etl").mkdir(parents=True)
    (tmp_path / "workspaces" / "alice" / "scripts" / "etl" / "a").write_text("a")
    result = run_cli(
        "--actor",
        "carol",
        "stage",
        "alice:etl",
        project=tmp_path,
        env={**ENV, "LOCKGATE_ACTOR": "dave"},
    )
    assert result.exit_code == 0, result.stderr
    (event,) = run_cli("--json", "log", project=tmp_path, env=ENV).json()
    assert event["actor"] == "carol"
    project = open_project(tmp_path, environ={**ENV, "LOCKGATE_ACTOR": "dave"})
    assert project.actor == "dave"
    import getpass

    assert open_project(tmp_path, environ=ENV).actor == getpass.getuser()


def test_log_filters_and_stats_count_failures(tmp_path: Path) -> None:
    _project(tmp_path)
    leak = tmp_path / "workspaces" / "alice" / "scripts" / "etl" / "leak"
    leak.symlink_to("/etc/passwd")
    assert run_cli("stage", "alice:etl", project=tmp_path, env=ENV).exit_code == 2
    leak.unlink()
    stats = run_cli("--json", "stats", project=tmp_path, env=ENV).json()
    staging = stats["integration_operations"]["staging"]
    assert (staging["total"], staging["succeeded"], staging["failed"]) == (3, 2, 1)
    assert staging["success_rate"] == round(2 / 3, 4)
    assert stats["component_statistics"]["by_type"] == {"scripts": 1}
    args = ("--json", "log", "--action", "stage", "--actor", "alice")
    by_alice = run_cli(*args, project=tmp_path, env=ENV).json()
    assert [e["outcome"] for e in by_alice] == ["ok", "ok"]
    assert by_alice[0]["seq"] > by_alice[1]["seq"]  # newest first
    (latest,) = run_cli("--json", "log", "-n", "1", project=tmp_path, env=ENV).json()
    assert latest["outcome"] == "failed"
    assert "symlink to absolute path" in latest["details"]["error"]
    summary = run_cli("--json", "summary", project=tmp_path, env=ENV).json()
    assert summary["staged_components"] == 1
    assert summary["component_status_distribution"] == {"staged": 1}
    assert summary["recent_activities"][0]["activity"]["outcome"] == "failed"
