"""What a switch checks again under its locks (``lockgate.operations.locked_reads``): with
a state store offering ``SwitchReads`` the four reads are one call, answered from it
only while the checks run, and what landed while the gates ran still refuses the switch
(a rejection, another runner's move)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from lockgate.contracts.state import Approval
from lockgate.contracts.switch_reads import SwitchView, store_switch_reads
from lockgate.errors import ConflictError, RefusedError
from lockgate.operations.approve import decide
from lockgate.operations.promote import Promoter
from lockgate.plugin import hookimpl
from lockgate.testing import open_project


class Counted:
    """``SwitchReads`` composed of the store's own reads, counting each call and the
    individual reads the store answers."""

    def __init__(self, store: Any) -> None:
        self.store, self.calls, self.reads = store, 0, 0

    def switch_reads(
        self, stage: str, component_id: str, component: str, revision: str | None
    ) -> SwitchView:
        self.calls += 1
        return SwitchView(
            open_intents=self.store.open_intents(),
            pointer=self.store.pointer(stage, component_id),
            component=self.store.component(component),
            approvals=self.store.approvals(component, revision) if revision else [],
        )


def offering(project: Any) -> Counted:
    """Give ``project``'s state store ``SwitchReads`` (its own reads, counted)."""
    state = project.state()
    counted = Counted(state)
    state.switch_reads = counted.switch_reads
    assert store_switch_reads(state) is not None
    return counted


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


def test_a_switch_asks_its_checks_once_and_its_record_reads_afresh(lockgate_kit: Any) -> None:
    kit, _, (first, second) = _kit(lockgate_kit)
    project = kit.open()
    counted = offering(project)
    promoter = Promoter(project)
    assert promoter.promote("team:etl", to="staging", rev=first).changed
    assert promoter.promote("team:etl", to="staging", rev=second).changed
    assert counted.calls == 2
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
    assert counted.calls == 1
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
    assert counted.calls == 1
    moves = [c.revision for c in project.state().pointer_history("staging", "etl")]
    assert moves == [first, second]


def test_the_checks_are_answered_from_the_one_call(lockgate_kit: Any) -> None:
    """A rejection only the view holds refuses: the checks read the view, not the store."""
    kit, _, (first, second) = _kit(lockgate_kit)
    kit.promote("team:etl", to="staging", rev=second)
    project = kit.open()
    counted = offering(project)
    real = counted.switch_reads

    def with_a_rejection(*args: Any) -> SwitchView:
        view = real(*args)
        rejected = Approval("team:etl", first, "mallory", "reject", "2026-12-05T00:00:00Z")
        return attrs.evolve(view, approvals=[rejected])

    project.state().switch_reads = with_a_rejection
    with pytest.raises(RefusedError, match="was rejected by mallory"):
        Promoter(project).promote("team:etl", to="staging", rev=first)
    assert project.state().approvals("team:etl", first) == []
