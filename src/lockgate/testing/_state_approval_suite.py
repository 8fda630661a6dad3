"""The approval and intent tests of the state-store conformance suite.

A part of :class:`~lockgate.testing.StateStoreConformance` (see
:mod:`lockgate.testing._state_suite`): approvals (bound to a revision, listed oldest
first, written with their status change in one transaction), the intents an
interrupted operation is settled from, the validators' verdicts of the optional
``ValidationResults`` capability and the bearer tokens of the optional ``AccessTokens``
capability (each skipped for a store that does not offer it).
"""

from __future__ import annotations

import attrs
import pytest

from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.state import (
    AccessTokens,
    Approval,
    Intent,
    StateStore,
    TokenRecord,
    ValidationResults,
    store_intent_log,
    store_results,
    store_tokens,
)
from lockgate.errors import ConflictError
from lockgate.testing._state_builders import _event, _stage, at

__all__ = ["StateStoreApprovalConformance"]


class StateStoreApprovalConformance:
    """The approval and intent behaviours every state store must show (mixed into the suite)."""

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

    def test_intent_log_keeps_closed_intents_with_their_state(self, store: StateStore) -> None:
        log = store_intent_log(store)
        if log is None:
            pytest.skip("the store offers no IntentLog (optional: closed intents not kept)")
        done = Intent("i1", "promote", "alice", at(1), {"stage": "staging"})
        undone = Intent("i2", "rollback", "bob", at(2))
        still = Intent("i3", "promote", "carol", at(3))
        for intent in (still, undone, done):  # listed by time, whatever the write order
            store.open_intent(intent)
        store.close_intent("i1", "completed")
        store.close_intent("i2", "undone")
        assert log.intents() == [
            attrs.evolve(done, state="completed"),
            attrs.evolve(undone, state="undone"),
            still,
        ]
        assert store.open_intents() == [still]

    def test_intents_append_no_audit_event(self, store: StateStore) -> None:
        store.open_intent(Intent("i1", "promote", "alice", at(1)))
        store.close_intent("i1", "completed")
        assert store.events() == []
        assert store.counts().events == 0

    # ------------------------------------------------------------------ verdicts

    def verdicts(self, store: StateStore) -> ValidationResults:
        results = store_results(store)
        if results is None:
            pytest.skip("the store offers no ValidationResults (optional)")
        return results

    def test_verdicts_are_kept_per_revision_and_replaced_by_key(self, store: StateStore) -> None:
        results = self.verdicts(store)
        assert dict(results.validation_results("r1")) == {}
        results.record_validation_results("r1", {"k1": "[]", "k2": '[{"code": "x"}]'})
        results.record_validation_results("r2", {"k1": '["other"]'})
        results.record_validation_results("r1", {"k2": "[]", "k3": "[1]"})
        assert dict(results.validation_results("r1")) == {"k1": "[]", "k2": "[]", "k3": "[1]"}
        assert dict(results.validation_results("r2")) == {"k1": '["other"]'}
        assert dict(results.validation_results("r3")) == {}

    def test_verdicts_keep_any_text(self, store: StateStore) -> None:
        results = self.verdicts(store)
        value = '[{"message": "naïve \\u00e9 \'quoted\' ; DROP TABLE x; --"}]' + "é" * 5000
        results.record_validation_results("r1", {"k": value})
        assert dict(results.validation_results("r1")) == {"k": value}

    # ------------------------------------------------------------------ tokens

    def access_tokens(self, store: StateStore) -> AccessTokens:
        tokens = store_tokens(store)
        if tokens is None:
            pytest.skip("the store offers no AccessTokens (optional)")
        return tokens

    def test_tokens_are_found_by_digest_listed_and_revoked_once(self, store: StateStore) -> None:
        tokens = self.access_tokens(store)
        first = TokenRecord("a1", "d" * 64, "carol", "approver", "production", at(1), "root")
        second = TokenRecord("b2", "e" * 64, "ci", "releaser", None, at(2), "root", at(9))
        tokens.add_token(first, _event("token.create", at(1)))
        tokens.add_token(second, _event("token.create", at(2)))
        assert tokens.token_by_digest("e" * 64) == second
        assert tokens.token_by_digest("f" * 64) is None
        assert tokens.tokens() == [first, second]
        with pytest.raises(ConflictError):
            tokens.add_token(first, _event("token.create", at(3)))

        revoked = tokens.revoke_token("a1", at(4), _event("token.revoke", at(4)))
        assert revoked is not None and revoked.revoked_at == at(4)
        again = tokens.revoke_token("a1", at(5), _event("token.revoke", at(5)))
        assert again is not None and again.revoked_at == at(4)  # the first time stays
        assert tokens.revoke_token("zz", at(6), _event("token.revoke", at(6))) is None
        assert tokens.token_by_digest("d" * 64) == revoked
        # Each change carried its event; the refused ones none.
        assert [e.action for e in store.events()] == ["token.create"] * 2 + ["token.revoke"]
