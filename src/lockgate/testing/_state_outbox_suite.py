"""The outbox tests of the state-store conformance suite: the optional
``EventDeliveries`` capability (skipped for a store that does not offer it).

A part of :class:`~lockgate.testing.StateStoreConformance` (see
:mod:`lockgate.testing._state_suite`): per notifier, a cursor that only moves forward and
one delivery row per event, replaced by notifier and seq, read back by seq, narrowed by
notifier, state and seq, and delivered rows forgotten by age.
"""

from __future__ import annotations

import attrs
import pytest

from lockgate.contracts.events import Delivery, EventDeliveries, store_deliveries
from lockgate.contracts.state import StateStore
from lockgate.testing._state_builders import _event, at

__all__ = ["StateStoreOutboxConformance"]


def _row(seq: int, state: str = "pending", **fields: object) -> Delivery:
    values: dict[str, object] = {
        "notifier": "hook",
        "seq": seq,
        "component": "alice:etl",
        "state": state,
        "attempts": 0,
        "next_at": at(1),
        "updated_at": at(1),
    }
    values.update(fields)
    return Delivery(**values)  # type: ignore[arg-type]


class StateStoreOutboxConformance:
    """The delivery-state behaviours of a store that offers ``EventDeliveries``."""

    def outbox(self, store: StateStore) -> EventDeliveries:
        deliveries = store_deliveries(store)
        if deliveries is None:
            pytest.skip("the store offers no EventDeliveries (optional)")
        return deliveries

    def test_outbox_starts_empty_with_no_cursor(self, store: StateStore) -> None:
        outbox = self.outbox(store)
        assert outbox.delivery_cursor("hook") is None
        assert outbox.deliveries() == []

    def test_outbox_cursor_moves_forward_only(self, store: StateStore) -> None:
        outbox = self.outbox(store)
        outbox.record_deliveries("hook", [], cursor=5)
        assert outbox.delivery_cursor("hook") == 5
        outbox.record_deliveries("hook", [], cursor=3)
        assert outbox.delivery_cursor("hook") == 5
        outbox.record_deliveries("hook", [_row(6)])
        assert outbox.delivery_cursor("hook") == 5
        outbox.record_deliveries("hook", [], cursor=0)
        assert outbox.delivery_cursor("other") is None

    def test_outbox_rows_are_replaced_by_notifier_and_seq(self, store: StateStore) -> None:
        outbox = self.outbox(store)
        outbox.record_deliveries("hook", [_row(2), _row(1, component=None)], cursor=2)
        failed = _row(2, attempts=3, next_at=at(9), last_error="HTTP 503", updated_at=at(4))
        outbox.record_deliveries("hook", [failed])
        assert outbox.deliveries() == [_row(1, component=None), failed]

    def test_outbox_rows_keep_every_field(self, store: StateStore) -> None:
        outbox = self.outbox(store)
        dead = _row(
            7, "dead", attempts=12, next_at=at(30), last_error="é ' ; --", updated_at=at(31)
        )
        outbox.record_deliveries("log", [dead])
        assert outbox.deliveries("log") == [attrs.evolve(dead, notifier="log")]

    def test_outbox_rows_are_written_under_the_notifier_given(self, store: StateStore) -> None:
        outbox = self.outbox(store)
        outbox.record_deliveries("log", [_row(1)])  # the row says "hook"
        assert [d.notifier for d in outbox.deliveries()] == ["log"]

    def test_outbox_deliveries_are_narrowed(self, store: StateStore) -> None:
        outbox = self.outbox(store)
        outbox.record_deliveries("hook", [_row(1, "delivered"), _row(2), _row(3, "dead")])
        outbox.record_deliveries("log", [_row(2, "delivered"), _row(4)])
        assert [(d.notifier, d.seq) for d in outbox.deliveries()] == [
            ("hook", 1), ("hook", 2), ("log", 2), ("hook", 3), ("log", 4)
        ]  # fmt: skip
        assert [d.seq for d in outbox.deliveries("hook")] == [1, 2, 3]
        assert [d.seq for d in outbox.deliveries(state="pending")] == [2, 4]
        assert [d.seq for d in outbox.deliveries("hook", "dead")] == [3]
        assert [d.seq for d in outbox.deliveries("hook", after=1)] == [2, 3]
        assert [d.seq for d in outbox.deliveries(limit=2)] == [1, 2]

    def test_outbox_forgets_only_old_delivered_rows(self, store: StateStore) -> None:
        outbox = self.outbox(store)
        outbox.record_deliveries(
            "hook",
            [
                _row(1, "delivered", updated_at=at(1)),
                _row(2, "delivered", updated_at=at(5)),
                _row(3, "dead", updated_at=at(1)),
                _row(4, "pending", updated_at=at(1)),
            ],
        )
        assert outbox.forget_deliveries(at(3)) == 1
        assert [d.seq for d in outbox.deliveries()] == [2, 3, 4]

    def test_outbox_rows_are_not_audit_events(self, store: StateStore) -> None:
        outbox = self.outbox(store)
        seq = store.append_event(_event("promote", at(1), component="alice:etl"))
        outbox.record_deliveries("hook", [_row(seq, "delivered")], cursor=seq)
        assert [e.seq for e in store.events()] == [seq]
        assert store.counts().events == 1
