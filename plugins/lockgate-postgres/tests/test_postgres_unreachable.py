"""When the database cannot be reached, or is lost in the middle of a write: one line
naming the server (never the password), exit code 4, no traceback, and nothing
half-written."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lockgate.testing import run_cli

from .postgres_testkit import open_database
from .test_postgres_cli import SECRET, ok, write_component, write_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_database_is_one_line_and_exit_4(lockgate_project: Path) -> None:
    port = _free_port()
    dsn = f"host=127.0.0.1 port={port} user=lockgate password={SECRET} connect_timeout=2"
    write_config(lockgate_project, dsn, "nowhere")
    write_component(lockgate_project, "print('v1')\n")
    for args in (("stage", "alice:etl"), ("promote", "alice:etl", "--to", "staging"), ("ls",)):
        result = run_cli(*args, project=lockgate_project)
        assert result.exit_code == 4, (args, result.stderr)
        line = result.stderr.strip()
        assert "\n" not in line and "Traceback" not in line, line
        assert f"PostgreSQL at 127.0.0.1:{port}" in line and "cannot be reached" in line, line
        assert SECRET not in result.stdout + result.stderr
    assert not (lockgate_project / "stages").exists()  # no target was touched


_KILL = """
CREATE FUNCTION public.lockgate_test_kill() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;
CREATE TRIGGER lockgate_test_kill AFTER INSERT ON lockgate.pointer_history
FOR EACH ROW WHEN (NEW.project = '{project}') EXECUTE FUNCTION public.lockgate_test_kill();
"""


def test_a_connection_lost_inside_a_write_leaves_nothing_half_written(
    lockgate_project: Path, pg_dsn: str, project_key: str
) -> None:
    """The database ends the session in the middle of the promote's state transaction
    (after the pointer moved and the event was appended, before the commit): the command
    says so in one line with exit 4, the state is as before, the chain verifies, and the
    next command settles the interrupted promote. The write runs on the switch's lock
    connection, so the session that ended held the locks too: the line says they were
    lost with it."""
    write_config(lockgate_project, pg_dsn, project_key)
    write_component(lockgate_project, "print('v1')\n")
    ok("stage", "alice:etl", project=lockgate_project)
    db = open_database(pg_dsn, project_key)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(_KILL.format(project=project_key))  # type: ignore[arg-type]
    try:
        result = run_cli("promote", "alice:etl", "--to", "staging", project=lockgate_project)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("DROP TRIGGER lockgate_test_kill ON lockgate.pointer_history")
            admin.execute("DROP FUNCTION public.lockgate_test_kill()")
    assert result.exit_code == 4, result.stderr
    assert "was lost with its connection" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with db.conn() as conn:
        events = conn.execute("SELECT action, outcome FROM events ORDER BY seq").fetchall()
        assert {"action": "promote", "outcome": "ok"} not in events, events
        assert conn.execute("SELECT count(*) AS n FROM pointers").fetchone() == {"n": 0}
        assert conn.execute("SELECT count(*) AS n FROM pointer_history").fetchone() == {"n": 0}
    db.close()
    ok("audit", "verify", project=lockgate_project)
    # The next command settles the interrupted promote, and the project is consistent.
    ok("recover", project=lockgate_project)
    ok("verify", project=lockgate_project)
    shown = json.loads(run_cli("--json", "ls", project=lockgate_project).stdout)
    assert shown, shown


def test_a_move_committed_before_its_connection_was_lost_stands(
    lockgate_project: Path, pg_dsn: str, project_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The switch's connection (its lock set's) ends after the record's commit, before
    its answer arrives: the store asks another connection whether the record's event
    is in the log, finds it, and the switch stands as made (the stage serves what the
    pointer says, nothing is undone, the intent is closed)."""
    import lockgate_postgres.chain as chain

    root = lockgate_project
    write_config(root, pg_dsn, project_key)
    write_component(root, "print('v1')\n")
    ok("stage", "alice:etl", project=root)
    ok("promote", "alice:etl", "--to", "staging", project=root)
    write_component(root, "print('v2')\n")
    second = ok("stage", "alice:etl", project=root)["revision"]
    write = chain.Head.write

    def committed_then_lost(self: Any, rows: Any, also: Any = (), only_if: Any = None) -> Any:
        cursor = write(self, rows, also, only_if)
        if any(name == "fresh" and "set_config" in query for name, query, _ in also):
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (self.conn.info.backend_pid,))
            self.conn.execute("SELECT 1")  # the answer lost with the session
        return cursor

    monkeypatch.setattr(chain.Head, "write", committed_then_lost)
    result = run_cli("--json", "promote", "alice:etl", "--to", "staging", project=root)
    monkeypatch.undo()
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["revision"] == second
    assert (root / "stages" / "staging" / "etl" / "main.py").read_text() == "print('v2')\n"
    db = open_database(pg_dsn, project_key)
    with db.conn() as conn:
        assert conn.execute("SELECT revision FROM pointers").fetchone() == {"revision": second}
        assert conn.execute(
            "SELECT count(*) AS n FROM intents WHERE state = 'open'"
        ).fetchone() == {"n": 0}
    db.close()
    ok("audit", "verify", project=root)
    ok("verify", project=root)
