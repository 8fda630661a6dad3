"""``Session.lock`` and a state store offering ``LockSet``: the locks a switch still has
to take are one ``lock_set`` call, the session's record of what it holds stays per lock,
and a store without the capability is asked lock by lock, as before.

The ``sqlite`` store is given ``lock_set`` here by a wrapper that takes the locks with
its own ``lock``, nested (the PostgreSQL store's own is tested by the conformance suite
and its statement count, in plugins/lockgate-postgres).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import ENV
from lockgate.contracts.lock_set import store_lock_set
from lockgate.contracts.locks import LockOwner, component_lock
from lockgate.core.session import Session
from lockgate.operations.init import init_project
from lockgate.operations.promote import Promoter
from lockgate.operations.stage import Stager
from lockgate.testing import open_project

ETL, REPORT = component_lock("etl"), component_lock("report")


class Counted:
    """A store's calls as the kernel makes them: ``lock`` and ``lock_set``, the latter
    taking its locks with the store's own ``lock`` (not counted)."""

    def __init__(self, state: Any) -> None:
        self.own_lock = state.lock
        self.singles: list[tuple[str, bool]] = []
        self.sets: list[list[tuple[str, bool]]] = []

    def lock(self, name: str, **given: Any) -> contextlib.AbstractContextManager[LockOwner]:
        self.singles.append((name, given.get("shared", False)))
        return self.own_lock(name, **given)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def lock_set(
        self,
        locks: Sequence[tuple[str, bool]],
        *,
        owner: LockOwner,
        lease: float,
        timeout: float,
        reads: Sequence[Any] = (),
    ) -> Iterator[LockOwner]:
        self.sets.append(list(locks))
        with contextlib.ExitStack() as stack:
            granted = owner
            for name, shared in locks:
                lock = self.own_lock(name, owner=owner, lease=lease, timeout=timeout, shared=shared)
                granted = stack.enter_context(lock)
            yield granted


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Any]:
    root = tmp_path / "project"
    init_project(root)
    for name in ("etl", "report"):
        folder = root / "workspaces" / "alice" / "scripts" / name
        folder.mkdir(parents=True)
        (folder / "run.py").write_text(f"print({name!r})\n")
    project = open_project(root, environ=ENV)
    try:
        for name in ("etl", "report"):
            Stager(project).stage(f"alice:{name}")
        yield project
    finally:
        project.close()


def offering(project: Any, *, lock_set: bool = True) -> Counted:
    """Count the kernel's lock calls on ``project``'s state store, which offers
    ``lock_set`` unless told not to."""
    state = project.state()
    counted = Counted(state)
    state.lock = counted.lock
    if lock_set:
        state.lock_set = counted.lock_set
        assert store_lock_set(state) is not None
    return counted


def test_a_promotion_takes_its_two_locks_in_one_lock_set_call(project: Any) -> None:
    counted = offering(project)
    result = Promoter(project).promote("alice:etl", to="staging")
    assert result.changed
    assert counted.sets == [[("operation", True), (ETL, False)]]
    assert counted.singles == []


def test_without_lock_set_the_locks_are_taken_one_by_one(project: Any) -> None:
    counted = offering(project, lock_set=False)
    assert store_lock_set(project.state()) is None
    Promoter(project).promote("alice:etl", to="staging")
    assert counted.singles == [("operation", True), (ETL, False)]


def test_the_session_records_each_lock_of_a_set_and_forgets_them_after(project: Any) -> None:
    counted = offering(project)
    session = Session(project)
    with session.lock("promote", components=["report", "etl"]) as granted:
        assert granted.operation == "promote" and granted.pid is not None
        assert session.holds("operation") and not session.holds("operation", exclusive=True)
        assert session.holds(ETL, exclusive=True) and session.holds(REPORT, exclusive=True)
    assert counted.sets == [[("operation", True), (ETL, False), (REPORT, False)]]
    assert not any(session.holds(n) for n in ("operation", ETL, REPORT))
    with pytest.raises(RuntimeError), session.lock("promote", components=["etl"]):
        raise RuntimeError("the switch failed")
    assert not session.holds("operation") and not session.holds(ETL)
    assert project.state().holder(ETL) is None and project.state().holder("operation") is None


def test_locks_the_session_holds_are_not_asked_for_again(project: Any) -> None:
    """Under a pipeline run's exclusive ``operation`` lock a member's switch takes only
    its component lock: one lock is a ``lock`` call; two are a set without ``operation``."""
    counted = offering(project)
    session = Session(project)
    with session.lock("pipeline"):
        with session.lock("promote", components=["etl"]):
            assert session.holds(ETL, exclusive=True)
        with session.lock("promote", components=["etl", "report"]):
            assert session.holds(REPORT, exclusive=True)
        assert session.holds("operation", exclusive=True) and not session.holds(ETL)
    assert counted.singles == [("operation", False), (ETL, False)]
    assert counted.sets == [[(ETL, False), (REPORT, False)]]
