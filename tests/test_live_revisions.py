"""Who counts as an author of a revision, read through the ``LiveRevisions`` capability
(one bounded query) and through the whole pointer history (a store without it): the
same answer, for every revision of a history with restages, rollbacks and moves in
several stages, one of them no longer on the ladder."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from conftest import PLAYS_PEOPLE, ProjectWorkspace
from lockgate.builtin_plugins.sqlite_schema import live_revisions as live_revisions_of
from lockgate.builtin_plugins.sqlite_state import SqliteStateStore
from lockgate.contracts.history import live_revisions, store_live_revisions
from lockgate.contracts.state import EventFilter, StateStore
from lockgate.core.session import Session
from lockgate.operations.approve import authors
from lockgate.operations.promote import Promoter
from lockgate.operations.rollback import Rollback
from lockgate.operations.stage import Stager
from lockgate.testing._state_builders import _move, _stage, at

LADDER = "stages:\n  staging: {}\n  qa: {}\n  production: {}\n"
REF = "alice:etl"


class WithoutLiveRevisions:
    """A state store that hides ``live_revisions``: the kernel's fallback reads."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "live_revisions":
            raise AttributeError(name)
        return getattr(self._store, name)


def stage(ws: ProjectWorkspace, actor: str, text: str, ref: str = REF) -> str:
    ws.write(ref, {"run.py": text})
    project = ws.project(actor)
    try:
        return Stager(project).stage(ref).revision
    finally:
        project.close()


def switch(ws: ProjectWorkspace, what: str, stage_name: str, rev: str, ref: str = REF) -> None:
    project = ws.project("ops")
    try:
        if what == "promote":
            Promoter(project).promote(ref, to=stage_name, rev=rev, force=True, reason="test")
        else:
            Rollback(project).rollback(ref, stage=stage_name, to=rev)
    finally:
        project.close()


def test_authors_are_the_same_with_and_without_live_revisions(tmp_path: Path) -> None:
    ws = ProjectWorkspace(tmp_path / "p", LADDER)
    r1 = stage(ws, "alice", "x = 1\n")
    switch(ws, "promote", "staging", r1)
    r2 = stage(ws, "bob", "x = 2\n")
    r3 = stage(ws, "carol", "x = 3\n")
    switch(ws, "promote", "staging", r3)
    switch(ws, "promote", "qa", r3)
    r4 = stage(ws, "dave", "x = 4\n")
    assert stage(ws, "eve", "x = 1\n") == r1  # a restage: the first revision again
    switch(ws, "rollback", "staging", r1)
    r5 = stage(ws, "frank", "x = 5\n")
    switch(ws, "promote", "staging", r5)
    switch(ws, "rollback", "staging", r3)
    r6 = stage(ws, "grace", "x = 6\n")
    r7 = stage(ws, "heidi", "x = 7\n")
    switch(ws, "promote", "qa", r7)  # live in qa only
    r8 = stage(ws, "ivan", "x = 8\n")
    other = stage(ws, "bob", "y = 1\n", ref="alice:report")
    switch(ws, "promote", "staging", other, ref="alice:report")
    # qa leaves the ladder: its moves no longer make a revision live
    (ws.root / "lockgate.yaml").write_text(
        "stages:\n  staging: {}\n  production: {}\n" + PLAYS_PEOPLE
    )
    project = ws.project()
    try:
        session = Session(project)
        state = session.state()
        assert store_live_revisions(state) is not None  # sqlite offers it
        plain = cast(StateStore, WithoutLiveRevisions(state))
        assert store_live_revisions(plain) is None
        ladder = tuple(session.stage_names)
        stage_sets = [None, ladder, ("staging",), ("qa",), ("production",), ()]
        seen = set()
        for ref, revisions in ((REF, [r1, r2, r3, r4, r5, r6, r7, r8]), ("alice:report", [other])):
            for stages in stage_sets:
                assert live_revisions(state, ref, stages) == live_revisions(plain, ref, stages)
                for revision in revisions:
                    new = authors(state, ref, revision, ("owner",), stages)
                    assert new == authors(plain, ref, revision, ("owner",), stages)
                    seen.add((ref, revision, stages, new))
        live = live_revisions(state, REF, ladder)
        assert live == {r1, r3, r5}
        assert live_revisions(state, REF, ("qa",)) == {r3, r7}
        assert live_revisions(state, REF, None) == {r1, r3, r5, r7}
        # r8 descends from r7, live in qa only: which stages count decides
        assert authors(state, REF, r8, (), ("qa",)) == ("ivan",)
        assert authors(state, REF, r8, (), ladder) == ("grace", "heidi", "ivan")
        # r4 descends from r3, live in staging: dave alone (and the owner)
        assert authors(state, REF, r4, ("owner",), ladder) == ("dave", "owner")
        # r6 descends from r5 (live), r2 from r1 (live)
        assert authors(state, REF, r6, (), ladder) == ("grace",)
        assert authors(state, REF, r2, (), ladder) == ("bob",)
        # r1 was staged twice: both stagers count
        assert authors(state, REF, r1, (), ladder) == ("alice", "eve")
        assert len({s[3] for s in seen}) > 3
    finally:
        project.close()


