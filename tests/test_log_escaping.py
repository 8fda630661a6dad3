"""``log`` and ``history`` show actors and reasons with their control characters escaped
(an ANSI sequence cannot recolour the terminal, a newline cannot forge a row, ``[bold]``
is not markup); ``--json`` keeps the exact values. Real subprocesses, real database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ENV, copy_project, run_lockgate

ACTOR = "mallory\x1b[31m\r\nseq 99 forged"
REASON = "[bold]fix[/] \x1b]0;owned\x07 done\u202e"


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "project"
    assert run_lockgate("init", str(root), cwd=root.parent, env=ENV).returncode == 0
    comp = root / "workspaces" / "alice" / "scripts" / "etl"
    comp.mkdir(parents=True)
    (comp / "run.py").write_text("print(1)\n")
    done = run_lockgate(
        "--actor", ACTOR, "stage", "alice:etl", "--reason", REASON, cwd=root, env=ENV
    )
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def project(tmp_path: Path, staged: Path) -> Path:
    return copy_project(staged, tmp_path / "project")


@pytest.mark.parametrize("command", [("log",), ("history", "alice:etl")])
def test_human_output_escapes_control_characters(project: Path, command: tuple[str, ...]) -> None:
    done = run_lockgate(*command, cwd=project, env=ENV)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert not any(c in out for c in "\x1b\r\x07\u202e"), repr(out)
    rows = [line for line in out.splitlines() if line.split()[:1] == ["1"] or "forged" in line]
    assert len(rows) == 1, out  # one event, one line: no forged row
    assert "forged" in rows[0]
    assert "mallory\\x1b[31m\\r\\nseq 99 forged" in rows[0]
    assert "[bold]fix[/] \\x1b]0;owned\\x07 done\\u202e" in rows[0]


def test_json_keeps_the_exact_values(project: Path) -> None:
    done = run_lockgate("--json", "log", cwd=project, env=ENV)
    assert done.returncode == 0, done.stderr
    (event,) = json.loads(done.stdout)
    assert event["actor"] == ACTOR
    assert event["reason"] == REASON
    history = run_lockgate("history", "alice:etl", "--json", cwd=project, env=ENV)
    (event,) = json.loads(history.stdout)["events"]
    assert (event["actor"], event["reason"]) == (ACTOR, REASON)
