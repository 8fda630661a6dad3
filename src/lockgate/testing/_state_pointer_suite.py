"""The pointer tests of the state-store conformance suite: stage pointers and their history.

A part of :class:`~lockgate.testing.StateStoreConformance` (see
:mod:`lockgate.testing._state_suite`): compare-and-swap of a stage pointer (a stale
generation is a ``ConflictError`` that changes nothing), the pointer history with its
``valid_until``, ``live_at`` (what was live in a stage at a time), and the optional
capability around a move (``MoveWithEvents``) and
``LiveRevisions`` (every revision ever live, the history's own answer).
"""

from __future__ import annotations

import pytest

from lockgate.contracts.audit import verify_state
from lockgate.contracts.history import store_live_revisions
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.moves import store_move_with_events
from lockgate.contracts.state import (
    Approval,
    EventFilter,
    Pointer,
    PointerChange,
    StateStore,
)
from lockgate.errors import ConflictError
from lockgate.testing._state_builders import S, _event, _move, _stage, at

__all__ = ["StateStorePointerConformance"]


class StateStorePointerConformance:
    """The pointer behaviours every state store must show (mixed into the suite)."""

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
        # the one message every store gives (lockgate.plugin.generation_conflict)
        with pytest.raises(ConflictError, match=r"^staging/etl moved meanwhile \(generation 2, "):
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

    def test_a_move_with_events_records_them_first_in_its_chain(self, store: StateStore) -> None:
        if store_move_with_events(store) is None:
            pytest.skip("the store offers no MoveWithEvents (optional)")
        _stage(store, "alice:etl", "r1", at(1))
        gate = _event("validate", at(2), component="alice:etl", stage="staging", revision="r1")
        pointer = _move(store, "staging", "alice:etl", "r1", at(2), expected=0, before=[gate])
        assert (pointer.revision, pointer.generation) == ("r1", 1)
        events = store.events()
        assert [(e.seq, e.action) for e in events] == [
            (1, "stage"),
            (2, "validate"),
            (3, "promote"),
        ]
        assert events[1].details == gate.details and events[1].revision == "r1"
        assert store.pointer_history()[-1].event_seq == 3
        assert store.counts().events == 3
        assert store.counts().operations["validate"] == {"ok": 1}
        chain = list(store.chain())
        assert [c.event.seq for c in chain] == [1, 2, 3]
        assert [c.prev_hash for c in chain[1:]] == [c.hash for c in chain[:-1]]

    def test_a_conflicting_move_with_events_records_none(self, store: StateStore) -> None:
        if store_move_with_events(store) is None:
            pytest.skip("the store offers no MoveWithEvents (optional)")
        _stage(store, "alice:etl", "r1", at(1))
        _move(store, "staging", "alice:etl", "r1", at(2), expected=0)
        events, history = store.events(), store.pointer_history()
        gate = _event("validate", at(3), component="alice:etl", stage="staging", revision="r2")
        with pytest.raises(ConflictError):
            _move(store, "staging", "alice:etl", "r2", at(3), expected=0, before=[gate])
        assert store.events() == events
        assert store.pointer_history() == history
        assert store.counts().events == 2

    def test_a_move_sets_its_status_from_one_it_may_be_set_from(self, store: StateStore) -> None:
        if store_move_with_events(store) is None:
            pytest.skip("the store offers no MoveWithEvents (optional)")
        _stage(store, "alice:etl", "r1", at(1))
        sources = {S.STAGED, S.APPROVED}
        _move(
            store,
            "staging",
            "alice:etl",
            "r1",
            at(2),
            expected=0,
            status=S.PROMOTED,
            status_from=sources,
        )
        record = store.component("alice:etl")
        assert record is not None and record.status is S.PROMOTED
        assert record.updated_at == at(2)

    @pytest.mark.parametrize("sources", [{S.STAGED, S.APPROVED}, set()])
    def test_a_move_leaves_a_status_it_may_not_be_set_from(
        self, store: StateStore, sources: set[ComponentStatus]
    ) -> None:
        """The status was decided from ``staged``; a rejection landed before the move:
        the move is recorded, the rejection's status stays (and no source: none moves)."""
        if store_move_with_events(store) is None:
            pytest.skip("the store offers no MoveWithEvents (optional)")
        _stage(store, "alice:etl", "r1", at(1))
        store.set_status("alice:etl", S.STAGED, S.REJECTED, _event("reject", at(2)))
        pointer = _move(
            store,
            "staging",
            "alice:etl",
            "r1",
            at(3),
            expected=0,
            status=S.PROMOTED,
            status_from=sources,
        )
        assert (pointer.revision, pointer.generation) == ("r1", 1)
        record = store.component("alice:etl")
        assert record is not None and record.status is S.REJECTED
        assert [e.action for e in store.events()] == ["stage", "reject", "promote"]
        assert store.pointer_history()[-1].revision == "r1"

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

    # ------------------------------------------------------------------ live_revisions

    def test_live_revisions_are_the_history_s_revisions(self, store: StateStore) -> None:
        reads = store_live_revisions(store)
        if reads is None:
            pytest.skip("the store offers no LiveRevisions (optional)")
        self._two_components(store)
        _move(store, "staging", "alice:etl", "r1", at(21), expected=2, action="rollback")
        _move(store, "staging", "alice:etl", None, at(22), expected=3, action="rollback")
        _move(store, "production", "alice:etl", "r3", at(23), expected=0)
        _move(store, "production", "bob:etl", "b1", at(24), expected=1)  # the same id
        history = store.pointer_history()
        for ref in ("alice:etl", "bob:etl", "alice:report", "alice:nothing"):
            for stages in (None, ("staging",), ("production", "staging"), ("integration",), ()):
                expected = {
                    c.revision
                    for c in history
                    if c.component == ref and c.revision and (stages is None or c.stage in stages)
                }
                assert reads.live_revisions(ref, stages) == expected, (ref, stages)
        assert reads.live_revisions("alice:etl", None) == {"r1", "r2", "r3"}
        assert reads.live_revisions("alice:etl", ("staging",)) == {"r1", "r2"}
        assert reads.live_revisions("bob:etl", None) == {"b1"}
