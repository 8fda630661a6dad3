"""The record tests of the state-store conformance suite: components and revisions.

A part of :class:`~lockgate.testing.StateStoreConformance` (see
:mod:`lockgate.testing._state_suite`): what an empty store answers, ``record_revision``,
``components`` (and the optional ``ComponentsById``), ``set_status`` (compare-and-swap
of a component's status), and names read back checked like user input.
"""

from __future__ import annotations

import pytest

from lockgate.contracts.peers import store_components_by_id
from lockgate.contracts.state import Pointer, StateStore
from lockgate.errors import ConflictError, CorruptStateError
from lockgate.testing._state_builders import S, _component, _event, _move, _revision, _stage, at

__all__ = ["StateStoreRecordConformance"]


class StateStoreRecordConformance:
    """The component and revision behaviours every state store must show (mixed into the suite)."""

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

    def test_components_by_id_are_every_workspace_s_of_those_ids(self, store: StateStore) -> None:
        index = store_components_by_id(store)
        if index is None:
            pytest.skip("the store offers no ComponentsById (optional)")
        for ref in ("carol:etl", "alice:etl", "bob:report", "alice:zeta", "bob:etl"):
            _stage(store, ref, "r1", at(1))
        found = index.components_by_id(("etl",))
        assert [c.component for c in found] == ["alice:etl", "bob:etl", "carol:etl"]
        assert found == [c for c in store.components() if c.component_id == "etl"]
        both = index.components_by_id(("zeta", "etl", "nothing"))
        assert [c.component for c in both] == ["alice:etl", "alice:zeta", "bob:etl", "carol:etl"]
        assert index.components_by_id(("nothing",)) == []
        assert index.components_by_id(()) == []

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
        # the one message every store gives (lockgate.plugin.status_conflict)
        with pytest.raises(ConflictError, match=r"^alice:etl is staged, not approved as expected"):
            store.set_status("alice:etl", S.APPROVED, S.PROMOTED, _event("promote", at(2)))
        assert store.component("alice:etl") == before
        assert [e.seq for e in store.events()] == [1]
        assert store.counts().operations == {"stage": {"ok": 1}}

    def test_set_status_on_unknown_component_raises_conflict(self, store: StateStore) -> None:
        with pytest.raises(ConflictError):
            store.set_status("alice:etl", S.STAGED, S.APPROVED, _event("approve", at(1)))
        assert store.events() == []
        assert store.components() == []

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
