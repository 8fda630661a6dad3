"""The audit log's hash chain: tampering with ``state.db`` is found by ``lockgate audit verify``.

The CLI tests build one real project (stage, restage, promote: 7 events), copy it per test,
tamper with ``.lockgate/state.db`` directly with ``sqlite3`` and run the real command.
The unit tests feed :func:`verify_chain` hand-made chains.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import attrs
import pytest

from lockgate.builtin_plugins.sqlite_state import SqliteStateStore
from lockgate.contracts.audit import GENESIS, ChainReport, event_hash, verify_chain
from lockgate.contracts.state import AuditEvent, ChainedEvent
from lockgate.operations.init import init_project
from lockgate.operations.lifecycle import move_pointer
from lockgate.operations.stage import Stager
from lockgate.testing import open_project, run_cli

ENV = {"LOCKGATE_DISABLE_PLUGINS": "teamdefaults"}
EVENTS = 7


def _write(root: Path, ref: str, files: dict[str, str]) -> None:
    ws, cid = ref.split(":")
    comp = root / "workspaces" / ws / "scripts" / cid
    for rel, text in files.items():
        path = comp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture(scope="module")
def staged_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose audit log holds 7 events: stages, restages and a promotion."""
    root = tmp_path_factory.mktemp("audit") / "project"
    init_project(root)
    _write(root, "alice:etl", {"run.py": "print(1)\n"})
    _write(root, "bob:report", {"report.sql": "select 1;\n"})
    _write(root, "carol:load", {"load.py": "load()\n", "lib/util.py": "x = 1\n"})
    project = open_project(root, environ=ENV)
    try:
        stager = Stager(project)
        for ref in ("alice:etl", "bob:report", "carol:load"):  # events 1-3
            stager.stage(ref)
        _write(root, "alice:etl", {"run.py": "print(2)\n"})
        stager.stage("alice:etl", reason="fix")  # event 4: a restage
        _write(root, "carol:load", {"lib/util.py": "x = 2\n"})
        stager.stage("carol:load")  # event 5
        record = project.state().component("alice:etl")
        assert record is not None
        move_pointer(  # event 6
            project,
            stage="staging",
            component="alice:etl",
            revision=record.latest_revision,
            action="promote",
        )
        _write(root, "bob:report", {"report.sql": "select 2;\n"})
        stager.stage("bob:report")  # event 7
        assert project.state().counts().events == EVENTS
    finally:
        project.close()
    return root


@pytest.fixture
def project(staged_project: Path, tmp_path: Path) -> Path:
    """A private copy of the staged project, to tamper with."""
    return Path(shutil.copytree(staged_project, tmp_path / "project"))


def _tamper(root: Path, *statements: str) -> None:
    db = sqlite3.connect(root / ".lockgate" / "state.db")
    try:
        with db:
            for statement in statements:
                db.execute(statement)
    finally:
        db.close()


def _verify(root: Path, *extra: str) -> tuple[int, str]:
    result = run_cli("audit", "verify", *extra, project=root, env=ENV)
    return result.exit_code, result.stdout


# --------------------------------------------------------------------------- CLI: intact


def test_untouched_log_is_intact(project: Path) -> None:
    code, out = _verify(project)
    assert code == 0, out
    assert f"audit log intact: {EVENTS} events, hash chain verified" in out


def test_untouched_log_json(project: Path) -> None:
    code, out = _verify(project, "--json")
    assert code == 0
    assert json.loads(out) == {
        "ok": True,
        "events": EVENTS,
        "first_bad_seq": None,
        "problem": None,
        "records": [],
        "head": None,
    }


def test_log_holds_the_operations_staged(project: Path) -> None:
    store = SqliteStateStore(project / ".lockgate" / "state.db")
    try:
        actions = [e.action for e in store.events()]
    finally:
        store.close()
    assert actions == ["stage"] * 5 + ["promote", "stage"]


# --------------------------------------------------------------------------- CLI: tampered


