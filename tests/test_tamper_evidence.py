"""Tamper evidence beyond the events: approvals, rejections, revisions and pointers are
checked against the hash chain; a head kept outside ``.lockgate/`` shows deleted newest
events; ``verify`` reports what no pointer explains in a stage directory; a tampered
validation cache does not turn a failing gate into a pass.

One real project is built with the CLI per module, copied per test, tampered with by SQL
on ``.lockgate/state.db`` (or by writing files), and checked with the real CLI.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import run_lockgate

REF = "alice:etl"


def _lg(root: Path, *args: str, actor: str = "alice") -> subprocess.CompletedProcess[str]:
    return run_lockgate(*args, cwd=root, env={"LOCKGATE_ACTOR": actor})


def _ok(root: Path, *args: str, actor: str = "alice") -> str:
    result = _lg(root, *args, actor=actor)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def _write(root: Path, text: str) -> None:
    comp = root / "workspaces" / "alice" / "scripts" / "etl"
    comp.mkdir(parents=True, exist_ok=True)
    (comp / "run.py").write_text(text)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """r1 staged, promoted to staging and approved by bob; r2 staged and rejected by carol."""
    root = tmp_path_factory.mktemp("tamper") / "p"
    root.mkdir()
    _ok(root, "init")
    _write(root, "print(1)\n")
    _ok(root, "stage", REF)
    _ok(root, "promote", REF)
    _ok(root, "approve", REF, actor="bob")
    _write(root, "print(2)\n")
    _ok(root, "stage", REF)
    _ok(root, "reject", REF, "--reason", "not yet", actor="carol")
    assert "audit log intact" in _ok(root, "audit", "verify")
    return root


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "copy", symlinks=True))


def _sql(root: Path, *statements: str) -> None:
    db = sqlite3.connect(root / ".lockgate" / "state.db")
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


def _broken(root: Path, expect: str) -> None:
    """Both ``audit verify`` and ``verify`` exit 1 and name ``expect``."""
    audit = _lg(root, "audit", "verify")
    assert audit.returncode == 1, audit.stdout + audit.stderr
    assert expect in audit.stdout, audit.stdout
    full = _lg(root, "verify")
    assert full.returncode == 1, full.stdout + full.stderr
    assert expect in full.stdout + full.stderr


TAMPERING = [
    (
        "insert an approval",
        "INSERT INTO approvals (component, revision, actor, decision, at) SELECT component, "
        "revision, 'mallory', 'approve', '2026-12-01T00:00:00.000000+00:00' FROM revisions "
        "ORDER BY seq DESC LIMIT 1",
        "approvals: approve of alice:etl",
    ),
    (
        "turn a rejection into an approval",
        "UPDATE approvals SET decision = 'approve' WHERE decision = 'reject'",
        "approvals: the reject of alice:etl",
    ),
    (
        "delete a rejection",
        "DELETE FROM approvals WHERE decision = 'reject'",
        "approvals: the reject",
    ),
    (
        "launder a revision's author",
        "UPDATE revisions SET actor = 'bob' WHERE seq = (SELECT MIN(seq) FROM revisions)",
        "differs from its stage event",
    ),
    (
        "insert a revision",
        "INSERT INTO revisions (component, revision, created_at, actor, stage, files, size) "
        f"VALUES ('alice:etl', '{'ab' * 32}', '2026-12-01', 'alice', 'staging', 1, 9)",
        "has no stage event",
    ),
    ("delete a revision", "DELETE FROM revisions WHERE seq = 1", "but its record is gone"),
    (
        "move a pointer",
        "UPDATE pointers SET revision = (SELECT revision FROM revisions ORDER BY seq DESC LIMIT 1)",
        "pointers: staging/etl is at",
    ),
    ("delete pointer history", "DELETE FROM pointer_history", "pointer history: staging/etl"),
    (
        "point latest at another revision",
        "UPDATE components SET latest_revision = (SELECT revision FROM revisions WHERE seq = 1)",
        "latest revision is",
    ),
]


@pytest.mark.parametrize(("what", "statement", "expect"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_a_record_changed_with_sql_is_found_by_audit_verify_and_verify(
    project: Path, what: str, statement: str, expect: str
) -> None:
    _sql(project, statement)
    _broken(project, expect)


def test_deleting_the_newest_events_or_all_is_found_against_an_external_head(
    project: Path, tmp_path: Path
) -> None:
    head = _ok(project, "audit", "head").strip()
    seq, digest = head.split(":")
    assert int(seq) > 3 and len(digest) == 64
    assert "reaches the recorded head" in _ok(project, "audit", "verify", "--head", head)

    newest = Path(shutil.copytree(project, tmp_path / "newest", symlinks=True))
    # The last event (carol's rejection) and its record go together: nothing else shows it.
    _sql(
        newest,
        "DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events)",
        "DELETE FROM approvals WHERE decision = 'reject'",
        "UPDATE components SET status = 'staged'",
    )
    assert _lg(newest, "audit", "verify").returncode == 0  # the chain alone cannot see it
    cut = _lg(newest, "audit", "verify", "--head", head)
    assert cut.returncode == 1
    assert f"the recorded head is event {seq} but the log ends at event {int(seq) - 1}" in (
        cut.stdout
    )

    _sql(project, "DELETE FROM events")
    gone = _lg(project, "audit", "verify", "--head", head)
    assert gone.returncode == 1 and "log ends at event 0" in gone.stdout, gone.stdout
    assert "record not explained by the audit log" in gone.stdout
    refused = _lg(project, "audit", "head")
    assert refused.returncode == 1 and "no head printed" in refused.stderr


def test_a_malformed_head_is_a_usage_error(project: Path) -> None:
    result = _lg(project, "audit", "verify", "--head", "7:not-hex")
    assert result.returncode == 2 and "expected SEQ:HASH" in result.stderr


def test_verify_reports_stage_entries_no_pointer_explains(project: Path) -> None:
    stage = project / "stages" / "staging"
    (stage / "extra.py").write_text("import os\n")
    (stage / "dir").mkdir()
    (stage / "link").symlink_to("/")
    result = _lg(project, "verify")
    assert result.returncode == 1
    for name in ("extra.py: a file", "dir: a directory", "link: a symlink"):
        assert name in result.stdout + result.stderr, result.stdout


def test_a_tampered_validation_cache_does_not_pass_a_failing_gate(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    _ok(root, "init")
    _write(root, "def broken(:\n")
    _ok(root, "stage", REF)
    assert _lg(root, "validate", REF).returncode == 1  # the state store keeps the failure
    db = sqlite3.connect(root / ".lockgate" / "state.db")
    kept = db.execute("SELECT revision, key FROM validation_results").fetchall()
    db.close()
    assert kept, "the syntax validator's verdict is kept"
    for revision, key in kept:  # the same verdicts, as files saying "no issues"
        path = root / ".lockgate" / "cache" / "validation" / revision[:2] / f"{revision}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps(entries | {key: []}))
    result = _lg(root, "promote", REF)
    assert result.returncode == 1, result.stdout
    assert "not ready" in result.stderr
    assert not (root / "stages" / "staging" / "etl").exists()


def test_a_verdict_edited_in_the_state_store_shows(tmp_path: Path) -> None:
    """The state store's verdicts are what a gate reuses; one turned into "no issues"
    outside lockgate is not vouched for by any validate event."""
    root = tmp_path / "p"
    root.mkdir()
    _ok(root, "init")
    _write(root, "def broken(:\n")
    _ok(root, "stage", REF)
    assert _lg(root, "validate", REF).returncode == 1
    assert "audit log intact" in _ok(root, "audit", "verify")  # honest verdicts verify
    _sql(root, "UPDATE validation_results SET value = '[]'")
    _broken(root, "has no validate event")
