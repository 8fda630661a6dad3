"""The JSON-lines notifier, through the command line: one line per promotion and
rollback, in the file its settings name, resolved against the project root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def project(lockgate_project: Path) -> Path:
    component = lockgate_project / "workspaces" / "alice" / "scripts" / "etl"
    component.mkdir(parents=True)
    (component / "main.py").write_text("print('v1')\n")
    return lockgate_project


def _run(lockgate_cli, project: Path, *args: str) -> dict:
    result = lockgate_cli(*args, "--json", project=project)
    assert result.exit_code == 0, result.stderr
    return result.json()


def _cycle(lockgate_cli, project: Path) -> str:
    revision = _run(lockgate_cli, project, "stage", "alice:etl")["revision"]
    _run(lockgate_cli, project, "promote", "alice:etl", "--to", "staging", "--reason", "ship it")
    _run(lockgate_cli, project, "rollback", "alice:etl", "--stage", "staging", "--to", "none")
    return revision


def test_one_line_per_promotion_and_rollback_relative_to_the_project(
    project: Path, lockgate_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (project / "lockgate.yaml").write_text("plugins:\n  jsonl:\n    path: logs/changes.jsonl\n")
    monkeypatch.chdir(tmp_path)  # the working directory is not the project
    monkeypatch.setenv("LOCKGATE_ACTOR", "carol")
    revision = _cycle(lockgate_cli, project)
    lines = [json.loads(x) for x in (project / "logs" / "changes.jsonl").read_text().splitlines()]
    assert [(x["action"], x["stage"], x["revision"]) for x in lines] == [
        ("promote", "staging", revision),
        ("rollback", "staging", None),
    ]
    assert lines[0]["reason"] == "ship it"
    assert lines[1]["previous_revision"] == revision
    assert {x["actor"] for x in lines} == {"carol"}
    assert {x["component"] for x in lines} == {"alice:etl"}
    assert not (tmp_path / "logs").exists()


def test_without_a_path_nothing_is_written(project: Path, lockgate_cli) -> None:
    _cycle(lockgate_cli, project)
    assert not list(project.rglob("*.jsonl"))


def test_a_misspelled_setting_is_refused_with_a_suggestion(project: Path, lockgate_cli) -> None:
    (project / "lockgate.yaml").write_text("plugins:\n  jsonl:\n    pth: x.jsonl\n")
    result = lockgate_cli("config", "validate", project=project)
    assert result.exit_code == 2
    assert "did you mean 'path'?" in result.stderr
