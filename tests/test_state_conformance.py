"""Both builtin state stores pass the conformance suite; SQLite's schema and durability."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.builtin_plugins.memory_state import MemoryStateStore
from lockgate.builtin_plugins.sqlite_state import MIGRATIONS, SqliteStateStore
from lockgate.conformance import StateStoreConformance, at
from lockgate.contracts.audit import GENESIS, event_hash, verify_chain
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.state import (
    AuditEvent,
    ComponentRecord,
    PointerChange,
    RevisionRecord,
    StateStore,
)
from lockgate.errors import ConflictError
from suite_runner import failed, run_suite


class TestSqliteStateStore(StateStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[StateStore]:
        s = SqliteStateStore(tmp_path / "state.db")
        yield s
        s.close()


class TestMemoryStateStore(StateStoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[StateStore]:
        s = MemoryStateStore()
        yield s
        s.close()


# --------------------------------------------------------------------------- SQLite only


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def test_two_connections_compare_and_swap_the_same_pointer(db_path: Path) -> None:
    one, two = SqliteStateStore(db_path), SqliteStateStore(db_path)
    try:

        def change(revision: str, minute: int) -> PointerChange:
            return PointerChange(
                "staging", "etl", "alice:etl", revision, None, 1, at(minute), "alice", "promote"
            )

        def event(minute: int) -> AuditEvent:
            return AuditEvent(at=at(minute), actor="alice", action="promote")

        assert one.pointer("staging", "etl") is None and two.pointer("staging", "etl") is None
        one.move_pointer(change("r1", 1), expected_generation=0, status=None, event=event(1))
        with pytest.raises(ConflictError):  # two read generation 0 too: its write is stale
            two.move_pointer(change("r2", 2), expected_generation=0, status=None, event=event(2))
        assert [p.revision for p in two.pointers()] == ["r1"]
        two.append_event(event(3))
        one.append_event(event(4))
        assert [c.event.seq for c in one.chain()] == [1, 2, 3]
        assert verify_chain(two.chain()).ok
    finally:
        one.close()
        two.close()


def test_base_class_is_not_collected_on_its_own() -> None:
    assert not StateStoreConformance.__name__.startswith("Test")


def test_schema_version_is_the_number_of_migrations(db_path: Path) -> None:
    store = SqliteStateStore(db_path)
    try:
        assert store.schema_version == len(MIGRATIONS)
    finally:
        store.close()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    raw.close()


def test_reopening_a_current_database_keeps_its_version(db_path: Path) -> None:
    SqliteStateStore(db_path).close()
    store = SqliteStateStore(db_path)
    try:
        assert store.schema_version == len(MIGRATIONS)
    finally:
        store.close()


def test_wal_journal_mode_is_on(db_path: Path) -> None:
    store = SqliteStateStore(db_path)
    try:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()
    raw = sqlite3.connect(db_path)  # WAL is persistent: a fresh connection sees it too
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def _v1_database(path: Path) -> list[AuditEvent]:
    """A database as schema 1 wrote it: one component, two revisions, two events."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                raw.execute(statement)
        raw.execute("PRAGMA user_version = 1")
        raw.execute(
            "INSERT INTO components VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("alice:etl", "alice", "etl", "scripts", "staged", "r2", at(2)),
        )
        for revision, when, parent in (("r1", at(1), None), ("r2", at(2), "r1")):
            raw.execute(
                "INSERT INTO revisions (component, revision, created_at, actor, stage, files, "
                "size, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ("alice:etl", revision, when, "alice", "development", 1, 10, parent),
            )
        events = [
            AuditEvent(
                at=at(1),
                actor="alice",
                action="stage",
                component="alice:etl",
                stage="development",
                revision="r1",
                details={"files": 1, "size": 10},
                seq=1,
            ),
            AuditEvent(
                at=at(2),
                actor="alice",
                action="stage",
                component="alice:etl",
                stage="development",
                revision="r2",
                previous_revision="r1",
                reason="fix",
                details={"files": 1, "size": 10, "modified": 1},
                seq=2,
            ),
        ]
        prev = GENESIS
        for event in events:
            digest = event_hash(prev, event)
            raw.execute(
                "INSERT INTO events (seq, at, actor, action, component, stage, revision, "
                "previous_revision, reason, details, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.seq,
                    event.at,
                    event.actor,
                    event.action,
                    event.component,
                    event.stage,
                    event.revision,
                    event.previous_revision,
                    event.reason,
                    json.dumps(event.details, sort_keys=True),
                    prev,
                    digest,
                ),
            )
            prev = digest
    finally:
        raw.close()
    return events


