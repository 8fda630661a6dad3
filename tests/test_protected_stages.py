"""Protected stages: the environment cannot weaken their gates, and every promotion's
audit event says which gates ran and where their settings came from.

Each test runs the real ``lockgate`` CLI in subprocesses against a project on disk whose
production stage needs one approval and does not allow ``--force``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import plays_people, run_lockgate

REF = "alice:etl"
CONFIG = """\
stages:
  staging: {}
  integration: {}
  production:
    protected: true
    gates:
      allow_force: false
plugins:
  approvals:
    stages:
      production:
        required: 1
"""
# The environment a careless (or hostile) CI job could set, one bypass each.
BYPASSES = [
    ({"LOCKGATE_DISABLE_PLUGINS": "approvals"}, [], "LOCKGATE_DISABLE_PLUGINS"),
    (
        {"LOCKGATE__STAGES__PRODUCTION__GATES__VALIDATE": "false"},
        [],
        "LOCKGATE__STAGES__PRODUCTION__GATES__VALIDATE",
    ),
    (
        {"LOCKGATE__STAGES__PRODUCTION__GATES__SKIP": "approvals"},
        [],
        "LOCKGATE__STAGES__PRODUCTION__GATES__SKIP",
    ),
    (
        {"LOCKGATE__STAGES__PRODUCTION__GATES__ALLOW_FORCE": "true"},
        ["--force", "--reason", "hotfix"],
        "LOCKGATE__STAGES__PRODUCTION__GATES__ALLOW_FORCE",
    ),
    (
        {"LOCKGATE__PLUGINS__APPROVALS__STAGES__PRODUCTION__REQUIRED": "0"},
        [],
        "LOCKGATE__PLUGINS__APPROVALS__STAGES__PRODUCTION__REQUIRED",
    ),
    (
        {"LOCKGATE__PLUGINS__ONLY": "[workspace, sqlite, local, directory-target, syntax]"},
        [],
        "LOCKGATE__PLUGINS__ONLY",
    ),
]


def _lg(root: Path, *args: str, env: dict[str, str] | None = None, actor: str = "alice") -> object:
    return run_lockgate(*args, cwd=root, env={"LOCKGATE_ACTOR": actor, **(env or {})})


def _project(tmp_path: Path, config: str = CONFIG) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "lockgate.yaml").write_text(plays_people(config))
    result = run_lockgate("init", cwd=root, env={"LOCKGATE_ACTOR": "alice"})
    assert result.returncode == 0, result.stderr
    comp = root / "workspaces" / "alice" / "scripts" / "etl"
    comp.mkdir(parents=True)
    (comp / "run.py").write_text("print('hi')\n")
    for args in (("stage", REF), ("promote", REF), ("promote", REF)):
        done = run_lockgate(*args, cwd=root, env={"LOCKGATE_ACTOR": "alice"})
        assert done.returncode == 0, (args, done.stderr)
    return root


def _events(root: Path) -> list[dict[str, object]]:
    out = run_lockgate("log", "--json", "-n", "100", cwd=root, env={})
    assert out.returncode == 0, out.stderr
    events: list[dict[str, object]] = json.loads(out.stdout)
    return events


def _plugin_names(root: Path) -> list[str]:
    out = run_lockgate("plugins", "--json", cwd=root, env={})
    assert out.returncode == 0, out.stderr
    return [p["name"] for p in json.loads(out.stdout)["plugins"]]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice:etl staged and promoted to integration; production needs bob's approval."""
    return _project(tmp_path_factory.mktemp("protected"))


