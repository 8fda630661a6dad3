"""The lineage reads of the state-store conformance suite (the optional ``RevisionLineage``).

A part of :class:`~lockgate.testing.StateStoreConformance` (see
:mod:`lockgate.testing._state_suite`): a store offering ``lineage`` must answer what
:func:`~lockgate.contracts.history.walk_lineage` reads from its other reads (a revision
and its ancestors back to the last one live in the stages asked, who staged each, in
order), for every revision and every set of stages, and ``revisions_starting`` the
revisions whose id starts with a prefix, in id order, at most as many as asked.
"""

from __future__ import annotations

import itertools

import pytest

from lockgate.contracts.history import LineageStep, RevisionLineage, store_lineage, walk_lineage
from lockgate.contracts.state import StateStore
from lockgate.testing._state_builders import _move, _stage, at

__all__ = ["StateStoreLineageConformance"]

REF = "alice:etl"


def _lineage(store: StateStore) -> RevisionLineage:
    found = store_lineage(store)
    if found is None:
        pytest.skip("the store offers no RevisionLineage (optional)")
    return found


def _history(store: StateStore) -> None:
    """r1 by alice, r2 (bob), r3 (carol, staged again by dave), r4 (erin), each the
    parent of the next; bob:etl's b1 beside them; r1 live in staging, r3 once in qa."""
    _stage(store, REF, "r1", at(1))
    _stage(store, REF, "r2", at(2), parent="r1", actor="bob")
    _stage(store, REF, "r3", at(3), parent="r2", actor="carol")
    _stage(store, REF, "r3", at(4), parent="r2", actor="dave")
    _stage(store, "bob:etl", "b1", at(5), actor="bob")
    _stage(store, REF, "r4", at(6), parent="r3", actor="erin")
    _move(store, "staging", REF, "r1", at(7), expected=0)
    _move(store, "qa", REF, "r3", at(8), expected=0)
    _move(store, "qa", REF, None, at(9), expected=1, action="rollback")


class StateStoreLineageConformance:
    """What a store offering ``RevisionLineage`` must show (mixed into the suite)."""

    def test_lineage_walks_back_to_the_last_live_revision(self, store: StateStore) -> None:
        lineage = _lineage(store)
        _history(store)
        steps = lineage.lineage(REF, "r4", ("staging",))
        assert [(s.revision, s.stagers) for s in steps] == [
            ("r4", ("erin",)),
            ("r3", ("carol", "dave")),
            ("r2", ("bob",)),
        ]
        assert [s.record.actor for s in steps if s.record] == ["erin", "carol", "bob"]
        assert [s.revision for s in lineage.lineage(REF, "r4", None)] == ["r4"]  # r3 was live
        assert [s.revision for s in lineage.lineage(REF, "r4", ())] == ["r4", "r3", "r2", "r1"]
        assert lineage.lineage(REF, "r9", ("staging",)) == [LineageStep("r9", None, ())]

    def test_lineage_is_what_the_store_s_other_reads_walk_to(self, store: StateStore) -> None:
        lineage = _lineage(store)
        _history(store)
        revisions = ("r1", "r2", "r3", "r4", "r9", "b1")
        ladders = (None, (), ("staging",), ("qa",), ("staging", "production"), ("qa", "nowhere"))
        for revision, stages in itertools.product(revisions, ladders):
            expected = walk_lineage(store, REF, revision, stages)
            assert lineage.lineage(REF, revision, stages) == expected, (revision, stages)

    def test_revisions_starting_find_a_revision_by_a_prefix(self, store: StateStore) -> None:
        lineage = _lineage(store)
        _history(store)
        every = store.revisions(REF)
        assert [r.revision for r in lineage.revisions_starting(REF, "r", 10)] == [
            "r1",
            "r2",
            "r3",
            "r4",
        ]
        assert [r.revision for r in lineage.revisions_starting(REF, "r", 2)] == ["r1", "r2"]
        (r3,) = lineage.revisions_starting(REF, "r3", 2)
        assert r3 == next(r for r in every if r.revision == "r3")
        assert lineage.revisions_starting(REF, "r5", 2) == []
        assert lineage.revisions_starting(REF, "b", 2) == []  # bob:etl's, not this one's
        assert lineage.revisions_starting(REF, "r", 0) == []
