"""Races between processes: stage, sync, gc, promote, rollback, reject, approve, verify.

The harness (tests/race_harness.py) runs ``LOCKGATE_RACE_WORKERS`` processes (default 3)
for ``LOCKGATE_RACE_SECONDS`` seconds of races (default 12, in rounds of 4 s, checked
after each) with seed ``LOCKGATE_RACE_SEED``. The tests below it plant one violation of
each kind the checks look for, so that a check which can no longer fail is noticed.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from race_harness import (
    OPERATIONS,
    ChainCursor,
    RaceConfig,
    check_invariants,
    create_race_project,
    open_as,
    run_races,
)

# Read at import: the autouse fixture in conftest.py clears LOCKGATE_* before each test.
SECONDS = float(os.environ.get("LOCKGATE_RACE_SECONDS", "12"))
WORKERS = int(os.environ.get("LOCKGATE_RACE_WORKERS", "3"))
SEED = int(os.environ.get("LOCKGATE_RACE_SEED", "20261204"))
ROUND = 4.0


@pytest.mark.slow
def test_race_harness_finds_no_violation(tmp_path: Path) -> None:
    summary = run_races(
        RaceConfig(
            seconds=SECONDS,
            workers=WORKERS,
            seed=SEED,
            round_seconds=ROUND,
            workdir=tmp_path / "race",
        )
    )
    report = summary.report()
    assert summary.ok, report
    assert summary.rounds == max(1, round(SECONDS / ROUND)), report
    assert summary.checks == summary.rounds + 1, report
    # Every kind of operation ran and succeeded at least once, through both front doors.
    for kind in OPERATIONS:
        assert summary.count(kind, "ok") >= 1, report
    assert summary.via["api"] >= 1 and summary.via["cli"] >= 1, report


# --------------------------------------------------------------------------- the checks can fail


def kinds_found(root: Path) -> set[str]:
    return {kind for kind, _ in check_invariants(root, ChainCursor())}


def test_the_checks_find_nothing_on_a_quiet_project(tmp_path: Path) -> None:
    root = tmp_path / "project"
    create_race_project(root)

    assert check_invariants(root, ChainCursor()) == []


def test_the_checks_report_a_collected_object(tmp_path: Path) -> None:
    root = tmp_path / "project"
    create_race_project(root)
    project = open_as(root, "tamperer")
    try:
        pointer = project.state().pointer("production", "prep")
        assert pointer is not None and pointer.revision is not None
        manifest = project.content().get_manifest(pointer.revision)
        (entry,) = [e for e in manifest.entries if e.path == "lib.py"]
        project.content().remove(entry.digest)
    finally:
        project.close()

    found = kinds_found(root)

    assert {"objects", "verify", "cli-verify"} <= found


def test_the_checks_report_audit_times_out_of_chain_order(tmp_path: Path) -> None:
    root = tmp_path / "project"
    create_race_project(root)
    db = sqlite3.connect(root / ".lockgate" / "state.db")
    try:
        (last,) = db.execute("SELECT max(seq) FROM events").fetchone()
        db.execute(
            "UPDATE events SET at = '2000-01-01T00:00:00.000000+00:00' WHERE seq = ?", (last,)
        )
        db.commit()
    finally:
        db.close()

    found = kinds_found(root)

    assert "audit-time-order" in found


def test_the_checks_report_a_rejected_revision_made_current(tmp_path: Path) -> None:
    root = tmp_path / "project"
    create_race_project(root)
    db = sqlite3.connect(root / ".lockgate" / "state.db")
    try:
        # The last staging of alice:prep, promoted to staging after it, becomes a rejection.
        (seq,) = db.execute(
            "SELECT max(seq) FROM events WHERE action = 'stage' AND component = 'alice:prep'"
        ).fetchone()
        db.execute("UPDATE events SET action = 'reject' WHERE seq = ?", (seq,))
        db.commit()
    finally:
        db.close()

    found = kinds_found(root)

    assert "promoted-after-reject" in found
