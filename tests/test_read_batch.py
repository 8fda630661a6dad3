"""Reads in one call (``ReadBatch``, lockgate.contracts.read_batch): with a state store
that offers it, a promotion reads what planning foresees in one call and what its checks
read again under its locks in one; its record reads nothing again (the store checks the
status it is decided from, ``MoveWithEvents``), and no read is alone;
the answers are what the reads themselves answer, and what landed while the gates ran
still refuses the switch (a rejection, another runner's move)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from lockgate.contracts.clock import now_iso
from lockgate.contracts.models import ComponentStatus
from lockgate.contracts.read_batch import BATCHABLE, Ask, answer_each, store_read_batch
from lockgate.contracts.state import Approval, AuditEvent
from lockgate.errors import ConflictError, RefusedError
from lockgate.operations.approve import decide
from lockgate.operations.promote import Promoter
from lockgate.operations.read_memo import ask_together, memo, read_together
from lockgate.operations.stage import Stager
from lockgate.plugin import hookimpl
from lockgate.testing import open_project


class Counted:
    """``ReadBatch`` composed of the store's own reads (``answer_each``), keeping each
    batch asked and each read the store answers on its own."""

    def __init__(self, store: Any) -> None:
        self.store, self.batches, self.alone, self._inside = store, [], [], False
        self.batches: list[list[Ask]]
        self.alone: list[tuple[str, tuple[Any, ...]]]
        for name in BATCHABLE:
            if callable(getattr(store, name, None)):
                setattr(store, name, self._counting(name, getattr(store, name)))
        store.read_batch = self.read_batch
        assert store_read_batch(store) is not None

    def _counting(self, name: str, read: Any) -> Any:
        def counted(*args: Any) -> Any:
            if not self._inside:
                self.alone.append((name, args))
            return read(*args)

        return counted

    def read_batch(self, asks: Sequence[Ask]) -> list[Any]:
        self.batches.append(list(asks))
        self._inside = True
        try:
            return answer_each(self.store, asks)
        finally:
            self._inside = False

    def under_locks(self) -> list[list[Ask]]:
        """The batches a switch's checks asked under its locks."""
        return [b for b in self.batches if _locked(b)]

    def reset(self) -> None:
        self.batches, self.alone = [], []


def _locked(asks: Sequence[Ask]) -> bool:
    """Whether ``asks`` are those of a switch's checks under its locks."""
    return {a.name for a in asks} == {"open_intents", "pointer", "component", "approvals"}


def offering(project: Any) -> Counted:
    """Give ``project``'s state store ``ReadBatch`` (its own reads, counted)."""
    return Counted(project.state())


class Meanwhile:
    """A validator that, the first time it runs, does ``act`` in another project opened
    on the same directory (what another runner does while this switch's gate runs)."""

    def __init__(self) -> None:
        self.kit: Any = None
        self.act: Any = None

    @hookimpl
    def on_validate(self, subject: Any) -> list[Any]:
        if self.kit is not None and self.act is not None:
            act, self.act = self.act, None
            other = open_project(self.kit.root, installed=False, extra=self.kit.distributions)
            try:
                act(other)
            finally:
                other.close()
        return []


def _kit(lockgate_kit: Any) -> tuple[Any, Meanwhile, list[str]]:
    meanwhile = Meanwhile()
    kit = lockgate_kit(extra=[("meanwhile", meanwhile)])
    revisions = []
    for version in ("A", "B"):
        kit.component("team:etl", {"main.py": f"VERSION = {version!r}\n"})
        revisions.append(kit.stage("team:etl").revision)
    meanwhile.kit = kit
    return kit, meanwhile, revisions


