"""The batched reads of the state-store conformance suite (the optional ``ReadBatch``).

A part of :class:`~lockgate.testing.StateStoreConformance` (see
:mod:`lockgate.testing._state_suite`): a store offering ``read_batch`` must answer every
ask exactly as the read it names answers alone (``answer_each``), in the order asked,
whatever the mix: each read of ``BATCHABLE`` with each shape of its arguments, things
that do not exist, the same ask twice, and none at all.
"""

from __future__ import annotations

import pytest

from lockgate.contracts.history import store_lineage, store_live_revisions
from lockgate.contracts.peers import store_components_by_id
from lockgate.contracts.read_batch import BATCHABLE, Ask, ReadBatch, answer_each, store_read_batch
from lockgate.contracts.state import Approval, EventFilter, Intent, StateStore, store_results
from lockgate.testing._state_builders import _event, _move, _stage, at

__all__ = ["StateStoreBatchConformance"]


def _batch(store: StateStore) -> ReadBatch:
    batch = store_read_batch(store)
    if batch is None:
        pytest.skip("the store offers no ReadBatch (optional)")
    return batch


def _history(store: StateStore) -> None:
    """Two workspaces, revisions with parents, moves forth and back and out of a stage,
    approvals and a rejection, intents open and closed, verdicts when the store keeps
    them."""
    _stage(store, "alice:etl", "r1", at(1))
    _stage(store, "alice:etl", "r2", at(2), parent="r1", actor="bob")
    _stage(store, "bob:etl", "b1", at(3))
    _stage(store, "alice:web", "w1", at(4), component_type="notebooks", stage="integration")
    _move(store, "staging", "alice:etl", "r1", at(5), expected=0)
    _move(store, "staging", "alice:etl", "r2", at(6), expected=1)
    _move(store, "production", "alice:etl", "r1", at(7), expected=0)
    _move(store, "staging", "alice:web", "w1", at(8), expected=0)
    _move(store, "staging", "alice:web", None, at(9), expected=1, action="rollback")
    for approval in (
        Approval("alice:etl", "r1", "carol", "approve", at(10), stage="staging"),
        Approval("alice:etl", "r2", "dave", "approve", at(11)),
        Approval("alice:etl", "r1", "erin", "reject", at(12), comment="no tests"),
    ):
        store.add_approval(
            approval,
            _event(approval.decision, approval.at, component="alice:etl", revision="r1"),
        )
    store.open_intent(Intent("i2", "promote", "bob", at(14), {"stage": "staging", "n": 2}))
    store.open_intent(Intent("i1", "rollback", "alice", at(13)))
    store.open_intent(Intent("i0", "promote", "alice", at(12)))
    store.close_intent("i0", "completed")
    results = store_results(store)
    if results is not None:
        results.record_validation_results("r1", {"k1": '{"v": 1}', "k2": "[]"})


def _every_ask(store: StateStore) -> list[Ask]:
    """Every read a batch may name, with each shape of its arguments, found or not."""
    asks = [
        Ask("open_intents"),
        Ask("component", ("alice:etl",)),
        Ask("component", ("alice:nothing",)),
        Ask("components"),
        Ask("components", ("alice",)),
        Ask("components", ("carol",)),
        Ask("revisions", ("alice:etl",)),
        Ask("revisions", ("alice:nothing",)),
        Ask("pointer", ("staging", "etl")),
        Ask("pointer", ("staging", "web")),
        Ask("pointer", ("integration", "etl")),
        Ask("pointers"),
        Ask("pointers", ("staging",)),
        Ask("pointers", ("integration",)),
        Ask("pointer_history"),
        Ask("pointer_history", ("staging",)),
        Ask("pointer_history", ("staging", "web")),
        Ask("pointer_history", (None, "etl")),
        Ask("live_at", ("staging", at(5, 30))),
        Ask("live_at", ("staging", at(9, 30), "web")),
        Ask("approvals", ("alice:etl",)),
        Ask("approvals", ("alice:etl", "r1")),
        Ask("approvals", ("alice:etl", "r9")),
        Ask("events"),
        Ask("events", (EventFilter(component="alice:etl", action="stage"),)),
        Ask("events", (EventFilter(component="alice:etl", action="approve"),)),
        Ask("events", (EventFilter(stage="staging", newest_first=True, limit=2),)),
        Ask("events", (EventFilter(since=at(3), until=at(6)),)),
    ]
    if store_live_revisions(store) is not None:
        asks += [
            Ask("live_revisions", ("alice:etl", None)),
            Ask("live_revisions", ("alice:etl", ("staging",))),
            Ask("live_revisions", ("alice:nothing", ("staging", "production"))),
        ]
    if store_results(store) is not None:
        asks += [Ask("validation_results", ("r1",)), Ask("validation_results", ("r9",))]
    if store_lineage(store) is not None:
        asks += [
            Ask("lineage", ("alice:etl", "r2", ("staging", "production"))),
            Ask("lineage", ("alice:etl", "r2", None)),
            Ask("lineage", ("alice:etl", "r9", ("staging",))),
            Ask("revisions_starting", ("alice:etl", "r", 5)),
            Ask("revisions_starting", ("alice:etl", "r2", 1)),
            Ask("revisions_starting", ("alice:etl", "x", 2)),
        ]
    if store_components_by_id(store) is not None:
        asks += [
            Ask("components_by_id", (("etl",),)),
            Ask("components_by_id", (("etl", "web", "nothing"),)),
            Ask("components_by_id", (("nothing",),)),
        ]
    return asks


class StateStoreBatchConformance:
    """What a store offering ``ReadBatch`` must show (mixed into the suite)."""

    def test_a_batch_answers_each_read_as_it_answers_alone(self, store: StateStore) -> None:
        batch = _batch(store)
        _history(store)
        asks = _every_ask(store)
        optional = {"components_by_id", "lineage", "live_revisions", "revisions_starting"}
        optional.add("validation_results")
        assert {a.name for a in asks} >= BATCHABLE - optional
        answers = batch.read_batch(asks)
        expected = answer_each(store, asks)
        for ask, answer, alone in zip(asks, answers, expected, strict=True):
            assert answer == alone, ask
            assert type(answer) is type(alone), ask
        assert {i.id for i in answers[0]} == {"i1", "i2"}

    def test_a_batch_keeps_the_order_asked_and_repeats(self, store: StateStore) -> None:
        batch = _batch(store)
        _history(store)
        asks = [Ask("pointer", ("production", "etl")), Ask("revisions", ("alice:etl",))]
        asks = [*asks, *reversed(asks), asks[0]]
        assert batch.read_batch(asks) == answer_each(store, asks)

    def test_an_empty_batch_and_an_empty_store(self, store: StateStore) -> None:
        batch = _batch(store)
        assert batch.read_batch([]) == []
        asks = _every_ask(store)
        assert batch.read_batch(asks) == answer_each(store, asks)

    def test_a_batch_sees_what_was_written_before_it(self, store: StateStore) -> None:
        batch = _batch(store)
        _history(store)
        asks = [Ask("pointer", ("staging", "etl")), Ask("open_intents")]
        before = batch.read_batch(asks)
        _move(store, "staging", "alice:etl", "r1", at(20), expected=2, action="rollback")
        store.close_intent("i1", "undone")
        after = batch.read_batch(asks)
        assert (before[0].generation, after[0].generation) == (2, 3)
        assert [i.id for i in after[1]] == ["i2"]
