"""``benchmarks/server_load.py`` cannot rot: its smoke mode runs against a real
``lockgate serve`` and passes its own checks, and those checks catch a lost update."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conftest import subprocess_env

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def server_load() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import server_load

        yield server_load
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_smoke_run_serves_reads_and_switches_with_no_5xx_and_no_lost_update(
    tmp_path: Path,
) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "server_load.py"), "--smoke", "--stores", "sqlite",
         "--json", str(out)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SMOKE run" in done.stdout
    assert "checks: no 5xx, audit chain verified, no lost update" in done.stdout
    figures = json.loads(out.read_text())["stores"]["sqlite"]
    assert figures["problems"] == []
    assert figures["requests"]["read"] > 0
    assert not [s for s in figures["statuses"] if s.split()[1].startswith("5")]


def test_the_checks_catch_a_switch_nobody_was_told_of_and_a_pointer_moved_silently(
    server_load: ModuleType, tmp_path: Path
) -> None:
    from lockgate.core.project import Project
    from lockgate.operations.promote import Promoter

    root = tmp_path / "p"
    revisions = server_load.build(root, "sqlite", None, 2)
    before, seq = server_load.snapshot(root, "sqlite")
    tally = server_load.Tally()
    assert server_load.check(root, "sqlite", before, seq, tally) == []

    project = Project.open(root, environ=server_load.plugin_env("sqlite"))
    try:
        Promoter(project).promote("bench:c0", to="staging", rev=revisions["bench:c0"][0])
    finally:
        project.close()
    problems = server_load.check(root, "sqlite", before, seq, tally)
    assert problems == [
        "bench:c0: pointer moved 1 times, audit log has 1 switches, clients were told 0"
    ]

    tally.changed["bench:c0"] = 1
    with sqlite3.connect(root / ".lockgate" / "state.db") as db:
        db.execute(
            "UPDATE pointers SET revision = ?, generation = generation + 1 "
            "WHERE component = 'bench:c0'",
            (revisions["bench:c0"][1],),
        )
    problems = " | ".join(server_load.check(root, "sqlite", before, seq, tally))
    assert "audit verify failed" in problems and "moved outside lockgate" in problems
    assert "bench:c0: pointer moved 2 times, audit log has 1 switches" in problems
    assert "the last audited switch" in problems
