"""``make demo-team``: the demo's story on the ``postgres`` stores runs to its end on a
real server and leaves no database behind; without a server it is one line and exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

DEMO = Path(__file__).resolve().parents[3] / "scripts" / "demo.py"


def _databases(server: str) -> set[str]:
    with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database").fetchall()
    return {row[0] for row in rows if row[0].startswith("lockgate_demo_")}


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), "--postgres", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_the_team_demo_tells_the_story_on_postgres(pg_server: str) -> None:
    result = _demo("--pg-server", pg_server)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert result.stdout.rstrip().endswith("demo: done")
    assert "state and objects in PostgreSQL" in result.stdout
    assert "Another runner's host" in result.stdout
    assert "hash chain verified" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    # Its own database (named in the settings it shows) was dropped; other runs on the
    # same server may be making and dropping theirs meanwhile.
    own = set(re.findall(r"dbname=(lockgate_demo_[0-9a-f]{10})", result.stdout))
    assert len(own) == 1 and not own & _databases(pg_server)


def test_the_team_demo_without_a_server_is_one_line_and_exit_2() -> None:
    result = _demo("--pg-server", "host=127.0.0.1 port=1 user=postgres connect_timeout=2")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("demo-team: no PostgreSQL server"), lines
    assert "make demo-team PG=" in lines[0]
    assert result.stdout == ""