def test_edited_row_is_found_at_its_seq(project: Path) -> None:
    _tamper(project, "UPDATE events SET actor = 'mallory' WHERE seq = 3")
    code, out = _verify(project)
    assert code == 1
    assert out.strip() == (
        "audit log broken at event 3: event 3 was altered after it was written "
        "(2 events verified before it)"
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("at", "'2020-01-01T00:00:00.000000+00:00'"),
        ("actor", "'mallory'"),
        ("action", "'promote'"),
        ("component", "'mallory:etl'"),
        ("stage", "'production'"),
        ("revision", "'0000'"),
        ("previous_revision", "'0000'"),
        ("reason", "'looks fine'"),
        ("details", "'{}'"),
        ("outcome", "'failed'"),
        ("hash", "'" + "f" * 64 + "'"),
    ],
    ids=lambda v: v if v.isidentifier() else "",
)
def test_editing_any_column_is_found_as_altered(project: Path, column: str, value: str) -> None:
    _tamper(project, f"UPDATE events SET {column} = {value} WHERE seq = 3")
    code, out = _verify(project, "--json")
    assert code == 1
    report = json.loads(out)
    assert (report["ok"], report["first_bad_seq"], report["events"]) == (False, 3, 2)
    assert report["problem"] == "event 3 was altered after it was written"


def test_edited_prev_hash_is_found_as_not_following(project: Path) -> None:
    _tamper(project, "UPDATE events SET prev_hash = '" + "0" * 64 + "' WHERE seq = 3")
    code, out = _verify(project, "--json")
    assert code == 1
    assert json.loads(out)["first_bad_seq"] == 3
    assert "does not follow event 2" in json.loads(out)["problem"]


def test_deleted_row_is_found_as_missing(project: Path) -> None:
    _tamper(project, "DELETE FROM events WHERE seq = 3")
    code, out = _verify(project)
    assert code == 1
    assert out.strip() == (
        "audit log broken at event 3: event 3 is missing (deleted?) (2 events verified before it)"
    )


