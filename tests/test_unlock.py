"""``lockgate unlock --force`` against real lock holders: a live holder within its lease
is not broken by one ``--force``; a hung one (past its lease) is; twice always is."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ENV, run_lockgate, subprocess_env

HOLDER = r"""
import sys
from pathlib import Path
from lockgate.builtin_plugins.sqlite_state import SqliteStateStore
from lockgate.plugin import LockOwner

state_dir, past_lease = Path(sys.argv[1]), sys.argv[2] == "hung"
store = SqliteStateStore(state_dir / "state.db")
# A lease of 0 s: as if the holder had been stuck for longer than its lease.
lease = 0.0 if past_lease else 300.0
with store.lock("operation", owner=LockOwner.current("held-by-test"), lease=lease, timeout=30):
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def lg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_lockgate("-C", str(root), *args, cwd=root, env=ENV)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert lg(tmp_path, "init").returncode == 0
    return tmp_path


def hold(root: Path, kind: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root / ".lockgate"), kind],
        env=subprocess_env(ENV),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "locked", proc.stderr and proc.stderr.read()
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def working(project: Path) -> Iterator[subprocess.Popen[str]]:
    yield from hold(project, "working")


@pytest.fixture
def hung(project: Path) -> Iterator[subprocess.Popen[str]]:
    yield from hold(project, "hung")


def unlock_events(root: Path) -> list[dict[str, object]]:
    done = lg(root, "--json", "log")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    events = data if isinstance(data, list) else data.get("events", [])
    return [e for e in events if e.get("action") == "unlock"]


def test_one_force_does_not_break_a_live_holder_within_its_lease(
    project: Path, working: subprocess.Popen[str]
) -> None:
    """Before, one ``--force`` removed the lock file of a holder in the middle of its
    work, so a second switch could run beside it."""
    refused = lg(project, "unlock", "--force", "--reason", "impatient")
    assert refused.returncode == 1, refused.stderr
    assert f"pid {working.pid}" in refused.stderr and "--force --force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert (project / ".lockgate" / "operation.lock").exists()
    assert f"locked by pid {working.pid}" in lg(project, "unlock").stdout
    assert unlock_events(project) == []
    broken = lg(project, "unlock", "--force", "--force", "--reason", "I know it is hung")
    assert broken.returncode == 0, broken.stderr
    assert f"was held by pid {working.pid}" in broken.stdout
    assert not (project / ".lockgate" / "operation.lock").exists()
    assert len(unlock_events(project)) == 1


def test_one_force_breaks_a_holder_past_its_lease(
    project: Path, hung: subprocess.Popen[str]
) -> None:
    broken = lg(project, "unlock", "--force", "--reason", "hung for an hour")
    assert broken.returncode == 0, broken.stderr
    assert f"was held by pid {hung.pid}" in broken.stdout
    assert not (project / ".lockgate" / "operation.lock").exists()