@pytest.mark.parametrize(("env", "flags", "variable"), BYPASSES, ids=lambda v: str(v)[:40])
def test_each_environment_bypass_of_a_protected_stage_is_refused_and_audited(
    staged: Path, tmp_path: Path, env: dict[str, str], flags: list[str], variable: str
) -> None:
    import shutil

    root = Path(shutil.copytree(staged, tmp_path / "copy"))
    if variable == "LOCKGATE__PLUGINS__ONLY":  # the list names every plugin but approvals
        names = [n for n in _plugin_names(root) if n != "approvals"]
        env = {variable: "[" + ", ".join(names) + "]"}
    result = _lg(root, "promote", REF, *flags, env=env)
    assert result.returncode == 1, result.stdout + result.stderr  # type: ignore[attr-defined]
    line = result.stderr.strip()  # type: ignore[attr-defined]
    assert "\n" not in line and "Traceback" not in line
    assert variable in line and "protected stage production" in line
    assert not (root / "stages" / "production" / "etl").exists()
    refused = [e for e in _events(root) if e["action"] == "promote" and e["stage"] == "production"]
    assert [e["outcome"] for e in refused] == ["refused"]
    assert variable in str(refused[0]["details"])


def test_strengthening_the_gates_from_the_environment_is_accepted(
    staged: Path, tmp_path: Path
) -> None:
    import shutil

    root = Path(shutil.copytree(staged, tmp_path / "copy"))
    assert _lg(root, "approve", REF, actor="bob").returncode == 0  # type: ignore[attr-defined]
    result = _lg(
        root, "promote", REF, env={"LOCKGATE__STAGES__PRODUCTION__GATES__ALLOW_FORCE": "false"}
    )
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    [event] = [
        e
        for e in _events(root)
        if e["action"] == "promote" and e["stage"] == "production" and e["outcome"] == "ok"
    ]
    gates = event["details"]["gates"]  # type: ignore[index]
    assert gates["protected"] is True and gates["validate"] is True
    assert "approvals" in gates["ran"] and gates["skipped"] == []
    sources = gates["sources"]
    assert sources["stages.production.protected"].startswith("file (")
    assert sources["stages.production.gates.allow_force"] == (
        "environment (LOCKGATE__STAGES__PRODUCTION__GATES__ALLOW_FORCE)"
    )


def test_a_weakened_unprotected_stage_promotes_but_history_and_log_show_it(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path, CONFIG.replace("    protected: true\n", ""))
    env = {"LOCKGATE__STAGES__PRODUCTION__GATES__SKIP": "approvals"}
    result = _lg(root, "promote", REF, env=env)
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    [event] = [e for e in _events(root) if e["action"] == "promote" and e["stage"] == "production"]
    gates = event["details"]["gates"]  # type: ignore[index]
    assert gates["protected"] is False and gates["skipped"] == ["approvals"]
    assert "approvals" not in gates["ran"]
    assert gates["sources"]["stages.production.gates.skip"] == (
        "environment (LOCKGATE__STAGES__PRODUCTION__GATES__SKIP)"
    )
    for command in (("history", REF), ("log",)):
        shown = run_lockgate(*command, cwd=root, env={"COLUMNS": "400"})
        assert shown.returncode == 0, shown.stderr
        assert "skipped approvals" in shown.stdout, shown.stdout
        assert "LOCKGATE__STAGES__PRODUCTION__GATES__SKIP" in shown.stdout


def test_each_open_project_answers_from_its_own_file_and_structures_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``lockgate.yaml`` says is structured once per open project (a promotion asks
    twice), and two projects open in one process never share the answer."""
    from lockgate.core.config import ConfigLayers
    from lockgate.core.project import Project
    from lockgate.core.session import Session
    from lockgate.operations.gates import is_protected

    guarded, plain = tmp_path / "guarded", tmp_path / "plain"
    for root, config in ((guarded, CONFIG), (plain, CONFIG.replace("protected: true", ""))):
        root.mkdir()
        (root / "lockgate.yaml").write_text(plays_people(config))
    structured: list[object] = []
    original = ConfigLayers.kernel_config
    monkeypatch.setattr(
        ConfigLayers, "kernel_config", lambda self: structured.append(self) or original(self)
    )
    env = {"LOCKGATE__STAGES__PRODUCTION__PROTECTED": "false"}  # the file decides
    projects = [Project.open(root, environ=env) for root in (guarded, plain)]
    try:
        opened = len(structured)
        answers = [
            [is_protected(Session(project), "production") for _ in range(3)] for project in projects
        ]
        assert answers == [[True] * 3, [False] * 3]
        assert len(structured) - opened == 2  # one each, not one per question
    finally:
        for project in projects:
            project.close()