def test_deleted_rows_are_named_as_a_range(project: Path) -> None:
    _tamper(project, "DELETE FROM events WHERE seq IN (3, 4)")
    code, out = _verify(project, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["first_bad_seq"] == 3
    assert report["problem"] == "event 3-4 is missing (deleted?)"


def test_deleted_first_row_is_found(project: Path) -> None:
    _tamper(project, "DELETE FROM events WHERE seq = 1")
    code, out = _verify(project, "--json")
    assert code == 1
    assert json.loads(out)["first_bad_seq"] == 1


# Reordering rows 2 and 3: the first position that no longer fits is 2 (not 3): the row now
# at seq 2 is the old event 3, whose prev_hash names the old event 2, not event 1.
def test_rows_reordered_by_swapping_seq_are_found(project: Path) -> None:
    _tamper(
        project,
        "UPDATE events SET seq = -2 WHERE seq = 2",
        "UPDATE events SET seq = 2 WHERE seq = 3",
        "UPDATE events SET seq = 3 WHERE seq = -2",
    )
    code, out = _verify(project)
    assert code == 1
    assert out.strip() == (
        "audit log broken at event 2: event 2 does not follow event 1 "
        "(edited, moved or deleted) (1 events verified before it)"
    )


def test_rows_reordered_by_swapping_contents_are_found(project: Path) -> None:
    columns = (
        "at, actor, action, component, stage, revision, previous_revision, reason, "
        "details, prev_hash, hash, outcome"
    )
    _tamper(
        project,
        f"CREATE TEMP TABLE swap AS SELECT seq, {columns} FROM events WHERE seq IN (2, 3)",
        "UPDATE swap SET seq = 5 - seq",  # 2 <-> 3
        "DELETE FROM events WHERE seq IN (2, 3)",
        f"INSERT INTO events (seq, {columns}) SELECT seq, {columns} FROM swap",
    )
    code, out = _verify(project, "--json")
    assert code == 1
    report = json.loads(out)
    assert (report["first_bad_seq"], report["events"]) == (2, 1)
    assert report["problem"] == "event 2 does not follow event 1 (edited, moved or deleted)"


def test_edited_last_row_is_found(project: Path) -> None:
    _tamper(project, f"UPDATE events SET reason = 'nothing to see' WHERE seq = {EVENTS}")
    code, out = _verify(project)
    assert code == 1
    assert out.strip() == (
        f"audit log broken at event {EVENTS}: event {EVENTS} was altered after it was "
        f"written ({EVENTS - 1} events verified before it)"
    )


def test_deleted_last_row_leaves_an_intact_chain_but_an_unexplained_record(
    project: Path,
) -> None:
    # Truncating the tail of the log leaves a valid, shorter chain: a hash chain alone
    # cannot tell "the log ends here" from "the last events were deleted" (a head kept
    # outside the project can: tests/test_tamper_evidence.py). Here the deleted event is
    # a staging, whose revision record now has no event: that is reported.
    _tamper(project, f"DELETE FROM events WHERE seq = {EVENTS}")
    code, out = _verify(project)
    assert code == 1
    assert f"audit log intact: {EVENTS - 1} events, hash chain verified" in out
    assert "record not explained by the audit log: revisions: bob:report" in out


def test_rewriting_the_chain_from_an_edit_is_found_only_against_an_external_head(
    project: Path,
) -> None:
    # The hashes are unkeyed: whoever can write the database can recompute them, and edit
    # the records to match. The chain finds accidental or naive edits; against a writer
    # who recomputes it, a head kept outside the project is needed.
    head = run_cli("audit", "head", project=project, env=ENV)
    assert head.exit_code == 0, head.stderr
    store = SqliteStateStore(project / ".lockgate" / "state.db")
    try:
        chain = list(store.chain())
    finally:
        store.close()
    prev = chain[1].hash
    statements = []
    for item in chain[2:]:
        event = item.event
        if event.seq == 3:
            event = attrs.evolve(event, actor="mallory")
        digest = event_hash(prev, event)
        statements.append(
            f"UPDATE events SET actor = '{event.actor}', prev_hash = '{prev}', "
            f"hash = '{digest}' WHERE seq = {event.seq}"
        )
        prev = digest
    edited = chain[2].event
    statements.append(
        f"UPDATE revisions SET actor = 'mallory' WHERE component = '{edited.component}' "
        f"AND revision = '{edited.revision}'"
    )
    _tamper(project, *statements)
    assert _verify(project)[0] == 0
    assert _verify(project, "--head", head.stdout.strip())[0] == 1


def test_json_names_the_first_bad_seq(project: Path) -> None:
    _tamper(project, "UPDATE events SET actor = 'mallory' WHERE seq = 3")
    result = run_cli("audit", "verify", "--json", project=project, env=ENV)
    assert result.exit_code == 1
    assert result.json() == {
        "ok": False,
        "events": 2,
        "first_bad_seq": 3,
        "problem": "event 3 was altered after it was written",
        "records": [],
        "head": None,
    }


def test_only_the_first_break_is_reported(project: Path) -> None:
    _tamper(
        project,
        "UPDATE events SET actor = 'mallory' WHERE seq = 5",
        "DELETE FROM events WHERE seq = 2",
    )
    code, out = _verify(project, "--json")
    assert code == 1
    assert json.loads(out)["first_bad_seq"] == 2


# --------------------------------------------------------------------------- verify_chain


def _event(seq: int, **changes: Any) -> AuditEvent:
    event = AuditEvent(
        at=f"2026-11-20T10:{seq:02d}:00.000000+00:00",
        actor="alice",
        action="stage",
        component="alice:etl",
        stage="staging",
        revision=f"r{seq}",
        details={"files": seq},
        seq=seq,
    )
    return attrs.evolve(event, **changes)


def _chain(n: int) -> list[ChainedEvent]:
    out, prev = [], GENESIS
    for seq in range(1, n + 1):
        event = _event(seq)
        digest = event_hash(prev, event)
        out.append(ChainedEvent(event, prev, digest))
        prev = digest
    return out


def test_verify_empty_chain_is_ok() -> None:
    assert verify_chain([]) == ChainReport(0)
    assert verify_chain([]).ok


def test_verify_intact_chain() -> None:
    report = verify_chain(_chain(5))
    assert report.ok
    assert report == ChainReport(5, None, None)


def test_verify_accepts_an_iterator() -> None:
    assert verify_chain(iter(_chain(3))).events == 3


def test_verify_first_event_must_follow_genesis() -> None:
    chain = _chain(2)
    bad = ChainedEvent(chain[0].event, "1" * 64, event_hash("1" * 64, chain[0].event))
    report = verify_chain([bad, chain[1]])
    assert (report.first_bad_seq, report.events) == (1, 0)
    assert report.problem == "event 1 does not follow event 0 (edited, moved or deleted)"


def test_verify_gap() -> None:
    chain = _chain(5)
    report = verify_chain(chain[:2] + chain[3:])
    assert not report.ok
    assert report == ChainReport(2, 3, "event 3 is missing (deleted?)")


def test_verify_gap_of_several() -> None:
    chain = _chain(6)
    report = verify_chain(chain[:1] + chain[4:])
    assert report == ChainReport(1, 2, "event 2-4 is missing (deleted?)")


def test_verify_chain_not_starting_at_one() -> None:
    assert verify_chain(_chain(3)[1:]).first_bad_seq == 1


def test_verify_out_of_order() -> None:
    chain = _chain(4)
    # Sequence 1, 3, 2, 4: the first position that does not fit is 2 (the verifier,
    # expecting 2, sees 3 and calls 2 missing).
    report = verify_chain([chain[0], chain[2], chain[1], chain[3]])
    assert (report.ok, report.first_bad_seq, report.events) == (False, 2, 1)


def test_verify_repeated_seq_is_out_of_order() -> None:
    chain = _chain(3)
    report = verify_chain([chain[0], chain[1], chain[1], chain[2]])
    assert report == ChainReport(2, 2, "event 2 is out of order")


def test_verify_moved_event_with_renumbered_seq() -> None:
    chain = _chain(4)
    moved = [
        chain[0],
        attrs.evolve(chain[2], event=attrs.evolve(chain[2].event, seq=2)),
        attrs.evolve(chain[1], event=attrs.evolve(chain[1].event, seq=3)),
        chain[3],
    ]
    report = verify_chain(moved)
    assert report == ChainReport(1, 2, "event 2 does not follow event 1 (edited, moved or deleted)")


@pytest.mark.parametrize(
    "changes",
    [
        {"actor": "mallory"},
        {"at": "2020-01-01T00:00:00.000000+00:00"},
        {"action": "promote"},
        {"component": "bob:etl"},
        {"stage": "production"},
        {"revision": "r0"},
        {"previous_revision": "r0"},
        {"reason": "why not"},
        {"details": {"files": 99}},
        {"outcome": "failed"},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_verify_altered_event(changes: dict[str, Any]) -> None:
    chain = _chain(4)
    chain[2] = attrs.evolve(chain[2], event=attrs.evolve(chain[2].event, **changes))
    report = verify_chain(chain)
    assert report == ChainReport(2, 3, "event 3 was altered after it was written")


def test_verify_altered_hash() -> None:
    chain = _chain(4)
    chain[1] = attrs.evolve(chain[1], hash="e" * 64)
    report = verify_chain(chain)
    assert (report.first_bad_seq, report.problem) == (
        2,
        "event 2 was altered after it was written",
    )


def test_verify_truncated_tail_is_indistinguishable() -> None:
    # No anchor: a prefix of a valid chain is a valid chain.
    assert verify_chain(_chain(5)[:3]) == ChainReport(3)


def test_event_hash_depends_on_prev_and_seq() -> None:
    event = _event(1)
    assert event_hash(GENESIS, event) != event_hash("1" * 64, event)
    assert event_hash(GENESIS, event) != event_hash(GENESIS, attrs.evolve(event, seq=2))
    assert event_hash(GENESIS, event) == event_hash(GENESIS, _event(1))


def test_event_hash_of_ok_outcome_leaves_outcome_out() -> None:
    # Events written before outcomes existed (schema 1) were all "ok" and keep their hash;
    # any other outcome is part of the hash.
    event = _event(1)
    assert event.outcome == "ok"
    assert event_hash(GENESIS, event) != event_hash(GENESIS, attrs.evolve(event, outcome="failed"))
    assert event_hash(GENESIS, attrs.evolve(event, outcome="failed")) != event_hash(
        GENESIS, attrs.evolve(event, outcome="refused")
    )


def test_chain_report_to_dict() -> None:
    assert ChainReport(2, 3, "event 3 is missing (deleted?)").to_dict() == {
        "ok": False,
        "events": 2,
        "first_bad_seq": 3,
        "problem": "event 3 is missing (deleted?)",
    }
