"""The conformance suite every state-store plugin must pass.

A state store (the ``StateStore`` protocol of :mod:`lockgate.contracts`) records
components, revisions, stage pointers and their history, approvals, intents and the
hash-chained audit log, and provides the kernel's locks (``operation``, ``staging``).
This module holds one test per promised behaviour, in a base class that a plugin's own
test suite inherits (the lock tests are in :mod:`lockgate.testing._lock_suite`, and run
as part of it); the builtin ``sqlite`` and ``memory`` stores run it too.

Use it from a plugin's tests::

    import pytest
    from lockgate.testing import StateStoreConformance

    class TestMyStore(StateStoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            s = MyStore(tmp_path / "state")
            yield s
            s.close()

That is: subclass it as ``class TestMyStore(StateStoreConformance)`` and define a
``store`` fixture returning a fresh, empty store (closing it afterwards if it holds
resources). The base class is not named ``Test*``, so pytest does not collect it by itself;
each subclass runs every test against its own store. To mark a known failure of one store,
override the method in the subclass (``super().test_...(store)``) under
``@pytest.mark.xfail``.

Every timestamp used is a fixed ISO 8601 UTC string in lockgate's format
(``2026-11-20T10:00:00.000000+00:00``), so ordering by time is deterministic.
"""

from __future__ import annotations

import itertools

import attrs
import pytest

from lockgate.contracts.audit import GENESIS, event_hash, verify_chain, verify_state
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.state import (
    Approval,
    AuditEvent,
    ComponentRecord,
    EventFilter,
    Intent,
    Pointer,
    PointerChange,
    RevisionRecord,
    StateStore,
)
from lockgate.errors import ConflictError, CorruptStateError
from lockgate.testing._lock_suite import StateStoreLockConformance

__all__ = ["StateStoreConformance", "at"]

S = ComponentStatus


def at(minute: int, second: int = 0) -> str:
    """A fixed timestamp, ``2026-11-20T10:MM:SS.000000+00:00`` (sorts as time does)."""
    return f"2026-11-20T10:{minute:02d}:{second:02d}.000000+00:00"


# --------------------------------------------------------------------------- builders


def _component(
    ref: str,
    *,
    latest: str | None = "r1",
    status: ComponentStatus = S.STAGED,
    component_type: str = "scripts",
    updated_at: str | None = None,
) -> ComponentRecord:
    workspace, component_id = ref.split(":")
    return ComponentRecord(
        component=ref,
        workspace=workspace,
        component_id=component_id,
        component_type=component_type,
        status=status,
        latest_revision=latest,
        updated_at=updated_at or at(0),
    )


def _revision(
    ref: str,
    revision: str,
    *,
    created_at: str,
    parent: str | None = None,
    actor: str = "alice",
    stage: str = "development",
    files: int = 1,
    size: int = 10,
) -> RevisionRecord:
    return RevisionRecord(
        component=ref,
        revision=revision,
        created_at=created_at,
        actor=actor,
        stage=stage,
        files=files,
        size=size,
        parent=parent,
    )


def _event(
    action: str,
    when: str,
    *,
    actor: str = "alice",
    component: str | None = None,
    stage: str | None = None,
    revision: str | None = None,
    previous_revision: str | None = None,
    reason: str | None = None,
    details: dict[str, object] | None = None,
    outcome: str = "ok",
) -> AuditEvent:
    return AuditEvent(
        at=when,
        actor=actor,
        action=action,
        component=component,
        stage=stage,
        revision=revision,
        previous_revision=previous_revision,
        reason=reason,
        details=dict(details or {}),
        outcome=outcome,
    )


def _stage(
    store: StateStore,
    ref: str,
    revision: str,
    when: str,
    *,
    parent: str | None = None,
    status: ComponentStatus = S.STAGED,
    component_type: str = "scripts",
    actor: str = "alice",
    stage: str = "development",
) -> int:
    """Record ``revision`` of ``ref`` as a stage operation would; return the event's seq."""
    return store.record_revision(
        _revision(ref, revision, created_at=when, parent=parent, actor=actor, stage=stage),
        _component(
            ref,
            latest=revision,
            status=status,
            component_type=component_type,
            updated_at=when,
        ),
        _event(
            "stage",
            when,
            actor=actor,
            component=ref,
            stage=stage,
            revision=revision,
            previous_revision=parent,
        ),
    )


def _move(
    store: StateStore,
    stage: str,
    ref: str,
    revision: str | None,
    when: str,
    *,
    expected: int,
    action: str = "promote",
    actor: str = "alice",
    reason: str | None = None,
    status: ComponentStatus | None = None,
) -> Pointer:
    """Move ``ref``'s pointer in ``stage`` as the lifecycle does."""
    component_id = ref.split(":")[1]
    current = store.pointer(stage, component_id)
    previous = current.revision if current else None
    change = PointerChange(
        stage=stage,
        component_id=component_id,
        component=ref,
        revision=revision,
        previous_revision=previous,
        generation=expected + 1,
        at=when,
        actor=actor,
        action=action,
        reason=reason,
    )
    event = _event(
        action,
        when,
        actor=actor,
        component=ref,
        stage=stage,
        revision=revision,
        previous_revision=previous,
        reason=reason,
        details={"generation": expected + 1},
    )
    return store.move_pointer(change, expected_generation=expected, status=status, event=event)


