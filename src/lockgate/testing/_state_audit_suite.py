"""The audit tests of the state-store conformance suite: the log, its chain, the counts.

A part of :class:`~lockgate.testing.StateStoreConformance` (see
:mod:`lockgate.testing._state_suite`): appended events and their filters, the hash
chain, the statistics (``counts``), and the records a store keeps agreeing with the
events it stored in the same transaction (what ``lockgate audit verify`` re-derives).
"""

from __future__ import annotations

import itertools

import attrs

from lockgate.contracts.audit import GENESIS, event_hash, verify_chain, verify_state
from lockgate.contracts.state import Approval, AuditEvent, EventFilter, StateStore
from lockgate.testing._state_builders import S, _event, _mixed_writes, _move, _stage, at

__all__ = ["StateStoreAuditConformance"]


class StateStoreAuditConformance:
    """The audit-log behaviours every state store must show (mixed into the suite)."""

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

    def test_append_events_appends_in_order_and_chains(self, store: StateStore) -> None:
        seqs = store.append_events([_event("validate", at(1)), _event("validate", at(2))])
        assert seqs == [1, 2]
        assert [e.at for e in store.events()] == [at(1), at(2)]
        assert verify_chain(store.chain()).ok
        assert store.counts().operations == {"validate": {"ok": 2}}
        assert store.append_events([]) == []

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
