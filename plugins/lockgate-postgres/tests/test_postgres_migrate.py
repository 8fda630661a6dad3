"""``lockgate state migrate --to postgres --content postgres``: a project's SQLite history
(revisions, pointers and their history, approvals and rejections, intents open and
closed, the audit chain) and local objects copied into PostgreSQL; the copy's audit chain
verifies, every ``history --at`` answer and every report is the same before and after the
switch, and the copy records the move in one ``migrate`` event after the copied chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lockgate.testing import open_project, run_cli

from .test_postgres_cli import ok, write_component

QUESTIONS = (
    ("history", "alice:etl"),
    ("history", "alice:api"),
    ("log", "--limit", "500"),
    ("ls",),
    ("stats",),
)


def _config(root: Path, dsn: str, project: str, store: str) -> None:
    content = "local" if store == "sqlite" else "postgres"
    (root / "lockgate.yaml").write_text(
        "project:\n  name: moving\n"
        f"state:\n  store: {store}\ncontent:\n  store: {content}\n"
        "stages:\n  staging: {}\n  production: {}\n"
        f"plugins:\n  postgres:\n    dsn: {json.dumps(dsn)}\n    project: {project}\n"
    )


def _answers(root: Path) -> list[Any]:
    return [ok(*q, project=root) for q in QUESTIONS]


def _live_answers(root: Path, times: list[str]) -> list[Any]:
    """``history --stage S --at T`` for every stage at every moment given."""
    return [
        ok("history", "--stage", stage, "--at", at, project=root)
        for stage in ("staging", "production")
        for at in times
    ]


def _intents(root: Path) -> list[Any]:
    """Every intent the project's store holds (none settled by reading them)."""
    project = open_project(root)
    try:
        return project.state().intents()  # type: ignore[attr-defined,no-any-return]
    finally:
        project.close()


def _crash(root: Path, failpoint: str, *args: str) -> None:
    """Run ``lockgate ARGS`` in a process of its own that dies at ``failpoint``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    env["LOCKGATE_FAILPOINTS"] = failpoint
    proc = subprocess.run(
        [sys.executable, "-m", "lockgate", "-C", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, (proc.returncode, proc.stderr)


def _rich_history(root: Path) -> None:
    """Every kind of record: a rejection, a removed pointer, intents completed, undone
    (by recovery after a crash) and left open by a crash."""
    _history(root)
    folder = root / "workspaces" / "alice" / "scripts" / "api"
    folder.joinpath("main.py").write_text("print('api v3')\n")
    ok("stage", "alice:api", project=root)
    ok("--actor", "carol", "reject", "alice:api", "--reason", "no tests", project=root)
    ok("rollback", "alice:etl", "--stage", "staging", "--to", "none", "--reason", "x", project=root)
    _crash(root, "promote.after_intent", "promote", "alice:etl", "--to", "staging")
    ok("recover", project=root)  # undone
    _crash(root, "promote.after_record", "promote", "alice:etl", "--to", "staging")
    ok("recover", project=root)  # completed
    _crash(root, "rollback.after_intent", "rollback", "alice:etl", "--stage", "staging")


def _history(root: Path) -> None:
    for component in ("etl", "api"):
        folder = root / "workspaces" / "alice" / "scripts" / component
        for version in (1, 2):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "main.py").write_text(f"print('{component} v{version}')\n")
            ok("stage", f"alice:{component}", project=root)
            ok("promote", f"alice:{component}", "--to", "staging", project=root)
    ok("--actor", "bob", "approve", "alice:etl", "--comment", "fine", project=root)
    ok("promote", "alice:etl", "--to", "production", project=root)
    ok("rollback", "alice:api", "--stage", "staging", "--reason", "broke", project=root)


def test_a_sqlite_project_moves_to_postgres_with_identical_answers(
    lockgate_project: Path, pg_dsn: str, project_key: str
) -> None:
    root = lockgate_project
    _config(root, pg_dsn, project_key, "sqlite")
    write_component(root, "print('placeholder')\n")
    _rich_history(root)
    events = ok("log", "--limit", "500", project=root)
    times = [*sorted({e["at"] for e in events}), "2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"]
    before, live_before = _answers(root), _live_answers(root, times)
    intents = _intents(root)
    assert sorted(i.state for i in intents).count("open") == 1
    assert {i.state for i in intents} == {"open", "completed", "undone"}
    assert any(answer["live"] for answer in live_before)
    moved = ok("state", "migrate", "--to", "postgres", "--content", "postgres", project=root)
    assert moved["components"] == 2 and moved["events"] == len(events)
    assert moved["objects_copied"] > 4 and moved["intents"] == len(intents)
    _config(root, pg_dsn, project_key, "postgres")
    ok("audit", "verify", project=root)
    verified = run_cli("verify", project=root)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert _live_answers(root, times) == live_before
    after = _answers(root)
    # The copy's one new event is the move itself, after the copied chain.
    newest, *copied = after[2]  # newest first
    assert copied == before[2]
    assert (newest["action"], newest["seq"]) == ("migrate", len(events) + 1)
    assert newest["seq"] == moved["event_seq"]
    assert newest["details"]["source"] == "sqlite"
    assert newest["details"]["intents"] == len(intents)
    assert after[:2] == before[:2] and after[3] == before[3]
    # stats counts the one event more, and nothing else differs
    before[4]["integration_operations"]["total_events"] += 1
    assert after[4] == before[4]
    assert _intents(root) == intents  # closed and open alike, as they were
    # The history goes on where it stopped.
    ok(
        "rollback",
        "alice:etl",
        "--stage",
        "production",
        "--to",
        "none",
        "--reason",
        "x",
        project=root,
    )
    ok("audit", "verify", project=root)


def test_migrating_into_a_project_that_holds_a_history_is_refused(
    lockgate_project: Path, pg_dsn: str, project_key: str
) -> None:
    root = lockgate_project
    _config(root, pg_dsn, project_key, "sqlite")
    write_component(root, "print('v1')\n")
    ok("stage", "alice:etl", project=root)
    ok("state", "migrate", "--to", "postgres", project=root)
    again = run_cli("state", "migrate", "--to", "postgres", project=root)
    assert again.exit_code == 4, again.stderr
    assert "already holds a history" in again.stderr