def test_a_switch_s_authorship_reads_are_index_searches_on_sqlite(tmp_path: Path) -> None:
    # Who staged a component's revisions: one component's stagings, not every
    # component's (the planner took events_by_action before migration 6); which revisions
    # were live: searches of the pointer history's index by component and revision
    # (migration 7), from one revision to the next, never a scan.
    ws = ProjectWorkspace(tmp_path / "p", LADDER)
    stage(ws, "alice", "x = 1\n")
    stagings, args = EventFilter(component=REF, action="stage").sql("SELECT * FROM events")
    with sqlite3.connect(ws.root / ".lockgate" / "state.db") as db:
        sent: list[str] = []
        db.set_trace_callback(sent.append)
        live_revisions_of(db, REF, ("staging", "qa"))
        db.set_trace_callback(None)
        (live,) = sent
        plans = {
            sql: [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            for sql, params in ((stagings, args), (live, []))
        }
    assert "USING INDEX events_by_component_action (component=? AND action=?)" in " ".join(
        plans[stagings]
    )
    searches = [step for step in plans[live] if "pointer_history" in step]
    assert len(searches) == 3, plans[live]
    assert all("USING COVERING INDEX pointer_history_by_revision" in s for s in searches)
    assert "(component=? AND revision>?)" in searches[0]
    assert "(component=? AND revision=? AND stage=?)" in searches[2]


def test_live_revisions_work_the_same_however_often_the_revisions_moved(
    tmp_path: Path,
) -> None:
    # The store's answer costs as many steps of SQLite's virtual machine after 200 moves
    # between two revisions as after 10: its work follows the revisions it returns (the
    # query read every move of the component before migration 7).
    store = SqliteStateStore(tmp_path / "state.db")
    try:
        _stage(store, REF, "r1", at(0))
        _stage(store, REF, "r2", at(0, 1), parent="r1")
        steps = []
        for moves in (10, 200):
            done = len(store.pointer_history())
            for n in range(done, moves):
                _move(store, "staging", REF, f"r{n % 2 + 1}", at(1 + n // 60, n % 60), expected=n)
            steps.append(_steps(store))
        assert steps[0] == steps[1], steps
    finally:
        store.close()


def test_a_lineage_costs_the_same_however_often_the_component_was_staged(
    tmp_path: Path,
) -> None:
    # Who authored r2 (r1, its parent, live) is one step, read in as many steps of
    # SQLite's virtual machine after 300 stagings of the component as after 10, and so
    # is finding r2 by its id (a gate read every revision and every staging of the
    # component before migration 8).
    store = SqliteStateStore(tmp_path / "state.db")
    try:
        _stage(store, REF, "r1", at(0))
        _move(store, "staging", REF, "r1", at(0, 1), expected=0)
        _stage(store, REF, "r2", at(0, 2), parent="r1", actor="bob")
        _stage(store, REF, "r2", at(0, 3), parent="r1", actor="carol")
        steps = []
        for stagings in (10, 300):
            for n in range(len(store.revisions(REF)), stagings):
                _stage(store, REF, f"x{n}", at(1 + n // 60, n % 60), parent=f"x{n - 1}")
            steps.append(_lineage_steps(store))
        assert steps[0] == steps[1], steps
    finally:
        store.close()


def _vm_steps(store: SqliteStateStore, ask: Callable[[], None]) -> int:
    """The steps of SQLite's virtual machine that ``ask``'s reads of the store take."""
    counted = itertools.count()
    store._db.set_progress_handler(lambda: next(counted) and 0, 1)
    try:
        ask()
    finally:
        store._db.set_progress_handler(None, 1)
    return next(counted)


def _steps(store: SqliteStateStore) -> int:
    """The steps the store's live revisions take, asked with stages and without (each
    answering both revisions)."""

    def ask() -> None:
        for stages in (None, ("staging", "qa")):
            assert store.live_revisions(REF, stages) == {"r1", "r2"}

    return _vm_steps(store, ask)


def _lineage_steps(store: SqliteStateStore) -> int:
    """The steps r2's lineage and finding r2 by its id take."""

    def ask() -> None:
        (step,) = store.lineage(REF, "r2", ("staging",))
        assert step.stagers == ("bob", "carol")
        (found,) = store.revisions_starting(REF, "r2", 2)
        assert found.revision == "r2"

    return _vm_steps(store, ask)


def test_a_move_finds_the_pointers_open_history_row_through_the_index_on_sqlite() -> None:
    # The row a move closes is the pointer's last: the index by stage and component id
    # finds it, and the row is read by its key, however many moves came before (the
    # move read every row of the pointer's history for the one without an end).
    from lockgate.builtin_plugins.sqlite_schema import CLOSE_HISTORY, migrate

    db = sqlite3.connect(":memory:")
    migrate(db)
    args = ["2026-12-05T10:00:00+00:00", "staging", "etl"]
    plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {CLOSE_HISTORY}", args))
    assert "SEARCH pointer_history USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
    assert "INDEX pointer_history_by_component (stage=? AND component_id=?)" in plan, plan