def test_schema_1_database_is_migrated_to_the_latest_on_open(db_path: Path) -> None:
    _v1_database(db_path)
    store = SqliteStateStore(db_path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        record = store.component("alice:etl")
        assert record is not None
        assert (record.status, record.latest_revision) == (ComponentStatus.STAGED, "r2")
        assert [r.revision for r in store.revisions("alice:etl")] == ["r1", "r2"]
        assert store.pointers() == []
        assert store.open_intents() == []
    finally:
        store.close()


def test_schema_1_events_still_verify_after_migration(db_path: Path) -> None:
    written = _v1_database(db_path)
    store = SqliteStateStore(db_path)
    try:
        assert store.events() == written  # outcome defaults to "ok"
        report = verify_chain(store.chain())
        assert report.ok, report.problem
        assert report.events == 2
    finally:
        store.close()


def test_schema_1_events_are_counted_after_migration(db_path: Path) -> None:
    _v1_database(db_path)
    store = SqliteStateStore(db_path)
    try:
        counts = store.counts()
        assert counts.operations == {"stage": {"ok": 2}}
        assert counts.events == 2
        assert counts.by_status == {"staged": 1}
    finally:
        store.close()


def test_migrated_database_continues_the_chain(db_path: Path) -> None:
    _v1_database(db_path)
    store = SqliteStateStore(db_path)
    try:
        seq = store.append_event(
            AuditEvent(at=at(3), actor="bob", action="promote", outcome="failed")
        )
        assert seq == 3
        report = verify_chain(store.chain())
        assert report.ok and report.events == 3
        assert store.counts().operations == {"stage": {"ok": 2}, "promote": {"failed": 1}}
    finally:
        store.close()


def test_data_survives_close_and_reopen(db_path: Path) -> None:
    store = SqliteStateStore(db_path)
    store.record_revision(
        RevisionRecord("alice:etl", "r1", at(1), "alice", "development", 3, 30),
        ComponentRecord(
            "alice:etl", "alice", "etl", "scripts", ComponentStatus.STAGED, "r1", at(1)
        ),
        AuditEvent(at=at(1), actor="alice", action="stage", component="alice:etl"),
    )
    store.move_pointer(
        PointerChange("staging", "etl", "alice:etl", "r1", None, 1, at(2), "alice", "promote"),
        expected_generation=0,
        status=ComponentStatus.PROMOTED,
        event=AuditEvent(at=at(2), actor="alice", action="promote", component="alice:etl"),
    )
    store.append_event(AuditEvent(at=at(3), actor="bob", action="promote", outcome="failed"))
    before = (
        store.components(),
        store.revisions("alice:etl"),
        store.pointers(),
        store.pointer_history(),
        store.events(),
        list(store.chain()),
        store.counts(),
    )
    store.close()

    again = SqliteStateStore(db_path)
    try:
        after = (
            again.components(),
            again.revisions("alice:etl"),
            again.pointers(),
            again.pointer_history(),
            again.events(),
            list(again.chain()),
            again.counts(),
        )
        assert after == before
        assert verify_chain(again.chain()).ok
        assert again.append_event(AuditEvent(at=at(4), actor="alice", action="unlock")) == 4
        assert verify_chain(again.chain()).ok
    finally:
        again.close()


# Stores each broken in one way, run through the suite in one pytest subprocess with a
# sound store as the control (a failure can then only come from the breakage).
BROKEN_STORES = """
import contextlib
import time

import pytest
from lockgate.testing import MemoryStateStore, StateStoreConformance

class TestControl(StateStoreConformance):
    @pytest.fixture
    def store(self):
        return MemoryStateStore()

class LastWriterWins(MemoryStateStore):
    def move_pointer(self, change, *, expected_generation, status, event):
        current = self.pointer(change.stage, change.component_id)
        generation = current.generation if current is not None else 0
        return super().move_pointer(
            change, expected_generation=generation, status=status, event=event
        )  # whatever the caller expected: a lost update

class TestLastWriterWins(StateStoreConformance):
    @pytest.fixture
    def store(self):
        return LastWriterWins()

# grants every lock as if it were asked for it shared: holders are recorded and
# released, but nobody is ever kept out
class NeverExclusive(MemoryStateStore):
    def lock(self, name, *, owner, lease, timeout, shared=False):
        return super().lock(name, owner=owner, lease=lease, timeout=timeout, shared=True)

class TestNeverExclusive(StateStoreConformance):
    @pytest.fixture
    def store(self):
        return NeverExclusive()

# replaces a revision's whole set of verdicts on each write: a gate would lose the
# verdicts of the validators it did not just run
class Amnesiac(MemoryStateStore):
    def record_validation_results(self, revision, values):
        self._verdicts[revision] = dict(values)

class TestAmnesiac(StateStoreConformance):
    @pytest.fixture
    def store(self):
        return Amnesiac()

# a sound LockSet: the locks taken one by one, nested, as the kernel takes them without
# the capability (the control for the two below)
class NestedSet(MemoryStateStore):
    @contextlib.contextmanager
    def lock_set(self, locks, *, owner, lease, timeout, reads=()):
        deadline = time.monotonic() + timeout
        with contextlib.ExitStack() as stack:
            granted = owner
            for name, shared in locks:
                left = max(0.0, deadline - time.monotonic())
                lock = self.lock(name, owner=owner, lease=lease, timeout=left, shared=shared)
                granted = stack.enter_context(lock)
            yield granted

class TestNestedSet(StateStoreConformance):
    @pytest.fixture
    def store(self):
        return NestedSet()

# takes a set's locks last first: waits for `operation` holding the component lock
class BackwardsSet(NestedSet):
    def lock_set(self, locks, **given):
        return super().lock_set(list(reversed(locks)), **given)

class TestBackwardsSet(StateStoreConformance):
    @pytest.fixture
    def store(self):
        return BackwardsSet()

# keeps the locks it took when a later one stays busy
class LeakySet(MemoryStateStore):
    @contextlib.contextmanager
    def lock_set(self, locks, *, owner, lease, timeout, reads=()):
        taken = []
        for name, shared in locks:
            lock = self.lock(name, owner=owner, lease=lease, timeout=timeout, shared=shared)
            granted = lock.__enter__()
            taken.append(lock)
        try:
            yield granted
        finally:
            for lock in reversed(taken):
                lock.__exit__(None, None, None)

class TestLeakySet(StateStoreConformance):
    @pytest.fixture
    def store(self):
        return LeakySet()

# reads its reads with the locks and answers the first batch of them from that, even
# after a write of the holder's own
class StaleAheadSet(NestedSet):
    @contextlib.contextmanager
    def lock_set(self, locks, *, owner, lease, timeout, reads=()):
        with super().lock_set(locks, owner=owner, lease=lease, timeout=timeout) as granted:
            self.ahead = (list(reads), self.read_batch(reads)) if reads else None
            yield granted

    def read_batch(self, asks):
        ahead, self.ahead = getattr(self, "ahead", None), None
        if ahead is not None and ahead[0] == list(asks):
            return ahead[1]
        return super().read_batch(asks)

class TestStaleAheadSet(StateStoreConformance):
    @pytest.fixture
    def store(self):
        return StaleAheadSet()
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    outcomes = run_suite(tmp_path_factory.mktemp("suite"), BROKEN_STORES)
    assert failed(outcomes["TestControl"]) == set()
    assert failed(outcomes["TestNestedSet"]) == set()
    return outcomes


def test_the_suite_fails_a_store_that_does_not_compare_and_swap(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert {
        "test_move_with_stale_generation_raises_conflict",
        "test_move_of_new_pointer_with_nonzero_generation_conflicts",
        "test_conflicting_move_appends_no_event_and_no_history",
    } <= failed(outcomes["TestLastWriterWins"])
    assert outcomes["TestLastWriterWins"]["test_empty_store_knows_nothing"] == "passed"


def test_the_suite_fails_a_store_whose_lock_does_not_exclude(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert {
        "test_an_exclusive_lock_excludes_another",
        "test_a_shared_lock_excludes_an_exclusive_one",
        "test_an_exclusive_lock_excludes_a_shared_one",
        "test_the_timeout_error_names_the_holder",
        "test_the_release_of_a_broken_lock_does_not_free_the_next_holder",
    } <= failed(outcomes["TestNeverExclusive"])
    broken = outcomes["TestNeverExclusive"]
    assert broken["test_holder_reports_the_owner_while_held"] == "passed"
    assert broken["test_shared_holders_share"] == "passed"


def test_the_suite_fails_a_store_whose_verdicts_forget_other_keys(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert failed(outcomes["TestAmnesiac"]) == {
        "test_verdicts_are_kept_per_revision_and_replaced_by_key"
    }


def test_the_suite_runs_the_lock_set_tests_only_where_a_store_offers_lock_set(
    outcomes: dict[str, dict[str, str]],
) -> None:
    ran = {name for name in outcomes["TestNestedSet"] if "lock_set" in name}
    assert len(ran) == 9, sorted(ran)
    assert {outcomes["TestNestedSet"][name] for name in ran} == {"passed"}
    assert {outcomes["TestControl"][name] for name in ran} == {"skipped"}


def test_the_suite_fails_a_lock_set_that_waits_out_of_order(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert {
        "test_a_lock_set_never_holds_a_later_lock_while_waiting_for_an_earlier",
        "test_holder_reports_the_owner_of_each_lock_of_a_lock_set",
    } <= failed(outcomes["TestBackwardsSet"])
    assert (
        outcomes["TestBackwardsSet"]["test_a_lock_set_is_released_when_its_block_ends_or_raises"]
        == "passed"
    )


def test_the_suite_fails_a_lock_set_that_keeps_what_it_took_when_refused(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert failed(outcomes["TestLeakySet"]) == {
        "test_a_lock_set_refused_names_the_holder_and_holds_nothing"
    }


def test_the_suite_fails_a_lock_set_whose_reads_go_stale(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert failed(outcomes["TestStaleAheadSet"]) == {
        "test_a_lock_set_given_reads_answers_them_as_read_under_it"
    }


def test_sqlite_reads_pointer_changes_in_field_order() -> None:
    """The sqlite store builds a PointerChange positionally from CHANGE_COLUMNS."""
    import attrs

    from lockgate.builtin_plugins.sqlite_schema import CHANGE_COLUMNS
    from lockgate.contracts.state import PointerChange

    assert CHANGE_COLUMNS.split(", ") == [f.name for f in attrs.fields(PointerChange)]
