"""The read memo of a promotion's planning (``lockgate.operations.read_memo``): a read
asked again is answered from memory until a write; and a plan made from answers that
went stale while the gate ran makes the switch refuse, never lose an update."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.errors import ConflictError
from lockgate.operations.promote import Promoter
from lockgate.operations.read_memo import memo
from lockgate.plugin import hookimpl
from lockgate.testing import open_project


class Meddler:
    """A validator that, the first time it runs, has another runner promote ``revision``
    into staging (a project of its own on the same directory): the plan the gate belongs
    to is then stale."""

    def __init__(self) -> None:
        self.kit: Any = None
        self.revision = ""
        self.ran = False

    @hookimpl
    def on_validate(self, subject: Any) -> list[Any]:
        if self.kit is not None and not self.ran:
            self.ran = True
            other = open_project(self.kit.root, installed=False, extra=self.kit.distributions)
            try:
                Promoter(other).promote("team:etl", to="staging", rev=self.revision)
            finally:
                other.close()
        return []


def _two_revisions(kit: Any) -> list[str]:
    revisions = []
    for version in ("A", "B"):
        kit.component("team:etl", {"main.py": f"VERSION = {version!r}\n"})
        revisions.append(kit.stage("team:etl").revision)
    return revisions


def test_a_repeated_read_is_answered_from_memory_until_a_write(lockgate_kit: Any) -> None:
    kit = lockgate_kit()
    first, second = _two_revisions(kit)
    kit.promote("team:etl", to="staging", rev=first)
    session = Promoter(kit.open()).session
    with memo(session):
        state = session.state()
        before = state.pointer("staging", "etl")
        assert before is not None and before.revision == first
        # Another session moves the pointer: this memo still answers what it read.
        Promoter(kit.open()).promote("team:etl", to="staging", rev=second)
        assert state.pointer("staging", "etl") == before
        history = state.pointer_history(component_id="etl")
        history.clear()  # a caller's change to a list it was given stays its own
        assert len(state.pointer_history(component_id="etl")) == 2
        state.append_events([])  # any other call clears the memo
        now = state.pointer("staging", "etl")
        assert now is not None and now.revision == second
    assert session.memo is None and session.state() is not state


def test_a_plan_gone_stale_during_the_gate_refuses_the_switch(lockgate_kit: Any) -> None:
    meddler = Meddler()
    kit = lockgate_kit(extra=[("meddler", meddler)])
    first, second = _two_revisions(kit)
    kit.promote("team:etl", to="staging", rev=first)
    meddler.kit, meddler.revision = kit, second  # staging's gate for the next promotion
    with pytest.raises(ConflictError, match="another change won"):
        kit.promote("team:etl", to="staging", rev=second)
    assert meddler.ran
    state = kit.open().state()
    pointer = state.pointer("staging", "etl")
    assert pointer is not None and (pointer.revision, pointer.generation) == (second, 2)
    moves = [c.revision for c in state.pointer_history("staging", "etl")]
    assert moves == [first, second]  # one move each, none lost, none doubled
    # The refused switch's gate still left its event (recorded on its own, after).
    last = state.events()[-1]
    assert (last.action, last.revision, last.stage, last.outcome) == (
        "validate",
        second,
        "staging",
        "ok",
    )


def test_a_passing_gate_event_comes_right_before_the_switch_event(lockgate_kit: Any) -> None:
    kit = lockgate_kit()
    first, second = _two_revisions(kit)
    kit.promote("team:etl", to="staging", rev=first)
    kit.promote("team:etl", to="staging", rev=second)
    *_, gate, switch = kit.open().state().events()
    assert (gate.action, gate.revision, gate.outcome) == ("validate", second, "ok")
    assert (switch.action, switch.revision) == ("promote", second)
    assert switch.seq == gate.seq + 1
