"""Concurrency: real processes racing on one stage pointer, and a locked state database.

(a) Four processes each make 100 compare-and-swap moves of the same pointer
(``staging``/``etl``), each based on the generation they just read. Every move either
lands or raises :class:`~lockgate.errors.ConflictError`; afterwards the pointer history
is a contiguous, gap-free sequence of generations 1..N with exactly one row per success,
each matched 1:1 (and in order) by its ``promote`` audit event, and the hash chain holds.

(b) While the test process holds SQLite's write lock, ``lockgate stage`` with a short
busy timeout fails cleanly (exit 4, one line naming the lock, no traceback), and succeeds
once the lock is released.
"""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import finish_workers, start_python, subprocess_env
from lockgate.contracts.state import EventFilter
from lockgate.operations.init import init_project
from lockgate.operations.stage import Stager
from lockgate.testing import open_project, run_cli

ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}
REF = "alice:etl"
WORKERS = 4
OPERATIONS = 100

WORKER = r"""
import json, os, random, sys, time
from pathlib import Path

from lockgate.operations.lifecycle import move_pointer
from lockgate.core.project import Project
from lockgate.errors import ConflictError

root, number, revisions, go = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
project = Project.open(root, environ=dict(os.environ))
state = project.state()
deadline = time.monotonic() + 30
while not Path(go).exists():  # start together, after every process has opened the project
    if time.monotonic() > deadline:
        sys.exit("the start signal never came")
    time.sleep(0.005)
successes, conflicts, reasons = 0, 0, []
for i in range(100):
    current = state.pointer("staging", "etl")
    generation = current.generation if current else 0
    time.sleep(random.uniform(0, 0.002))  # widen the read-to-write window: more races
    reason = f"w{number}-{i}"
    try:
        move_pointer(
            project,
            stage="staging",
            component="alice:etl",
            revision=revisions[i % 2],
            action="promote",
            expected_generation=generation,
            reason=reason,
        )
    except ConflictError:
        conflicts += 1
    else:
        successes += 1
        reasons.append(reason)
project.close()
print(json.dumps({"successes": successes, "conflicts": conflicts, "reasons": reasons}))
"""


def _make_project(root: Path) -> tuple[Path, list[str]]:
    """A project whose ``alice:etl`` has two staged revisions; returns (dir, revisions)."""
    init_project(root)
    comp = root / "workspaces" / "alice" / "scripts" / "etl"
    comp.mkdir(parents=True)
    revisions = []
    for content in (b"print('one')\n", b"print('second one')\n"):
        (comp / "run.py").write_bytes(content)
        project = open_project(root, environ=ENV)
        try:
            result = Stager(project).stage(REF)
        finally:
            project.close()
        assert result.created
        revisions.append(result.revision)
    assert revisions[0] != revisions[1]
    return comp, revisions


def test_racing_pointer_moves_leave_a_contiguous_consistent_history(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _, revisions = _make_project(root)
    go = tmp_path / "go"
    procs = [
        start_python(
            WORKER,
            str(root),
            str(n),
            ",".join(revisions),
            str(go),
            env=subprocess_env(ENV, {"LOCKGATE_ACTOR": f"worker{n}"}),
        )
        for n in range(WORKERS)
    ]
    time.sleep(0.5)  # let them import and open the project before the start signal
    go.touch()
    results = finish_workers(procs, timeout=60)

    successes = sum(r["successes"] for r in results)
    conflicts = sum(r["conflicts"] for r in results)
    assert successes + conflicts == WORKERS * OPERATIONS
    assert successes >= 1
    assert conflicts >= 1  # the processes really raced (the workers widen the window)
    won = [reason for r in results for reason in r["reasons"]]
    assert len(won) == successes

    project = open_project(root, environ=ENV)  # a fresh open, after every worker exited
    try:
        state = project.state()
        history = state.pointer_history("staging", "etl")
        assert len(history) == successes
        assert [h.generation for h in history] == list(range(1, successes + 1))
        reasons = [str(h.reason) for h in history]
        assert len(set(reasons)) == len(reasons)
        assert sorted(reasons) == sorted(won)
        # Each row was current until the next one replaced it, and names what it replaced.
        for before, after in itertools.pairwise(history):
            assert before.valid_until == after.at
            assert after.previous_revision == before.revision
        assert history[0].previous_revision is None
        assert history[-1].valid_until is None
        assert {h.revision for h in history} <= set(revisions)
        for change in history:  # reason "w<N>-<i>" was moved by actor "worker<N>"
            assert change.actor == "worker" + str(change.reason).split("-")[0][1:]

        promotes = [e for e in state.events(EventFilter(action="promote")) if e.outcome == "ok"]
        assert [e.seq for e in promotes] == [h.event_seq for h in history]
        for event, change in zip(promotes, history, strict=True):
            assert (event.reason, event.actor, event.revision, event.component) == (
                change.reason,
                change.actor,
                change.revision,
                REF,
            )
            assert event.details["generation"] == change.generation
            assert event.previous_revision == change.previous_revision
        seqs = [e.seq or 0 for e in promotes]
        assert all(a < b for a, b in itertools.pairwise(seqs))  # same order as the history

        pointer = state.pointer("staging", "etl")
        assert pointer is not None
        assert pointer.generation == successes
        assert pointer.revision == history[-1].revision
        assert pointer.actor == history[-1].actor
        record = state.component(REF)
        assert record is not None and record.status.value == "promoted"
    finally:
        project.close()

    verify = run_cli("audit", "verify", "--json", project=root, env=ENV)
    assert verify.exit_code == 0, verify.stdout + verify.stderr
    report = verify.json()
    assert report["ok"] is True
    assert report["events"] == successes + 2  # two stage events, then one per move


def test_locked_database_fails_cleanly_then_succeeds(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    comp, revisions = _make_project(root)
    db_path = root / ".lockgate" / "state.db"
    assert db_path.is_file()
    (comp / "run.py").write_bytes(b"print('third, written while the database is locked')\n")
    env = subprocess_env(ENV, {"LOCKGATE__PLUGINS__SQLITE__BUSY_TIMEOUT": "0.5"})
    command = [sys.executable, "-m", "lockgate", "-C", str(root), "stage", REF]

    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        locked = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
        holder.execute("ROLLBACK")
    finally:
        holder.close()

    assert locked.returncode == 4, locked.stdout + locked.stderr
    assert "Traceback" not in locked.stderr
    lines = locked.stderr.strip().splitlines()
    assert len(lines) == 1, locked.stderr
    assert lines[0].startswith("lockgate: error: ")
    assert "locked" in lines[0]
    assert elapsed < 20  # it gave up after the short busy timeout, not the default one

    project = open_project(root, environ=ENV)
    try:
        record = project.state().component(REF)
        assert record is not None and record.latest_revision == revisions[1]  # nothing recorded
    finally:
        project.close()

    retry = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert "Traceback" not in retry.stderr
    project = open_project(root, environ=ENV)
    try:
        state = project.state()
        record = state.component(REF)
        assert record is not None
        assert record.latest_revision not in revisions
        assert [r.revision for r in state.revisions(REF)][:2] == revisions
        assert len(state.revisions(REF)) == 3
    finally:
        project.close()
    verify = run_cli("audit", "verify", project=root, env=ENV)
    assert verify.exit_code == 0, verify.stdout + verify.stderr
