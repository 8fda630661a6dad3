"""A validator's view of the rest of the project (``ValidationContext.staged`` and
``current``), read as it asks: a gate reads the ids the builtin validators ask about (the
subject's own in every workspace, its dependencies, the actions its workflows name),
never every component or the whole stage, so a promotion costs the same in a project of
ten components as of a hundred thousand; a validator that iterates the views still sees
everything; a view kept past ``on_validate`` reads nothing more."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lockgate.builtin_plugins.sqlite_schema import MIGRATIONS
from lockgate.builtin_plugins.validators import workflows
from lockgate.contracts.peers import StagedPeers, StagePointers, components_by_id
from lockgate.contracts.state import StateStore
from lockgate.core.session import as_session
from lockgate.errors import LockgateError
from lockgate.operations.promote import Promoter
from lockgate.operations.resolve import resolve_component
from lockgate.operations.validate import Validation
from lockgate.plugin import (
    PeerComponent,
    ValidationContext,
    ValidationSubject,
    ValidatorInfo,
    hookimpl,
)

FLOW = (
    "name: nightly\nversion: 1\ntasks:\n"
    "  - name: a\n    action: base\n  - name: b\n    action: {}\n"
)


class Reads:
    """Counts the calls of the state store's whole-project reads."""

    def __init__(self, store: Any) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        for name in ("components", "pointers", "components_by_id", "pointer"):
            setattr(store, name, self._counting(name, getattr(store, name)))

    def _counting(self, name: str, read: Any) -> Any:
        def counted(*args: Any) -> Any:
            self.calls.append((name, args))
            return read(*args)

        return counted

    def named(self, *names: str) -> list[tuple[str, tuple[Any, ...]]]:
        return [c for c in self.calls if c[0] in names]