def _mixed_writes(store: StateStore) -> None:
    """One of every kind of write, including refused and failed attempts."""
    _stage(store, "alice:etl", "r1", at(1))
    _stage(store, "bob:report", "q1", at(2), component_type="notebooks")
    store.set_status("alice:etl", S.STAGED, S.APPROVED, _event("approve", at(3)))
    store.add_approval(
        Approval("alice:etl", "r1", "carol", "approve", at(4), stage="staging"),
        _event("approve", at(4), actor="carol", component="alice:etl", revision="r1"),
    )
    _move(store, "staging", "alice:etl", "r1", at(5), expected=0, status=S.PROMOTED)
    store.append_event(_event("promote", at(6), component="bob:report", outcome="failed"))
    with pytest.raises(ConflictError):
        _move(store, "staging", "alice:etl", "r1", at(7), expected=0)
    store.open_intent(Intent("i1", "promote", "alice", at(8), {"stage": "staging"}))
    _stage(store, "alice:etl", "r2", at(9), parent="r1")
    _move(store, "staging", "alice:etl", None, at(10), expected=1, action="rollback")
    store.close_intent("i1", "completed")
    store.append_event(
        _event("unlock", at(11), reason="stale lock", details={"pid": 42, "paths": ["a", "b"]})
    )


# --------------------------------------------------------------------------- the suite


