"""Switches of different components run side by side; recovery settles only dead
switches' intents.

A promote or rollback on a stage whose targets take concurrent switches (the builtin
``directory`` target) holds the project's operation lock shared and its component's
lock (``lockgate.contracts.locks``). Real ``lockgate`` processes on the ``sqlite`` store
(``flock``): one is paused with its intent open and its targets prepared
(``promote.after_prepare:pause``) while others act.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import ENV, subprocess_env
from lockgate.builtin_plugins.directory_target import DirectoryTarget
from lockgate.contracts.target import target_concurrent_switches
from lockgate.operations.init import init_project
from lockgate.operations.promote import Promoter
from lockgate.operations.stage import Stager
from lockgate.plugin import EventFilter
from lockgate.testing import open_project

PAUSE = "promote.after_prepare"


def make_project(root: Path, names: tuple[str, ...] = ("etl", "report")) -> None:
    init_project(root)
    for name in names:
        folder = root / "workspaces" / "alice" / "scripts" / name
        folder.mkdir(parents=True)
        (folder / "run.py").write_text(f"print({name!r})\n")
    project = open_project(root, environ=ENV)
    try:
        for name in names:
            Stager(project).stage(f"alice:{name}")
    finally:
        project.close()


def lockgate(root: Path, *args: str, timeout: str = "30") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        cwd=root,
        env=subprocess_env(ENV, {"LOCKGATE__STATE__LOCK_TIMEOUT": timeout}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def paused_promote(
    root: Path, pause: Path, ref: str, *, kill: bool = False
) -> subprocess.Popen[str]:
    """``lockgate promote REF`` stopped (or killed, with ``kill``) after preparing its
    targets: its intent is open and it holds its locks."""
    point = PAUSE if kill else f"{PAUSE}:pause"
    run = subprocess.Popen(
        [sys.executable, "-m", "lockgate", "promote", ref, "--to", "staging"],
        cwd=root,
        env=subprocess_env(ENV, {"LOCKGATE_FAILPOINTS": point, "LOCKGATE_PAUSE_DIR": str(pause)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill:
        run.communicate(timeout=120)
        assert run.returncode == -9, run.returncode
        return run
    deadline = time.monotonic() + 60
    while not (pause / f"{PAUSE}.paused").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.02)
    return run


def resume(pause: Path, run: subprocess.Popen[str]) -> str:
    (pause / f"{PAUSE}.resume").touch()
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    return err


def recover_events(root: Path) -> list[object]:
    project = open_project(root, environ=ENV)
    try:
        return list(project.state().events(EventFilter(action="recover")))
    finally:
        project.close()


def test_a_switch_of_another_component_runs_while_one_is_in_progress(tmp_path: Path) -> None:
    """The paused switch of etl keeps its intent: the promote of report neither waits for
    it nor settles it (its owner holds etl's lock), and etl then completes by itself."""
    root, pause = tmp_path / "p", tmp_path / "pause"
    pause.mkdir()
    make_project(root)
    run = paused_promote(root, pause, "alice:etl")
    try:
        other = lockgate(root, "promote", "alice:report", "--to", "staging", timeout="0.5")
        assert other.returncode == 0, other.stderr
        project = open_project(root, environ=ENV)
        try:
            [open_intent] = project.state().open_intents()
            assert open_intent.payload["component_id"] == "etl"
        finally:
            project.close()
    finally:
        resume(pause, run)
    assert recover_events(root) == []
    project = open_project(root, environ=ENV)
    try:
        assert {p.component_id for p in project.state().pointers("staging")} == {"etl", "report"}
        assert project.state().open_intents() == []
    finally:
        project.close()
    assert (root / "stages" / "staging" / "etl" / "run.py").exists()


def test_lockgate_recover_leaves_the_intent_of_a_switch_in_progress_alone(
    tmp_path: Path,
) -> None:
    """``lockgate recover`` asks the store about every open intent (no shortcut by pid):
    the paused switch holds its component's lock, so its intent is not settled."""
    root, pause = tmp_path / "p", tmp_path / "pause"
    pause.mkdir()
    make_project(root)
    run = paused_promote(root, pause, "alice:etl")
    try:
        recover = lockgate(root, "recover", timeout="5")
        assert recover.returncode == 0, recover.stderr
        assert "0 interrupted operation(s) settled" in recover.stdout, recover.stdout
    finally:
        resume(pause, run)
    assert recover_events(root) == []
    project = open_project(root, environ=ENV)
    try:
        assert project.state().pointer("staging", "etl") is not None
        assert project.state().open_intents() == []
    finally:
        project.close()


def test_a_second_switch_of_the_same_component_waits_and_names_the_holder(
    tmp_path: Path,
) -> None:
    root, pause = tmp_path / "p", tmp_path / "pause"
    pause.mkdir()
    make_project(root)
    run = paused_promote(root, pause, "alice:etl")
    try:
        again = lockgate(root, "promote", "alice:etl", "--to", "staging", timeout="0.3")
        assert again.returncode == 4, again.stderr
        [line] = again.stderr.strip().splitlines()
        assert "component etl is being switched by pid" in line, line
        assert f"pid {run.pid}" in line, line
    finally:
        resume(pause, run)
    assert recover_events(root) == []


def test_a_whole_project_operation_waits_for_a_switch_in_progress(tmp_path: Path) -> None:
    """``lockgate gc`` takes the operation lock exclusively: not while a switch runs."""
    root, pause = tmp_path / "p", tmp_path / "pause"
    pause.mkdir()
    make_project(root)
    run = paused_promote(root, pause, "alice:etl")
    try:
        gc = lockgate(root, "gc", timeout="0.3")
        assert gc.returncode == 4 and "lock" in gc.stderr, gc.stderr
        assert "Traceback" not in gc.stderr
    finally:
        resume(pause, run)


def test_the_intent_of_a_killed_switch_is_settled_by_a_switch_of_another_component(
    tmp_path: Path,
) -> None:
    """A dead switch's component lock is free: the next switch of any component takes it
    (without waiting) and settles the intent, once."""
    root, pause = tmp_path / "p", tmp_path / "pause"
    pause.mkdir()
    make_project(root)
    paused_promote(root, pause, "alice:etl", kill=True)
    other = lockgate(root, "promote", "alice:report", "--to", "staging")
    assert other.returncode == 0, other.stderr
    [event] = recover_events(root)
    assert event.details["outcome"] == "undone"  # type: ignore[attr-defined]
    project = open_project(root, environ=ENV)
    try:
        assert project.state().open_intents() == []
        assert project.state().pointer("staging", "etl") is None
    finally:
        project.close()
    assert not (root / "stages" / "staging" / "etl").exists()


def test_only_targets_that_say_so_take_concurrent_switches(tmp_path: Path) -> None:
    """A target that does not declare ``concurrent_switches`` (one artifact for a whole
    stage, say) gets every switch under the operation lock held exclusively."""

    class WholeStage:
        kind = "whole-stage"

    class Declared:
        concurrent_switches = "yes"  # only True counts

    assert target_concurrent_switches(DirectoryTarget(tmp_path / "s", tmp_path / "r"))
    assert not target_concurrent_switches(WholeStage())
    assert not target_concurrent_switches(Declared())
    make_project(tmp_path / "p", ("etl",))
    project = open_project(tmp_path / "p", environ=ENV)
    try:
        promoter = Promoter(project)
        assert promoter.lockable("staging", "etl") == ("etl",)
        project_targets = promoter.targets("staging")
        project_targets.append(WholeStage())  # type: ignore[arg-type]
        assert promoter.lockable("staging", "etl") is None
    finally:
        project.close()
