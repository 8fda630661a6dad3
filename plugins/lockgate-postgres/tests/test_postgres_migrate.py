"""``lockgate state migrate --to postgres --content postgres``: a project's SQLite history
and local objects copied into PostgreSQL; the copy's audit chain verifies, and every
history answer is the same before and after the switch."""

from __future__ import annotations

import json
from pathlib import Path

from lockgate.testing import run_cli

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


def _answers(root: Path) -> list[object]:
    return [ok(*q, project=root) for q in QUESTIONS]


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
    _history(root)
    before = _answers(root)
    moved = ok("state", "migrate", "--to", "postgres", "--content", "postgres", project=root)
    assert moved["components"] == 2 and moved["events"] > 10 and moved["objects_copied"] > 4
    _config(root, pg_dsn, project_key, "postgres")
    ok("audit", "verify", project=root)
    verified = run_cli("verify", project=root)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert _answers(root) == before
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