def test_a_promotion_reads_in_two_calls_and_nothing_alone(lockgate_kit: Any) -> None:
    kit, _, (first, second) = _kit(lockgate_kit)
    project = kit.open()
    counted = offering(project)
    promoter = Promoter(project)
    assert promoter.promote("team:etl", to="staging", rev=first).changed
    counted.reset()
    assert promoter.promote("team:etl", to="staging", rev=second).changed
    # Planning (``--rev`` names the revision: all it reads at once); the checks under the
    # locks, whose answers the record is made from. A read missing from what planning
    # foresees (``gate_asks``, ``Promotion._first_asks``) shows up alone here.
    assert counted.alone == []
    assert [sorted({a.name for a in b}) for b in counted.batches] == [
        [
            *("approvals", "component", "components_by_id", "events", "lineage"),
            *("open_intents", "pointer", "revisions_starting", "validation_results"),
        ],
        ["approvals", "component", "open_intents", "pointer"],
    ]
    assert promoter.session.memo is None
    pointer = project.state().pointer("staging", "etl")
    assert pointer is not None and (pointer.revision, pointer.generation) == (second, 2)


def test_a_rejection_that_landed_while_the_gate_ran_refuses(lockgate_kit: Any) -> None:
    kit, meanwhile, (first, second) = _kit(lockgate_kit)
    kit.promote("team:etl", to="staging", rev=second)
    # ``first`` is not the latest revision: its rejection is in its approvals only.
    meanwhile.act = lambda other: decide(other, "team:etl", "reject", revision=first, reason="x")
    project = kit.open()
    counted = offering(project)
    with pytest.raises(RefusedError, match="was rejected by"):
        Promoter(project).promote("team:etl", to="staging", rev=first)
    assert len(counted.under_locks()) == 1
    pointer = project.state().pointer("staging", "etl")
    assert pointer is not None and pointer.revision == second


def test_a_move_that_landed_while_the_gate_ran_conflicts(lockgate_kit: Any) -> None:
    kit, meanwhile, (first, second) = _kit(lockgate_kit)
    kit.promote("team:etl", to="staging", rev=first)
    meanwhile.act = lambda other: Promoter(other).promote("team:etl", to="staging", rev=second)
    project = kit.open()
    counted = offering(project)
    with pytest.raises(ConflictError, match="another change won"):
        Promoter(project).promote("team:etl", to="staging", rev=second)
    assert len(counted.under_locks()) == 1
    moves = [c.revision for c in project.state().pointer_history("staging", "etl")]
    assert moves == [first, second]


def test_the_checks_are_answered_from_the_one_call(lockgate_kit: Any) -> None:
    """A rejection only the batch under the locks holds refuses: the checks read the
    batch's answers, not the store."""
    kit, _, (first, second) = _kit(lockgate_kit)
    kit.promote("team:etl", to="staging", rev=second)
    project = kit.open()
    counted = offering(project)
    real = counted.read_batch

    def with_a_rejection(asks: Sequence[Ask]) -> list[Any]:
        answers = real(asks)
        if _locked(asks):
            rejected = Approval("team:etl", first, "mallory", "reject", "2026-12-05T00:00:00Z")
            return [
                [rejected] if a.name == "approvals" else x
                for a, x in zip(asks, answers, strict=True)
            ]
        return answers

    project.state().read_batch = with_a_rejection
    with pytest.raises(RefusedError, match="was rejected by mallory"):
        Promoter(project).promote("team:etl", to="staging", rev=first)
    assert project.state().approvals("team:etl", first) == []


def test_read_together_answers_from_one_call_until_another_call(lockgate_kit: Any) -> None:
    kit, _, (first, _second) = _kit(lockgate_kit)
    project = kit.open()
    counted = offering(project)
    promoter = Promoter(project)
    session = promoter.session
    asks = [Ask("revisions", ("team:etl",)), Ask("pointer", ("staging", "etl"))]
    with read_together(session, asks):
        revisions = session.state().revisions("team:etl")
        revisions.clear()  # a caller's list is its own
        assert [r.revision for r in session.state().revisions("team:etl")] == [first, _second]
        assert session.state().pointer("staging", "etl") is None
        assert counted.alone == [] and len(counted.batches) == 1
        promoter.promote("team:etl", to="staging", rev=first)  # writes: the answers go
        pointer = session.state().pointer("staging", "etl")
        assert pointer is not None and pointer.revision == first
    assert session.memo is None


def test_ask_together_joins_a_memo_and_asks_only_what_it_lacks(lockgate_kit: Any) -> None:
    kit, _, _ = _kit(lockgate_kit)
    project = kit.open()
    counted = offering(project)
    session = Promoter(project).session
    ask_together(session, [Ask("components")])  # no memo: nothing asked
    assert counted.batches == []
    with memo(session):
        session.state().component("team:etl")
        ask_together(session, [Ask("component", ("team:etl",)), Ask("components")])
        ask_together(session, [Ask("components")])
        assert counted.batches == [[Ask("components")]]
        session.state().components()
    assert counted.alone == [("component", ("team:etl",))]


