"""Crash safety: SIGKILL lockgate at random moments and at every named failpoint.

The harness (tests/crash_harness.py, docs/reliability.md) runs ``LOCKGATE_CRASH_KILLS``
kills (default 200) with seed ``LOCKGATE_CRASH_SEED``, and ``LOCKGATE_CRASH_PG_KILLS``
(default 30) against the ``postgres`` state store on the server at 127.0.0.1:5432 (or
``LOCKGATE_POSTGRES_TEST_DSN``; skipped without one, failed when
``LOCKGATE_REQUIRE_SERVICES=1``); the small tests below pin the documented outcome of each
failpoint.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import run_lockgate
from crash_harness import (
    ENV,
    FAILPOINTS,
    RECOVER_FAILPOINT,
    SWITCH_FAILPOINTS,
    HarnessConfig,
    component_dir,
    create_project,
    expected_outcome,
    inspect_project,
    open_project,
    peek_intents,
    postgres_database,
    run_harness,
)
from lockgate.core.session import Session
from lockgate.operations.promote import Promoter
from lockgate.operations.recover import settle as recover_settle
from lockgate.operations.stage import Stager
from lockgate.testing import REQUIRE_SERVICES, require_tcp_service, services_required

# Read at import: the autouse fixture in conftest.py clears LOCKGATE_* before each test.
KILLS = int(os.environ.get("LOCKGATE_CRASH_KILLS", "200"))
SEED = int(os.environ.get("LOCKGATE_CRASH_SEED", "20240611"))
PG_KILLS = int(os.environ.get("LOCKGATE_CRASH_PG_KILLS", "30"))
PG_EXPLICIT = os.environ.get("LOCKGATE_POSTGRES_TEST_DSN")
PG_SERVER = PG_EXPLICIT or "host=127.0.0.1 port=5432 user=postgres"
SERVICES_REQUIRED = services_required()

# Known source bugs (docs/reliability.md, "Findings"); each has a strict xfail test below,
# which fails the day the bug is fixed: then drop it from this set.
KNOWN_BUGS: frozenset[str] = frozenset()

TESTS_DIR = Path(__file__).resolve().parent
STAGE = "staging"
COMPONENT = "alice:prep"
COMPONENT_ID = "prep"

# One switch, in a real subprocess; it dies at the failpoint LOCKGATE_FAILPOINTS names.
SWITCH = """
import sys
from pathlib import Path

from crash_harness import open_project
from lockgate.core.session import Session
from lockgate.operations.promote import Promoter
from lockgate.operations.recover import settle

root, action = Path(sys.argv[1]), sys.argv[2]
project = open_project(root)
if action == "promote":
    Promoter(project).promote("alice:prep", to="staging")
elif action == "rollback":
    Promoter(project).rollback("prep", stage="staging", to="previous")
else:
    settle(Session(project))  # the first step of every operation
