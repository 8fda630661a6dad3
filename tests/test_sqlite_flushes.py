"""Which SQLite commits wait for the disk: those a crash must not lose (an intent opened
before a target is touched, a pointer's move), not an intent's close, which recovery
settles again to the same outcome when a lost power takes it."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ProjectWorkspace
from lockgate.builtin_plugins.sqlite_state import SqliteStateStore
from lockgate.core.guard import unguarded
from lockgate.operations.promote import Promoter
from lockgate.operations.rollback import Rollback

REF = "alice:etl"


def _commits(sent: list[str]) -> list[tuple[str, str]]:
    """Each committed transaction as (its ``synchronous`` mode, its first write)."""
    commits, mode, first = [], "", ""
    for statement in sent:
        text = " ".join(statement.split())
        setting = re.fullmatch(r"PRAGMA synchronous = (\w+)", text)
        if setting:
            mode, first = setting.group(1), ""
        elif not first and text.split(" ", 1)[0] in ("INSERT", "UPDATE", "DELETE", "WITH"):
            first = text
        elif text == "COMMIT":
            commits.append((mode, first))
    return commits


def test_a_switch_flushes_its_intent_and_its_move_not_the_close(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p")
    first = ws.stage_files(REF, {"run.py": "print(1)\n"})
    ws.stage_files(REF, {"run.py": "print(2)\n"})
    project = ws.project()
    try:
        Promoter(project).promote(REF, to="staging")
        store = unguarded(project.state())
        assert isinstance(store, SqliteStateStore)
        sent: list[str] = []
        store._db.set_trace_callback(sent.append)
        Promoter(project).promote(REF, to="staging", rev=first)
        Rollback(project).rollback(REF, stage="staging")
        store._db.set_trace_callback(None)
    finally:
        project.close()
    commits = _commits(sent)
    opened = [m for m, w in commits if w.startswith("INSERT INTO intents")]
    closed = [m for m, w in commits if w.startswith("UPDATE intents SET state")]
    moved = [m for m, w in commits if "pointers" in w]
    assert opened == ["FULL", "FULL"] and moved == ["FULL", "FULL"]
    assert closed == ["NORMAL", "NORMAL"]