def test_without_the_capability_reads_go_one_by_one(lockgate_kit: Any) -> None:
    kit, _, (first, _second) = _kit(lockgate_kit)
    project = kit.open()
    assert store_read_batch(project.state()) is None
    session = Promoter(project).session
    with read_together(session, [Ask("revisions", ("team:etl",))]):
        assert session.memo is None
        assert session.state().revisions("team:etl")[0].revision == first


def test_an_ask_names_a_read() -> None:
    with pytest.raises(ValueError, match="not a read"):
        Ask("move_pointer", ())


def test_a_rollback_reads_in_batches_and_nothing_alone(lockgate_kit: Any) -> None:
    kit, _, (first, second) = _kit(lockgate_kit)
    project = kit.open()
    promoter = Promoter(project)
    promoter.promote("team:etl", to="staging", rev=first)
    promoter.promote("team:etl", to="staging", rev=second)
    counted = offering(project)
    result = promoter.rollback("team:etl", stage="staging", reason="bad")
    assert result.changed and result.revision == first
    assert counted.alone == []
    assert [sorted({a.name for a in b}) for b in counted.batches] == [
        ["component", "open_intents", "pointer", "pointer_history"],
        ["approvals"],  # the revision's, once chosen (its component: read already)
        ["approvals", "component", "open_intents", "pointer"],
    ]
    counted.reset()
    promoter.promote("team:etl", to="staging", rev=second)
    counted.reset()
    assert promoter.rollback("etl").revision == first  # no stage named: every stage's pointer
    assert counted.alone == [("pointer_history", ("staging", "etl"))]


def test_rev_latest_is_not_taken_for_a_revision_id(lockgate_kit: Any) -> None:
    kit, _, (_first, second) = _kit(lockgate_kit)
    project = kit.open()
    counted = offering(project)
    assert Promoter(project).promote("team:etl", to="staging", rev="latest").revision == second
    assert all(a.args[-1:] != ("latest",) for b in counted.batches for a in b), counted.batches
    assert counted.alone == []


def _reject(other: Any) -> None:
    """A status write no lock orders (the store's own: lockgate's decisions wait for
    the switch's lock)."""
    state = other.state()
    record = state.component("team:etl")
    event = AuditEvent(at=now_iso(), actor="x", action="reject", component="team:etl")
    state.set_status("team:etl", record.status, ComponentStatus.REJECTED, event)


def _stage_again(other: Any) -> None:
    """Staging, which takes no lock a switch holds."""
    component = next((other.root / "workspaces").glob("*/*/etl"))
    (component / "main.py").write_text("C = 1\n", encoding="utf-8")
    Stager(other).stage("team:etl")


@pytest.mark.parametrize(
    ("meanwhile", "status"), [(_reject, "rejected"), (_stage_again, "promoted")]
)
def test_the_record_moves_the_status_the_store_finds(
    lockgate_kit: Any, meanwhile: Any, status: str
) -> None:
    """The record is made from what the checks read under the locks, not read again: a
    status changed while the targets deploy is what the status moves from (a rejection
    stays; a new revision staged is promoted, as the status machine says), and the
    switch stands either way."""
    kit, _, (_first, second) = _kit(lockgate_kit)
    project = kit.open()
    counted = offering(project)
    state = project.state()
    opened = state.open_intent

    def open_then_change(intent: Any) -> None:
        opened(intent)
        other = open_project(kit.root, installed=False, extra=kit.distributions)
        try:
            meanwhile(other)
        finally:
            other.close()

    state.open_intent = open_then_change
    result = Promoter(project).promote("team:etl", to="staging", rev=second)
    assert result.changed and result.revision == second
    assert len(counted.batches) == 2 and counted.alone == []
    record = project.state().component("team:etl")
    assert record is not None and record.status.value == status
    pointer = project.state().pointer("staging", "etl")
    assert pointer is not None and pointer.revision == second