class Keeper:
    """A third party's validator: keeps what its context showed, and the context."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}
        self.kept: ValidationContext | None = None
        self.whole = False  # iterate the views too

    @hookimpl
    def describe_validator(self) -> ValidatorInfo:
        return ValidatorInfo(cache=False)

    @hookimpl
    def on_validate(self, subject: Any) -> list[Any]:
        context = subject.context
        if subject.component_id == "app":
            self.kept = context
            self.seen = {
                "peers": context.peers("etl"),
                "live": context.live("etl", "base", "nothing"),
                "known": context.known("etl", "base", "nothing", "app"),
            }
            if self.whole:
                self.seen["staged"] = sorted(p.component for p in context.staged)
                self.seen["current"] = dict(context.current)
                self.seen["after"] = (context.peers("etl"), context.live("etl", "base", "none"))
        return []


def _project(lockgate_kit: Any, others: int) -> tuple[Any, Keeper]:
    """alice:base current in staging, alice:etl and bob:etl staged (bob's differs),
    alice:app depending on base, ``others`` more components current in staging."""
    keeper = Keeper()
    kit = lockgate_kit(extra=[("keeper", keeper)])
    kit.component("alice:base")
    kit.component("alice:etl", {"main.py": "x = 1\n"})
    kit.component("bob:etl", {"main.py": "x = 2\n"})
    kit.component("alice:app", {"component.yaml": "depends_on: [base]\n", "main.py": "y = 1\n"})
    for n in range(others):
        kit.component(f"team:c{n}", {"main.py": f"n = {n}\n"})
    for ref in ("alice:base", "alice:etl", "bob:etl", "alice:app"):
        kit.stage(ref)
    kit.promote("alice:base", to="staging")
    for n in range(others):
        kit.stage(f"team:c{n}")
        kit.promote(f"team:c{n}", to="staging")
    return kit, keeper


def test_a_gate_reads_only_the_ids_its_validators_ask_about(lockgate_kit: Any) -> None:
    kit, keeper = _project(lockgate_kit, others=30)
    project = kit.open()
    reads = Reads(project.state())
    result = Promoter(project).promote("alice:app", to="staging")
    assert result.changed
    assert reads.named("components", "pointers") == []  # neither every component nor stage
    # conflicts asks for the subject's id in every workspace; the keeper for etl's, and
    # for what known() did not find among the components validated together
    asked = {args for name, args in reads.named("components_by_id")}
    assert asked == {(("app",),), (("etl",),), (("base", "etl", "nothing"),)}
    assert [p.component for p in keeper.seen["peers"]] == ["alice:etl", "bob:etl"]
    base = project.state().pointer("staging", "base")
    assert base is not None and keeper.seen["live"] == {"base": base.revision}
    assert keeper.seen["known"] == {"etl", "base", "app"}


def test_a_validator_iterating_the_views_sees_the_whole_project_once(
    lockgate_kit: Any,
) -> None:
    kit, keeper = _project(lockgate_kit, others=30)
    keeper.whole = True
    project = kit.open()
    reads = Reads(project.state())
    assert Validation(project).run(["alice:app"], "staging").ready
    assert len(keeper.seen["staged"]) == 4 + 30
    assert set(keeper.seen["current"]) == {"base", *(f"c{n}" for n in range(30))}
    # Once read whole, a view answers from what it read.
    assert keeper.seen["after"] == (keeper.seen["peers"], keeper.seen["live"])
    assert [name for name, _ in reads.named("components", "pointers")] == [
        "components",
        "pointers",
    ]


def test_the_builtin_validators_still_find_what_the_whole_project_showed(
    lockgate_kit: Any,
) -> None:
    kit, _ = _project(lockgate_kit, others=3)
    kit.component("alice:flows", {"a.yaml": FLOW.format("c2")}, component_type="workflows")
    kit.component("alice:bad", {"a.yaml": FLOW.format("nowhere")}, component_type="workflows")
    kit.component("alice:lost", {"component.yaml": "depends_on: [gone]\n"})
    for ref in ("alice:flows", "alice:bad", "alice:lost"):
        kit.stage(ref)
    project = kit.open()
    reads = Reads(project.state())
    report = Validation(project).run(
        ["alice:etl", "alice:app", "alice:flows", "alice:bad", "alice:lost"], "staging"
    )
    codes = {r.component: sorted(i.code for i in r.issues) for r in report.components}
    assert codes == {
        "alice:etl": ["conflict-same-component"],  # bob:etl differs
        "alice:app": [],  # base is current in staging
        "alice:flows": [],  # base (current) and c2 (staged in team) are known actions
        "alice:bad": ["workflow-undefined-action"],
        "alice:lost": ["dependency-missing"],
    }
    assert reads.named("components", "pointers") == []


def test_a_context_kept_past_on_validate_reads_nothing(lockgate_kit: Any) -> None:
    kit, keeper = _project(lockgate_kit, others=0)
    assert kit.validate("alice:app", stage="staging").ready
    kept = keeper.kept
    assert kept is not None
    for ask in (
        lambda: kept.peers("base"),
        lambda: kept.live("other"),
        lambda: "app" in kept.current,
        lambda: len(kept.staged),
    ):
        with pytest.raises(LockgateError, match="only while on_validate runs"):
            ask()
    # What the current revisions it asked about while it ran stay answered.
    assert kept.live("base", "nothing") == keeper.seen["live"]


def test_plain_and_lazy_contexts_answer_alike() -> None:
    peers = (
        PeerComponent("alice:etl", "etl", "scripts", "r1", "staged"),
        PeerComponent("bob:etl", "etl", "scripts", "r2", "approved"),
        PeerComponent("alice:web", "web", "scripts", "r3", "promoted"),
    )
    current = {"web": "r3", "old": "r0"}
    asked: list[tuple[str, tuple[str, ...]]] = []

    def some_peers(ids: tuple[str, ...]) -> list[PeerComponent]:
        asked.append(("peers", ids))
        return [p for p in peers if p.component_id in ids]

    def some_pointers(ids: tuple[str, ...]) -> dict[str, str]:
        asked.append(("pointers", ids))
        return {i: current[i] for i in ids if i in current}

    batch = (PeerComponent("carol:new", "new", "scripts", "r4", "staged"),)
    plain = ValidationContext(batch=batch, current=current, staged=peers)
    lazy = ValidationContext(
        batch=batch,
        current=StagePointers(lambda: current, some_pointers),
        staged=StagedPeers(lambda: peers, some_peers),
    )
    for context in (plain, lazy):
        assert context.peers("etl") == peers[:2]
        assert context.peers("nothing") == ()
        assert context.live("web", "old", "etl") == {"web": "r3", "old": "r0"}
        assert context.known("new", "etl", "old", "nothing") == {"new", "etl", "old"}
        assert context.current.get("web") == "r3" and "nothing" not in context.current
    # The lazy one asked about those ids only (each pointer once), nothing whole.
    assert ("peers", ("etl",)) in asked and all(len(ids) <= 3 for _, ids in asked)
    assert [ids for kind, ids in asked if kind == "pointers"].count(("web",)) == 0
    assert list(lazy.staged) == list(peers) and dict(lazy.current) == current
    assert lazy.current == current


class WithoutIndex:
    """A state store without ``ComponentsById``: the kernel reads every component."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "components_by_id":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_components_by_id_are_the_same_without_the_capability(lockgate_kit: Any) -> None:
    kit, _ = _project(lockgate_kit, others=2)
    state: StateStore = kit.open().state()
    bare: Any = WithoutIndex(state)
    for ids in (("etl",), ("etl", "c1", "nothing"), ()):
        assert components_by_id(bare, ids) == components_by_id(state, ids)
    session = as_session(kit.open())
    assert str(resolve_component(session, "app")) == "alice:app"
    with pytest.raises(LockgateError, match="several workspaces"):
        resolve_component(session, "etl")


def test_sqlite_finds_the_components_of_an_id_through_its_index() -> None:
    db = sqlite3.connect(":memory:")
    for script in MIGRATIONS:
        db.executescript(script)
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM components WHERE component_id IN "
        "(SELECT value FROM json_each(?)) ORDER BY component",
        ('["etl"]',),
    ).fetchall()
    details = " | ".join(row[-1] for row in plan)
    assert "USING INDEX components_by_id (component_id=?)" in details, details