class StateStoreConformance(StateStoreLockConformance):
    """The behaviours every :class:`~lockgate.contracts.state.StateStore` must show (its
    locks: :class:`~lockgate.testing._lock_suite.StateStoreLockConformance`).

    Subclass it as ``class TestMyStore(StateStoreConformance)`` and define a ``store``
    fixture returning a fresh, empty store.
    """

    # ------------------------------------------------------------------ empty store

    def test_empty_store_knows_nothing(self, store: StateStore) -> None:
        assert store.components() == []
        assert store.component("alice:etl") is None
        assert store.revisions("alice:etl") == []
        assert store.pointers() == []
        assert store.pointer("staging", "etl") is None
        assert store.pointer_history() == []
        assert store.live_at("staging", at(30)) == []
        assert store.approvals("alice:etl") == []
        assert store.open_intents() == []
        assert store.events() == []
        assert list(store.chain()) == []

    def test_empty_store_counts_are_zero(self, store: StateStore) -> None:
        counts = store.counts()
        assert counts.by_status == {}
        assert counts.by_type == {}
        assert counts.by_workspace == {}
        assert counts.operations == {}
        assert counts.events == 0

    # ------------------------------------------------------------------ record_revision

    def test_record_revision_creates_the_component(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        assert store.component("alice:etl") == _component(
            "alice:etl", latest="r1", status=S.STAGED, updated_at=at(1)
        )

    def test_record_revision_stores_the_revision_record(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1), actor="bob", stage="integration")
        assert store.revisions("alice:etl") == [
            _revision("alice:etl", "r1", created_at=at(1), actor="bob", stage="integration")
        ]

    def test_record_revision_upserts_the_component(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        store.set_status("alice:etl", S.STAGED, S.APPROVED, _event("approve", at(2)))
        _stage(store, "alice:etl", "r2", at(3), parent="r1", component_type="jobs")
        assert store.components() == [
            _component(
                "alice:etl", latest="r2", status=S.STAGED, component_type="jobs", updated_at=at(3)
            )
        ]

    def test_record_revision_keeps_revisions_oldest_first(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "alice:etl", "r2", at(2), parent="r1")
        _stage(store, "alice:etl", "r3", at(3), parent="r2")
        revisions = store.revisions("alice:etl")
        assert [r.revision for r in revisions] == ["r1", "r2", "r3"]
        assert [r.parent for r in revisions] == [None, "r1", "r2"]

    def test_record_revision_ignores_a_duplicate_revision(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "alice:etl", "r2", at(2), parent="r1")
        _stage(store, "alice:etl", "r1", at(3), parent="r2", actor="bob")
        revisions = store.revisions("alice:etl")
        assert [r.revision for r in revisions] == ["r1", "r2"]
        assert revisions[0].actor == "alice"  # the first record is kept, not overwritten

    def test_record_revision_keeps_revisions_per_component(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "bob:etl", "r1", at(2))
        _stage(store, "bob:etl", "r2", at(3), parent="r1")
        assert [r.revision for r in store.revisions("alice:etl")] == ["r1"]
        assert [r.revision for r in store.revisions("bob:etl")] == ["r1", "r2"]

    def test_record_revision_returns_increasing_seq(self, store: StateStore) -> None:
        seqs = [
            _stage(store, "alice:etl", "r1", at(1)),
            _stage(store, "alice:etl", "r2", at(2), parent="r1"),
            _stage(store, "bob:report", "q1", at(3)),
        ]
        assert seqs == [1, 2, 3]

    def test_record_revision_appends_its_event(self, store: StateStore) -> None:
        seq = _stage(store, "alice:etl", "r1", at(1))
        (event,) = store.events()
        assert event.seq == seq
        assert (event.action, event.component, event.revision) == ("stage", "alice:etl", "r1")

    # ------------------------------------------------------------------ components

    def test_components_are_sorted_by_ref(self, store: StateStore) -> None:
        for ref in ("carol:zeta", "alice:etl", "bob:alpha", "alice:alpha"):
            _stage(store, ref, "r1", at(1))
        assert [c.component for c in store.components()] == [
            "alice:alpha",
            "alice:etl",
            "bob:alpha",
            "carol:zeta",
        ]

    def test_components_filter_by_workspace(self, store: StateStore) -> None:
        for ref in ("bob:report", "alice:zeta", "alice:etl"):
            _stage(store, ref, "r1", at(1))
        assert [c.component for c in store.components("alice")] == ["alice:etl", "alice:zeta"]
        assert [c.component for c in store.components("bob")] == ["bob:report"]
        assert store.components("nobody") == []

    def test_component_is_none_for_an_unknown_ref(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        assert store.component("alice:other") is None
        assert store.component("bob:etl") is None

    # ------------------------------------------------------------------ set_status

    def test_set_status_changes_status_when_expected_matches(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        store.set_status("alice:etl", S.STAGED, S.APPROVED, _event("approve", at(2)))
        record = store.component("alice:etl")
        assert record is not None
        assert record.status is S.APPROVED
        assert record.latest_revision == "r1"

    def test_set_status_appends_its_event_and_returns_its_seq(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        seq = store.set_status(
            "alice:etl", S.STAGED, S.REJECTED, _event("reject", at(2), actor="carol")
        )
        assert seq == 2
        last = store.events()[-1]
        assert (last.seq, last.action, last.actor) == (2, "reject", "carol")

    def test_set_status_conflict_raises_and_changes_nothing(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        before = store.component("alice:etl")
        with pytest.raises(ConflictError):
            store.set_status("alice:etl", S.APPROVED, S.PROMOTED, _event("promote", at(2)))
        assert store.component("alice:etl") == before
        assert [e.seq for e in store.events()] == [1]
        assert store.counts().operations == {"stage": {"ok": 1}}

    def test_set_status_on_unknown_component_raises_conflict(self, store: StateStore) -> None:
        with pytest.raises(ConflictError):
            store.set_status("alice:etl", S.STAGED, S.APPROVED, _event("approve", at(1)))
        assert store.events() == []
        assert store.components() == []

    # ------------------------------------------------------------------ pointers

    def test_first_move_with_generation_zero_creates_generation_one(
        self, store: StateStore
    ) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        pointer = _move(store, "staging", "alice:etl", "r1", at(2), expected=0, actor="carol")
        expected = Pointer("staging", "etl", "alice:etl", "r1", 1, at(2), "carol")
        assert pointer == expected
        assert store.pointer("staging", "etl") == expected

    def test_move_with_current_generation_increments_it(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "staging", "alice:etl", "r2", at(3), expected=1)
        pointer = _move(store, "staging", "alice:etl", "r3", at(4), expected=2)
        assert (pointer.revision, pointer.generation) == ("r3", 3)
        assert store.pointer("staging", "etl") == pointer

    def test_move_with_stale_generation_raises_conflict(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "staging", "alice:etl", "r2", at(3), expected=1)
        with pytest.raises(ConflictError):
            _move(store, "staging", "alice:etl", "r3", at(4), expected=1)
        pointer = store.pointer("staging", "etl")
        assert pointer is not None
        assert (pointer.revision, pointer.generation, pointer.updated_at) == ("r2", 2, at(3))

    def test_move_of_new_pointer_with_nonzero_generation_conflicts(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        with pytest.raises(ConflictError):
            _move(store, "staging", "alice:etl", "r1", at(2), expected=1)
        assert store.pointer("staging", "etl") is None
        assert store.pointers() == []

    def test_conflicting_move_appends_no_event_and_no_history(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        events, history = store.events(), store.pointer_history()
        with pytest.raises(ConflictError):
            _move(store, "staging", "alice:etl", "r2", at(3), expected=0, status=S.PROMOTED)
        assert store.events() == events
        assert store.pointer_history() == history
        assert store.counts().events == 2
        record = store.component("alice:etl")
        assert record is not None and record.status is S.STAGED

    def test_move_pointer_appends_its_event(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0, actor="carol")
        last = store.events()[-1]
        assert (last.seq, last.action, last.actor, last.stage, last.revision) == (
            2,
            "promote",
            "carol",
            "staging",
            "r1",
        )

    def test_pointer_history_records_each_move(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0, reason="first")
        _move(
            store,
            "staging",
            "alice:etl",
            "r2",
            at(3),
            expected=1,
            action="rollback",
            actor="bob",
            reason="broken",
        )
        first, second = store.pointer_history()
        assert first == PointerChange(
            stage="staging",
            component_id="etl",
            component="alice:etl",
            revision="r1",
            previous_revision=None,
            generation=1,
            at=at(2),
            actor="alice",
            action="promote",
            reason="first",
            valid_until=at(3),
            event_seq=2,
        )
        assert second == PointerChange(
            stage="staging",
            component_id="etl",
            component="alice:etl",
            revision="r2",
            previous_revision="r1",
            generation=2,
            at=at(3),
            actor="bob",
            action="rollback",
            reason="broken",
            valid_until=None,
            event_seq=3,
        )

    def test_pointer_history_event_seq_names_the_moves_event(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        store.append_event(_event("unlock", at(2)))
        _move(store, "staging", "alice:etl", "r1", at(3), expected=0)
        (change,) = store.pointer_history()
        (event,) = store.events(EventFilter(action="promote"))
        assert change.event_seq == event.seq == 3

    def test_new_move_sets_valid_until_of_the_previous_change(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "staging", "alice:etl", "r2", at(5), expected=1)
        _move(store, "staging", "alice:etl", "r3", at(9), expected=2)
        assert [(c.revision, c.at, c.valid_until) for c in store.pointer_history()] == [
            ("r1", at(2), at(5)),
            ("r2", at(5), at(9)),
            ("r3", at(9), None),
        ]

    def test_valid_until_is_per_stage_and_component(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "alice:report", "q1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "staging", "alice:report", "q1", at(3), expected=0)
        _move(store, "production", "alice:etl", "r1", at(4), expected=0)
        _move(store, "staging", "alice:etl", "r2", at(5), expected=1)
        history = store.pointer_history()
        assert [(c.stage, c.component_id, c.valid_until) for c in history] == [
            ("staging", "etl", at(5)),
            ("staging", "report", None),
            ("production", "etl", None),
            ("staging", "etl", None),
        ]

    def test_pointer_history_filters_by_stage_and_component_id(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "alice:report", "q1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "staging", "alice:report", "q1", at(3), expected=0)
        _move(store, "production", "alice:etl", "r1", at(4), expected=0)
        _move(store, "staging", "alice:etl", "r2", at(5), expected=1)

        def keys(changes: list[PointerChange]) -> list[tuple[str, str, str | None]]:
            return [(c.stage, c.component_id, c.revision) for c in changes]

        assert keys(store.pointer_history("staging")) == [
            ("staging", "etl", "r1"),
            ("staging", "report", "q1"),
            ("staging", "etl", "r2"),
        ]
        assert keys(store.pointer_history(component_id="etl")) == [
            ("staging", "etl", "r1"),
            ("production", "etl", "r1"),
            ("staging", "etl", "r2"),
        ]
        assert keys(store.pointer_history("staging", "etl")) == [
            ("staging", "etl", "r1"),
            ("staging", "etl", "r2"),
        ]
        assert store.pointer_history("integration") == []

    def test_pointers_lists_current_pointers_of_every_stage(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "alice:report", "q1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "staging", "alice:etl", "r2", at(3), expected=1)
        _move(store, "staging", "alice:report", "q1", at(4), expected=0)
        _move(store, "production", "alice:etl", "r1", at(5), expected=0)
        found = {(p.stage, p.component_id, p.revision, p.generation) for p in store.pointers()}
        assert found == {
            ("staging", "etl", "r2", 2),
            ("staging", "report", "q1", 1),
            ("production", "etl", "r1", 1),
        }
        assert len(store.pointers()) == 3

    def test_pointers_filter_by_stage(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "production", "alice:etl", "r1", at(3), expected=0)
        assert [(p.stage, p.revision) for p in store.pointers("production")] == [
            ("production", "r1")
        ]
        assert store.pointers("integration") == []

    def test_move_to_none_removes_pointer_from_pointers(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "staging", "alice:etl", None, at(3), expected=1, action="rollback")
        assert store.pointers() == []
        assert store.pointers("staging") == []

    def test_removed_pointer_keeps_its_generation(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "staging", "alice:etl", None, at(3), expected=1, action="rollback")
        pointer = store.pointer("staging", "etl")
        assert pointer is not None
        assert (pointer.revision, pointer.generation) == (None, 2)
        # It can be moved again, from the generation it reached.
        with pytest.raises(ConflictError):
            _move(store, "staging", "alice:etl", "r1", at(4), expected=0)
        again = _move(store, "staging", "alice:etl", "r1", at(5), expected=2)
        assert (again.revision, again.generation) == ("r1", 3)

    def test_removal_stays_in_pointer_history(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        _move(store, "staging", "alice:etl", None, at(3), expected=1, action="rollback")
        history = store.pointer_history("staging", "etl")
        assert [(c.revision, c.previous_revision, c.action) for c in history] == [
            ("r1", None, "promote"),
            (None, "r1", "rollback"),
        ]
        assert history[0].valid_until == at(3)

    def test_move_pointer_with_status_updates_component_status(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0, status=S.PROMOTED)
        record = store.component("alice:etl")
        assert record is not None
        assert record.status is S.PROMOTED
        assert store.counts().by_status == {"promoted": 1}

    def test_move_pointer_without_status_keeps_component_status(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0, status=None)
        record = store.component("alice:etl")
        assert record is not None
        assert record.status is S.STAGED

    # ------------------------------------------------------------------ live_at

    def _two_moves(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(10), expected=0)
        _move(store, "staging", "alice:etl", "r2", at(20), expected=1)

    def test_live_at_before_the_first_move_is_empty(self, store: StateStore) -> None:
        self._two_moves(store)
        assert store.live_at("staging", at(5)) == []

    def test_live_at_between_moves_is_the_older_revision(self, store: StateStore) -> None:
        self._two_moves(store)
        (live,) = store.live_at("staging", at(15))
        assert (live.revision, live.at, live.valid_until) == ("r1", at(10), at(20))

    def test_live_at_the_moment_of_a_move_is_the_new_revision(self, store: StateStore) -> None:
        self._two_moves(store)
        assert [c.revision for c in store.live_at("staging", at(10))] == ["r1"]
        assert [c.revision for c in store.live_at("staging", at(20))] == ["r2"]

    def test_live_at_after_the_last_move_is_the_newer_revision(self, store: StateStore) -> None:
        self._two_moves(store)
        (live,) = store.live_at("staging", at(30))
        assert (live.revision, live.generation, live.valid_until) == ("r2", 2, None)

    def test_live_at_after_a_removal_is_empty(self, store: StateStore) -> None:
        self._two_moves(store)
        _move(store, "staging", "alice:etl", None, at(30), expected=2, action="rollback")
        assert store.live_at("staging", at(40)) == []
        assert [c.revision for c in store.live_at("staging", at(25))] == ["r2"]

    def test_a_move_timed_before_the_last_event_takes_its_time(self, store: StateStore) -> None:
        # Writers' clocks need not agree; the chain's order is the truth, so neither the
        # event nor the pointer history may say the move happened before its predecessor.
        self._two_moves(store)
        _move(store, "staging", "alice:etl", "r3", at(15), expected=2)
        *_, last = store.events()
        (change,) = [c for c in store.pointer_history() if c.revision == "r3"]
        assert last.at == change.at == at(20)
        assert [c.revision for c in store.live_at("staging", at(19))] == ["r1"]

    def test_records_timed_before_the_last_event_take_its_time(self, store: StateStore) -> None:
        # What verify_state compares: a revision and an approval written with their event
        # are timed like it, even when the writer's clock is behind the chain.
        _stage(store, "alice:etl", "r1", at(10))
        _stage(store, "alice:etl", "r2", at(5), parent="r1")
        approval = Approval("alice:etl", "r2", "bob", "approve", at(7))
        store.add_approval(
            approval,
            _event("approve", at(7), actor="bob", component="alice:etl", revision="r2"),
        )
        assert [r.created_at for r in store.revisions("alice:etl")] == [at(10), at(10)]
        assert [a.at for a in store.approvals("alice:etl")] == [at(10)]
        assert [e.at for e in store.events()] == [at(10)] * 3
        assert verify_state(store) == []

    def test_live_at_only_answers_for_the_given_stage(self, store: StateStore) -> None:
        self._two_moves(store)
        _move(store, "production", "alice:etl", "r1", at(25), expected=0)
        assert [c.revision for c in store.live_at("production", at(30))] == ["r1"]
        assert [c.revision for c in store.live_at("staging", at(30))] == ["r2"]
        assert store.live_at("integration", at(30)) == []

    def _two_components(self, store: StateStore) -> None:
        # In the chain's order: a store times a move no earlier than the event before it.
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "alice:report", "q1", at(2))
        _move(store, "staging", "alice:etl", "r1", at(10), expected=0)
        _move(store, "staging", "alice:report", "q1", at(12), expected=0)
        _move(store, "staging", "alice:etl", "r2", at(20), expected=1)

    def test_live_at_lists_every_component_live_then(self, store: StateStore) -> None:
        self._two_components(store)
        live = store.live_at("staging", at(15))
        assert sorted((c.component_id, c.revision) for c in live) == [
            ("etl", "r1"),
            ("report", "q1"),
        ]

    def test_live_at_filters_by_component_id(self, store: StateStore) -> None:
        self._two_components(store)
        assert [c.revision for c in store.live_at("staging", at(15), "report")] == ["q1"]
        assert [c.revision for c in store.live_at("staging", at(25), component_id="etl")] == ["r2"]
        assert store.live_at("staging", at(15), "nothing") == []

    # ------------------------------------------------------------------ approvals

    def test_approvals_are_listed_oldest_first(self, store: StateStore) -> None:
        first = Approval("alice:etl", "r1", "carol", "approve", at(1), stage="staging")
        second = Approval("alice:etl", "r1", "dave", "reject", at(2), comment="no tests")
        third = Approval("alice:etl", "r2", "carol", "approve", at(3))
        for approval in (first, second, third):
            store.add_approval(approval, _event(approval.decision, approval.at))
        assert store.approvals("alice:etl") == [first, second, third]

    def test_approvals_filter_by_revision(self, store: StateStore) -> None:
        first = Approval("alice:etl", "r1", "carol", "approve", at(1))
        second = Approval("alice:etl", "r2", "dave", "approve", at(2))
        third = Approval("alice:etl", "r1", "erin", "reject", at(3))
        for approval in (first, second, third):
            store.add_approval(approval, _event(approval.decision, approval.at))
        assert store.approvals("alice:etl", "r1") == [first, third]
        assert store.approvals("alice:etl", revision="r2") == [second]
        assert store.approvals("alice:etl", "r3") == []

    def test_append_events_appends_in_order_and_chains(self, store: StateStore) -> None:
        seqs = store.append_events([_event("validate", at(1)), _event("validate", at(2))])
        assert seqs == [1, 2]
        assert [e.at for e in store.events()] == [at(1), at(2)]
        assert verify_chain(store.chain()).ok
        assert store.append_events([]) == []

    def test_add_approval_moves_the_status_in_the_same_transaction(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        approval = Approval("alice:etl", "r1", "carol", "approve", at(2))
        store.add_approval(
            approval,
            _event("approve", at(2)),
            status=(ComponentStatus.STAGED, ComponentStatus.APPROVED),
        )
        record = store.component("alice:etl")
        assert record is not None and record.status is ComponentStatus.APPROVED
        assert store.approvals("alice:etl") == [approval]

    def test_add_approval_with_a_stale_status_records_nothing(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        events = len(store.events())
        with pytest.raises(ConflictError):
            store.add_approval(
                Approval("alice:etl", "r1", "carol", "reject", at(2)),
                _event("reject", at(2)),
                status=(ComponentStatus.APPROVED, ComponentStatus.REJECTED),
            )
        assert store.approvals("alice:etl") == []
        assert len(store.events()) == events
        record = store.component("alice:etl")
        assert record is not None and record.status is ComponentStatus.STAGED

    def test_approvals_are_per_component(self, store: StateStore) -> None:
        mine = Approval("alice:etl", "r1", "carol", "approve", at(1))
        other = Approval("bob:etl", "r1", "carol", "approve", at(2))
        store.add_approval(mine, _event("approve", at(1)))
        store.add_approval(other, _event("approve", at(2)))
        assert store.approvals("alice:etl") == [mine]
        assert store.approvals("bob:etl") == [other]
        assert store.approvals("carol:etl") == []

    def test_add_approval_appends_its_event(self, store: StateStore) -> None:
        seq = store.add_approval(
            Approval("alice:etl", "r1", "carol", "approve", at(1)),
            _event("approve", at(1), actor="carol", component="alice:etl"),
        )
        (event,) = store.events()
        assert seq == event.seq == 1
        assert (event.action, event.actor) == ("approve", "carol")

    # ------------------------------------------------------------------ intents

    def test_open_intent_is_listed(self, store: StateStore) -> None:
        intent = Intent("i1", "promote", "alice", at(1), {"stage": "staging", "n": 2})
        store.open_intent(intent)
        assert store.open_intents() == [intent]

    def test_open_intents_lists_every_open_one(self, store: StateStore) -> None:
        one = Intent("i1", "promote", "alice", at(1))
        two = Intent("i2", "rollback", "bob", at(2), {"stage": "production"})
        store.open_intent(one)
        store.open_intent(two)
        assert store.open_intents() == [one, two]

    def test_completed_intent_is_no_longer_listed(self, store: StateStore) -> None:
        one = Intent("i1", "promote", "alice", at(1))
        two = Intent("i2", "promote", "bob", at(2))
        store.open_intent(one)
        store.open_intent(two)
        store.close_intent("i1", "completed")
        assert store.open_intents() == [two]

    def test_undone_intent_is_no_longer_listed(self, store: StateStore) -> None:
        store.open_intent(Intent("i1", "promote", "alice", at(1)))
        store.close_intent("i1", "undone")
        assert store.open_intents() == []

    def test_intents_append_no_audit_event(self, store: StateStore) -> None:
        store.open_intent(Intent("i1", "promote", "alice", at(1)))
        store.close_intent("i1", "completed")
        assert store.events() == []
        assert store.counts().events == 0

    # ------------------------------------------------------------------ events

    def _some_events(self, store: StateStore) -> None:
        store.append_event(
            _event("stage", at(1), actor="alice", component="alice:etl", stage="development")
        )
        store.append_event(
            _event("stage", at(2), actor="bob", component="bob:report", stage="development")
        )
        store.append_event(
            _event("approve", at(3), actor="carol", component="alice:etl", stage="staging")
        )
        store.append_event(
            _event("promote", at(4), actor="carol", component="alice:etl", stage="staging")
        )
        store.append_event(_event("unlock", at(5), actor="bob"))

    def test_append_event_returns_increasing_seq(self, store: StateStore) -> None:
        seqs = [store.append_event(_event("unlock", at(n))) for n in range(1, 5)]
        assert seqs == [1, 2, 3, 4]

    def test_events_are_oldest_first_with_seq_set(self, store: StateStore) -> None:
        self._some_events(store)
        events = store.events()
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]
        assert [e.action for e in events] == ["stage", "stage", "approve", "promote", "unlock"]

    def test_events_round_trip_every_field(self, store: StateStore) -> None:
        sent = _event(
            "promote",
            at(1),
            actor="carol",
            component="alice:etl",
            stage="staging",
            revision="r2",
            previous_revision="r1",
            reason="release 7",
            details={"generation": 3, "files": ["a", "b"], "nested": {"k": None}},
            outcome="refused",
        )
        store.append_event(sent)
        (got,) = store.events()
        assert got.seq == 1
        assert got == attrs.evolve(sent, seq=1)

    def test_events_filter_by_component(self, store: StateStore) -> None:
        self._some_events(store)
        assert [e.seq for e in store.events(EventFilter(component="alice:etl"))] == [1, 3, 4]

    def test_events_filter_by_stage(self, store: StateStore) -> None:
        self._some_events(store)
        assert [e.seq for e in store.events(EventFilter(stage="staging"))] == [3, 4]

    def test_events_filter_by_actor(self, store: StateStore) -> None:
        self._some_events(store)
        assert [e.seq for e in store.events(EventFilter(actor="bob"))] == [2, 5]

    def test_events_filter_by_action(self, store: StateStore) -> None:
        self._some_events(store)
        assert [e.seq for e in store.events(EventFilter(action="stage"))] == [1, 2]

    def test_events_filter_since_is_inclusive(self, store: StateStore) -> None:
        self._some_events(store)
        assert [e.seq for e in store.events(EventFilter(since=at(3)))] == [3, 4, 5]

    def test_events_filter_until_is_inclusive(self, store: StateStore) -> None:
        self._some_events(store)
        assert [e.seq for e in store.events(EventFilter(until=at(2)))] == [1, 2]

    def test_events_filters_combine(self, store: StateStore) -> None:
        self._some_events(store)
        where = EventFilter(component="alice:etl", actor="carol", since=at(2), until=at(3))
        assert [e.seq for e in store.events(where)] == [3]
        assert store.events(EventFilter(actor="alice", action="promote")) == []

    def test_events_limit(self, store: StateStore) -> None:
        self._some_events(store)
        assert [e.seq for e in store.events(EventFilter(limit=2))] == [1, 2]
        assert [e.seq for e in store.events(EventFilter(limit=10))] == [1, 2, 3, 4, 5]

    def test_events_newest_first(self, store: StateStore) -> None:
        self._some_events(store)
        assert [e.seq for e in store.events(EventFilter(newest_first=True))] == [5, 4, 3, 2, 1]

    def test_events_newest_first_with_limit_gives_the_latest(self, store: StateStore) -> None:
        self._some_events(store)
        where = EventFilter(limit=2, newest_first=True)
        assert [e.seq for e in store.events(where)] == [5, 4]
        where = EventFilter(component="alice:etl", limit=2, newest_first=True)
        assert [e.seq for e in store.events(where)] == [4, 3]

    # ------------------------------------------------------------------ chain

    def test_chain_of_mixed_writes_verifies(self, store: StateStore) -> None:
        _mixed_writes(store)
        report = verify_chain(store.chain())
        assert report.ok, report.problem
        assert report.events == store.counts().events == 9

    def test_chain_seq_is_contiguous_from_one(self, store: StateStore) -> None:
        _mixed_writes(store)
        assert [c.event.seq for c in store.chain()] == list(range(1, 10))

    def test_chain_links_each_event_to_the_one_before(self, store: StateStore) -> None:
        _mixed_writes(store)
        chain = list(store.chain())
        assert chain[0].prev_hash == GENESIS
        for before, after in itertools.pairwise(chain):
            assert after.prev_hash == before.hash
        assert len({c.hash for c in chain}) == len(chain)

    def test_chain_hash_is_the_event_hash(self, store: StateStore) -> None:
        _mixed_writes(store)
        for item in store.chain():
            assert item.hash == event_hash(item.prev_hash, item.event)

    def test_chain_events_are_the_events(self, store: StateStore) -> None:
        _mixed_writes(store)
        assert [c.event for c in store.chain()] == store.events()

    def test_chain_after_skips_earlier_events(self, store: StateStore) -> None:
        _mixed_writes(store)
        full = list(store.chain())
        assert list(store.chain(after=7)) == full[7:]
        assert list(store.chain(9)) == []

    def test_event_details_survive_in_the_chain(self, store: StateStore) -> None:
        store.append_event(_event("unlock", at(1), details={"pid": 7, "paths": ["x"]}))
        (item,) = store.chain()
        assert item.event.details == {"pid": 7, "paths": ["x"]}
        assert verify_chain(store.chain()).ok

    def test_stored_event_is_not_changed_when_the_caller_reuses_its_details(
        self, store: StateStore
    ) -> None:
        details: dict[str, object] = {"files": 1}
        store.append_event(_event("stage", at(1), details={"files": 1}))
        store.append_event(AuditEvent(at=at(2), actor="alice", action="stage", details=details))
        details["files"] = 999  # the caller's dict, not the store's
        assert [e.details for e in store.events()] == [{"files": 1}, {"files": 1}]
        assert verify_chain(store.chain()).ok

    def test_stored_event_is_not_changed_when_a_reader_edits_what_it_got(
        self, store: StateStore
    ) -> None:
        store.append_event(_event("stage", at(1), details={"files": 1}))
        store.append_event(_event("stage", at(2), details={"files": 1}))
        store.events()[0].details["files"] = 666  # the reader's copy, not the store's
        next(iter(store.chain())).event.details["files"] = 777
        assert [e.details for e in store.events()] == [{"files": 1}, {"files": 1}]
        assert verify_chain(store.chain()).ok

    # ------------------------------------------------------------------ counts

    def test_counts_by_status_type_and_workspace(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "alice:report", "q1", at(2), component_type="notebooks")
        _stage(store, "bob:etl", "b1", at(3))
        store.set_status("alice:etl", S.STAGED, S.APPROVED, _event("approve", at(4)))
        counts = store.counts()
        assert counts.by_status == {"approved": 1, "staged": 2}
        assert counts.by_type == {"scripts": 2, "notebooks": 1}
        assert counts.by_workspace == {"alice": 2, "bob": 1}

    def test_counts_operations_by_action_and_outcome(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "alice:etl", "r2", at(2), parent="r1")
        _move(store, "staging", "alice:etl", "r2", at(3), expected=0)
        store.append_event(_event("promote", at(4), component="alice:etl", outcome="failed"))
        store.append_event(_event("promote", at(5), component="alice:etl", outcome="failed"))
        store.append_event(_event("stage", at(6), component="alice:etl", outcome="refused"))
        assert store.counts().operations == {
            "stage": {"ok": 2, "refused": 1},
            "promote": {"ok": 1, "failed": 2},
        }

    def test_counts_events_is_the_total(self, store: StateStore) -> None:
        _mixed_writes(store)
        counts = store.counts()
        assert counts.events == len(store.events()) == 9
        assert sum(n for by in counts.operations.values() for n in by.values()) == 9

    def test_counts_of_mixed_writes(self, store: StateStore) -> None:
        _mixed_writes(store)
        counts = store.counts()
        assert counts.by_status == {"staged": 2}  # alice:etl restaged after its promotion
        assert counts.by_type == {"scripts": 1, "notebooks": 1}
        assert counts.by_workspace == {"alice": 1, "bob": 1}
        assert counts.operations == {
            "stage": {"ok": 3},
            "approve": {"ok": 2},
            "promote": {"ok": 1, "failed": 1},
            "rollback": {"ok": 1},
            "unlock": {"ok": 1},
        }

    # ------------------------------------------------------------------ records vs the log
    # ``lockgate audit verify`` re-derives approvals, revisions and pointers from the
    # chained events (core/audit.py ``verify_state``): what a store returns must agree
    # with the events it stored in the same transaction.

    def test_records_agree_with_the_audit_log_after_every_kind_of_write(
        self, store: StateStore
    ) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        _stage(store, "alice:etl", "r2", at(2), parent="r1")
        _stage(store, "alice:etl", "r1", at(3), parent="r2")  # A → B → A: one record
        _move(store, "staging", "alice:etl", "r1", at(4), expected=0, status=S.PROMOTED)
        store.add_approval(
            Approval("alice:etl", "r1", "bob", "approve", at(5), comment="fine"),
            _event(
                "approve", at(5), actor="bob", component="alice:etl", revision="r1",
                details={"comment": "fine"},
            ),
        )  # fmt: skip
        store.add_approval(
            Approval("alice:etl", "r2", "carol", "reject", at(6), comment="no"),
            _event(
                "reject", at(6), actor="carol", component="alice:etl", revision="r2",
                reason="no",
            ),
        )  # fmt: skip
        _move(store, "staging", "alice:etl", "r2", at(7), expected=1)
        _move(store, "staging", "alice:etl", "r1", at(8), expected=2, action="rollback")
        _move(store, "production", "alice:etl", None, at(9), expected=0, action="rollback")
        store.append_event(_event("promote", at(10), component="alice:etl", outcome="refused"))
        assert verify_state(store) == []

    def test_an_approval_event_without_its_record_is_reported(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        store.append_event(
            _event("approve", at(2), actor="bob", component="alice:etl", revision="r1")
        )
        [problem] = verify_state(store)
        assert problem.startswith("approvals: the approve of alice:etl r1 by bob")

    def test_a_move_event_without_its_pointer_is_reported(self, store: StateStore) -> None:
        _stage(store, "alice:etl", "r1", at(1))
        store.append_event(
            _event(
                "promote", at(2), component="alice:etl", stage="staging", revision="r1",
                details={"generation": 1},
            )
        )  # fmt: skip
        problems = verify_state(store)
        assert any(p.startswith("pointers: staging/etl is at none") for p in problems)
        assert any(p.startswith("pointer history: staging/etl") for p in problems)

    # -- names: what a store returns is checked like user input

    def test_names_at_the_edge_of_the_rules_round_trip(self, store: StateStore) -> None:
        cid = "A9._-" + "x" * 59  # 64 characters, every allowed kind
        ref = f"w.1_b-2:{cid}"
        revision = "f" * 64
        _stage(store, ref, revision, at(1), component_type="t.y_p-e", stage="qa-1.eu")
        _move(store, "qa-1.eu", ref, revision, at(2), expected=0)
        (record,) = store.components()
        assert (record.workspace, record.component_id, record.component_type) == (
            "w.1_b-2",
            cid,
            "t.y_p-e",
        )
        pointer = store.pointer("qa-1.eu", cid)
        assert pointer is not None and pointer.revision == revision
        assert [r.revision for r in store.revisions(ref)] == [revision]

    @pytest.mark.parametrize(
        "bad", ["x/../../outside", "..", "a\nb", "", ".hidden", "a" * 65, "a\\b"]
    )
    def test_records_refuse_names_no_store_may_return(self, bad: str) -> None:
        """A store builds its records with these classes, so an edited row that holds one
        of these names is a :class:`~lockgate.errors.CorruptStateError` when read, before
        the kernel can join it to a path."""
        with pytest.raises(CorruptStateError, match="edited or damaged"):
            Pointer("staging", bad, "alice:etl", "r1", 1, at(1), "alice")
        with pytest.raises(CorruptStateError):
            Pointer("staging", "etl", "alice:etl", bad or "/", 1, at(1), "alice")
        with pytest.raises(CorruptStateError):
            _component(f"alice:{bad}")
        with pytest.raises(CorruptStateError):
            _revision("alice:etl", "r1", created_at=at(1), stage=bad)