print("survived")
"""


@pytest.mark.slow
def test_crash_harness_kills_and_recovers(tmp_path: Path) -> None:
    summary = run_harness(
        HarnessConfig(kills=KILLS, seed=SEED, workdir=tmp_path / "crash", tolerate=KNOWN_BUGS)
    )
    report = summary.report()
    assert summary.ok, report
    assert summary.kills == KILLS, report
    randoms = sum(n for kind, n in summary.kinds.items() if kind.startswith("random"))
    if KILLS >= 200:
        assert randoms >= 40, report
        for failpoint in FAILPOINTS:
            assert summary.kinds[failpoint] >= 3, report
        # The aimed random kills must reach the switch's critical section now and then.
        assert summary.outcomes.get("random-in-switch", {}).get("undone", 0) >= 1, report
    for failpoint in SWITCH_FAILPOINTS:
        outcomes = set(summary.outcomes.get(failpoint, {}))
        assert outcomes <= {expected_outcome(failpoint)}, report


@pytest.mark.slow
def test_crash_harness_on_the_postgres_state_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("lockgate_postgres", reason="lockgate-postgres is not installed")
    if SERVICES_REQUIRED:  # the autouse fixture cleared it; the skip must still fail
        monkeypatch.setenv(REQUIRE_SERVICES, "1")
    if PG_EXPLICIT is None:
        require_tcp_service("PostgreSQL", "127.0.0.1", 5432)
    with postgres_database(PG_SERVER) as place:
        summary = run_harness(
            HarnessConfig(
                kills=PG_KILLS,
                seed=SEED,
                workdir=tmp_path / "crash",
                tolerate=KNOWN_BUGS,
                postgres=place,
                check_every=10,
                spawn_every=15,
            )
        )
    report = summary.report()
    assert summary.ok, report
    assert summary.store == "postgres" and summary.kills == PG_KILLS, report
    assert summary.events > PG_KILLS, report
    # the history was in PostgreSQL: no SQLite state was ever created
    assert not (tmp_path / "crash" / "project" / ".lockgate" / "state.db").exists()
    for failpoint in SWITCH_FAILPOINTS:
        assert set(summary.outcomes.get(failpoint, {})) <= {expected_outcome(failpoint)}, report


# --------------------------------------------------------------------------- one failpoint each


def kill_at(root: Path, action: str, failpoint: str) -> None:
    """Run one ``action`` in a subprocess that must die at ``failpoint``."""
    env = {**ENV, "LOCKGATE_FAILPOINTS": failpoint, "PYTHONPATH": str(TESTS_DIR)}
    proc: subprocess.CompletedProcess[str] = run_lockgate(
        str(root), action, cwd=root, env=env, python_code=SWITCH
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    assert "survived" not in proc.stdout


def staging_revision(root: Path) -> str | None:
    """What the stage pointer says (read without settling anything)."""
    project = open_project(root, recover=False)
    try:
        pointer = project.state().pointer(STAGE, COMPONENT_ID)
        return pointer.revision if pointer else None
    finally:
        project.close()


def prepare(root: Path, action: str) -> tuple[str | None, str | None]:
    """A project where ``action`` would switch staging/prep: (before, after) revisions."""
    create_project(root)
    project = open_project(root)
    try:
        if action == "promote":
            (component_dir(root, COMPONENT) / "main.py").write_text("VALUE = 2\n")
            after: str | None = Stager(project).stage(COMPONENT).revision
        else:
            history = project.state().pointer_history(STAGE, COMPONENT_ID)
            after = history[-1].previous_revision
        before = staging_revision(root)
        assert before is not None
        assert after is not None
        assert before != after
        return before, after
    finally:
        project.close()


Interrupted = Callable[[Path, str, str], tuple[str | None, str | None]]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Interrupted:
    """``interrupted(root, action, failpoint)``: a copy at ``root`` of a project prepared
    for ``action`` (:func:`prepare`) whose ``action`` was killed at ``failpoint``; returns
    (before, after) revisions. Each kind is made once per module (a subprocess that dies
    at the failpoint, as :func:`kill_at` checks), then copied: the project's links are
    relative and its state names no path of its own that recovery would act on."""
    made: dict[tuple[str, str], tuple[Path, str | None, str | None]] = {}

    def copy(root: Path, action: str, failpoint: str) -> tuple[str | None, str | None]:
        if (action, failpoint) not in made:
            where = tmp_path_factory.mktemp("interrupted") / "project"
            before, after = prepare(where, action)
            kill_at(where, action, failpoint)
            made[action, failpoint] = (where, before, after)
        where, before, after = made[action, failpoint]
        shutil.copytree(where, root, symlinks=True)
        return before, after

    return copy


def settle(root: Path) -> dict[str, Any]:
    """Open the project afresh (which settles intents) and check everything."""
    data = inspect_project(root, 0, thorough=True)
    problems = [p for p in data["problems"] if p[0] not in KNOWN_BUGS]
    assert problems == []
    return data


def deployed(root: Path) -> str | None:
    project = open_project(root)
    try:
        (target,) = Promoter(project).targets(STAGE)
        return target.deployed().get(COMPONENT_ID)
    finally:
        project.close()


@pytest.mark.parametrize("failpoint", SWITCH_FAILPOINTS)
def test_each_switch_failpoint_recovers_as_documented(
    tmp_path: Path, interrupted: Interrupted, failpoint: str
) -> None:
    root = tmp_path / "project"
    action = failpoint.split(".")[0]
    before, after = interrupted(root, action, failpoint)
    (intent,) = peek_intents(root)
    assert intent["operation"] == action
    assert intent["payload"]["revision"] == after
    assert intent["payload"]["previous_revision"] == before

    data = settle(root)

    (event,) = [e for e in data["recovered"] if e["intent"] == intent["id"]]
    outcome = expected_outcome(failpoint)
    assert event["outcome"] == outcome
    shown = after if outcome == "completed" else before
    assert event["revision"] == shown
    assert staging_revision(root) == shown
    assert deployed(root) == shown
    assert peek_intents(root) == []


@pytest.mark.parametrize("setup", ["promote.after_switch", "promote.after_record"])
def test_recovery_killed_after_its_switch_is_settled_by_the_next_one(
    tmp_path: Path, interrupted: Interrupted, setup: str
) -> None:
    root = tmp_path / "project"
    before, after = interrupted(root, "promote", setup)
    (intent,) = peek_intents(root)
    kill_at(root, "recover", RECOVER_FAILPOINT)
    assert [i["id"] for i in peek_intents(root)] == [intent["id"]]  # still open

    data = settle(root)

    (event,) = [e for e in data["recovered"] if e["intent"] == intent["id"]]
    outcome = expected_outcome(setup)
    assert event["outcome"] == outcome
    shown = after if outcome == "completed" else before
    assert staging_revision(root) == shown
    assert deployed(root) == shown


@pytest.mark.parametrize("setup", ["promote.after_switch", "promote.after_record"])
def test_recovery_killed_after_its_event_leaves_one_event(
    tmp_path: Path, interrupted: Interrupted, setup: str
) -> None:
    """Killed between writing its recover event and closing the intent, a recovery is
    done again by the next one, which writes no second event for the same intent."""
    root = tmp_path / "project"
    before, after = interrupted(root, "promote", setup)
    (intent,) = peek_intents(root)
    kill_at(root, "recover", "recover.after_event")
    assert [i["id"] for i in peek_intents(root)] == [intent["id"]]  # still open

    data = settle(root)

    (event,) = [e for e in data["recovered"] if e["intent"] == intent["id"]]
    assert event["outcome"] == expected_outcome(setup)
    assert peek_intents(root) == []
    shown = after if expected_outcome(setup) == "completed" else before
    assert staging_revision(root) == deployed(root) == shown


# --------------------------------------------------------------------------- settling first


def test_opening_the_state_store_settles_nothing(tmp_path: Path, interrupted: Interrupted) -> None:
    """Recovery is an explicit step of an operation, not a side effect of an accessor:
    ``Project.state()`` leaves an interrupted switch open; a session settles it, once."""
    root = tmp_path / "project"
    interrupted(root, "promote", "promote.after_switch")
    (intent,) = peek_intents(root)
    project = open_project(root)  # a project that settles (recover_on_open is True)
    try:
        assert [i.id for i in project.state().open_intents()] == [intent["id"]]
        session = Session(project)
        (settled,) = recover_settle(session)
        assert (settled.intent, settled.outcome) == (intent["id"], "undone")
        assert recover_settle(session) == [settled]  # once per session: not run again
        assert project.state().open_intents() == []
    finally:
        project.close()


@pytest.mark.parametrize(
    "command",
    [
        ["validate", COMPONENT],
        ["gc", "--dry-run"],
        ["sync", "--dry-run"],
        ["promote", COMPONENT, "--dry-run"],
    ],
    ids=lambda c: " ".join(c),
)
def test_every_command_that_changes_something_settles_an_interrupted_switch_first(
    tmp_path: Path, interrupted: Interrupted, command: list[str]
) -> None:
    root = tmp_path / "project"
    before, _ = interrupted(root, "promote", "promote.after_switch")
    (intent,) = peek_intents(root)

    proc = run_lockgate(*command, cwd=root, env=ENV)

    assert proc.returncode in (0, 1, 3), (proc.returncode, proc.stderr)  # never an error
    assert "Traceback" not in proc.stderr
    assert peek_intents(root) == []
    assert staging_revision(root) == deployed(root) == before  # undone
    data = settle(root)
    assert [e["intent"] for e in data["recovered"]] == [intent["id"]]


@pytest.mark.parametrize(
    "command",
    [
        ["ls"],
        ["diff", COMPONENT],
        ["history", COMPONENT],
        ["log"],
        ["summary"],
        ["stats"],
        ["audit", "verify"],
        ["verify"],
    ],
    ids=lambda c: " ".join(c),
)
def test_a_command_that_only_reads_warns_and_leaves_an_interrupted_switch(
    tmp_path: Path, interrupted: Interrupted, command: list[str]
) -> None:
    root = tmp_path / "project"
    before, _ = interrupted(root, "promote", "promote.after_switch")
    (intent,) = peek_intents(root)

    proc = run_lockgate(*command, cwd=root, env=ENV)

    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)  # verify: 1, mid-switch
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("recovery pending: 1 interrupted operation(s)") == 1
    assert [i["id"] for i in peek_intents(root)] == [intent["id"]]  # left for a change
    data = settle(root)
    assert [e["intent"] for e in data["recovered"]] == [intent["id"]]
    assert staging_revision(root) == deployed(root) == before  # undone


# --------------------------------------------------------------------------- leftovers


@pytest.mark.parametrize("failpoint", ["promote.after_prepare", "rollback.after_prepare"])
def test_recovery_removes_the_temporary_symlink_of_the_interrupted_switch(
    tmp_path: Path, interrupted: Interrupted, failpoint: str
) -> None:
    root = tmp_path / "project"
    action = failpoint.split(".")[0]
    interrupted(root, action, failpoint)
    stage_dir = root / "stages" / STAGE
    assert [p.name for p in stage_dir.iterdir() if ".tmp-" in p.name] != []

    data = inspect_project(root, 0)  # opens the project: recovery

    assert [p for p in data["problems"] if p[0] == "leftover-temp-link"] == []
    assert sorted(p.name for p in stage_dir.iterdir()) == ["calc", "prep", "report"]


# --------------------------------------------------------------------------- known bugs


def test_verify_accepts_a_component_holding_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "project"
    create_project(root)  # alice:calc holds alias.py -> main.py
    data = inspect_project(root, 0)
    assert [p for p in data["problems"] if p[0] == "verify-symlink-object"] == []