def test_validating_the_whole_project_reads_it_once(lockgate_kit: Any) -> None:
    kit, keeper = _project(lockgate_kit, others=70)
    project = kit.open()
    refs = [r.component for r in project.state().components()]
    reads = Reads(project.state())
    report = Validation(project).run(refs, "staging")
    assert len(report.components) == 74
    # Asked id by id, 74 subjects would be 74 reads and more: one of each instead, and
    # every view answers from it.
    assert [name for name, _ in reads.calls] == ["components", "pointers"]
    assert [p.component for p in keeper.seen["peers"]] == ["alice:etl", "bob:etl"]
    assert keeper.seen["known"] == {"etl", "base", "app"}
    conflicts = [r.component for r in report.components if not r.ready]
    assert conflicts == ["alice:etl", "bob:etl"]


def test_a_workflow_action_that_is_not_a_name_is_undefined(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "name: n\nversion: 1\ntasks:\n  - name: a\n    action: [x]\n  - name: b\n    action: base\n"
    )
    subject = ValidationSubject(
        component="alice:f",
        workspace="alice",
        component_id="f",
        component_type="workflows",
        stage="staging",
        root=tmp_path,
        files=("a.yaml",),
        context=ValidationContext(current={"base": "r1"}),
    )
    issues = workflows.on_validate(subject, workflows.WorkflowsSettings())
    assert [(i.code, i.line) for i in issues] == [("workflow-undefined-action", 5)]
