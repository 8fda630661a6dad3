"""The warm path answers from the watcher's file events (``plugins.watch.trust_events``).

A component with no event since the watcher's last scan of it is answered without
reading it again; one with events has only the directories they named read again. The
proof that nothing was read: a write through a hard link from outside the watched tree
(the blind spot shared with git's fsmonitor and watchman) is not seen by the warm
answer, and is seen by the cold command and by a watcher with ``trust_events: false``.
Every other change is compared with the cold command on an identical copy of the
project. Nothing here asserts a duration.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from watch_helpers import (
    NEEDS_PEERCRED,
    Watch,
    Watchers,
    component,
    run,
    wait_answered,
    watched_project,
)

pytestmark = NEEDS_PEERCRED

# The watcher's own syncs wait (the warm answer is what is compared).
SLOW = {
    "LOCKGATE__PLUGINS__WATCH__DEBOUNCE_MS": "600000",
    "LOCKGATE__PLUGINS__WATCH__MAX_WAIT_MS": "3600000",
}
ETL = "workspaces/alice/scripts/etl"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = watched_project(tmp_path / "p")
    component(root, "alice:etl", {"lib/sub/deep.py": "D = 1\n"})
    return root


@pytest.fixture
def watch(project: Path) -> Iterator[Any]:
    """``watch(env)``: a ``-v`` watcher with ``env``, once it is ready."""
    with Watchers(project, verbose=True, ready=True) as watchers:

        def start(env: Mapping[str, str]) -> Watch:
            return watchers.start(env=env)

        yield start


def settle(project: Path, w: Watch, env: Mapping[str, str], answered: int) -> int:
    """Stage until the stat cache no longer changes (the first restages rewrite it)."""
    for _ in range(3):
        result = run(project, "stage", "alice:etl", env=env)
        assert result.returncode == 0, result.stderr
        answered += 1
        wait_answered(w, answered)
    return answered


def write_through_link(link: Path, text: str) -> None:
    """Rewrite a file through a hard link outside the watched tree: no event."""
    with open(link, "r+b") as fh:
        fh.write(text.encode())


def test_unchanged_is_answered_from_events_without_reading(project: Path, watch: Any) -> None:
    link = project / "main-link.py"  # outside plugins.workspace.root
    os.link(project / ETL / "main.py", link)
    w = watch(SLOW)
    settle(project, w, SLOW, 0)
    write_through_link(link, "print('ETL')\n")  # same size; nothing under the tree moved
    warm = run(project, "--json", "stage", "alice:etl", env=SLOW)
    assert json.loads(warm.stdout)["created"] is False  # the directory was not read
    cold = run(project, "--json", "stage", "alice:etl", cold=True, env=SLOW)
    assert json.loads(cold.stdout)["created"] is True  # the cold command reads it


def test_trust_events_false_reads_everything(project: Path, watch: Any) -> None:
    link = project / "main-link.py"
    os.link(project / ETL / "main.py", link)
    env = {**SLOW, "LOCKGATE__PLUGINS__WATCH__TRUST_EVENTS": "false"}
    w = watch(env)
    n = settle(project, w, env, 0)
    write_through_link(link, "print('ETL')\n")
    warm = run(project, "--json", "stage", "alice:etl", env=env)
    wait_answered(w, n + 1)
    assert json.loads(warm.stdout)["created"] is True


def test_an_overflow_makes_every_scan_read_everything(project: Path, watch: Any) -> None:
    link = project / "main-link.py"
    os.link(project / ETL / "main.py", link)
    env = {**SLOW, "LOCKGATE_FAILPOINTS": "watch.overflow"}
    w = watch(env)
    (project / ETL / "lib/util.py").write_text("X = 2\n")  # the first event: "overflow"
    w.wait_for_stderr("overflowed")
    n = settle(project, w, env, 0)
    write_through_link(link, "print('ETL')\n")
    warm = run(project, "--json", "stage", "alice:etl", env=env)
    wait_answered(w, n + 1)
    assert json.loads(warm.stdout)["created"] is True


def answer(stdout: bytes) -> Any:
    """The JSON answer, but for how many files were hashed: a file written within the
    stat cache's racy window is hashed again, which depends on timing alone."""
    data = json.loads(stdout)
    if isinstance(data, dict):
        data.pop("hashed", None)
    return data


@pytest.mark.slow
def test_changes_are_answered_as_the_cold_command_answers_them(
    project: Path, tmp_path: Path, watch: Any
) -> None:
    component(project, "alice:etl", {"keep/k.py": "K = 1\n"})
    twin = tmp_path / "t" / "p"  # the same path length: the same messages
    shutil.copytree(project, twin)
    link = project / "k-link.py"
    os.link(project / ETL / "keep/k.py", link)
    w = watch(SLOW)
    assert run(twin, "sync", cold=True, env=SLOW).returncode == 0  # as the watcher did
    n = settle(project, w, SLOW, 0)
    settle_twin = [run(twin, "stage", "alice:etl", cold=True, env=SLOW) for _ in range(3)]
    assert all(r.returncode == 0 for r in settle_twin)

    def new_file(root: Path) -> None:
        (root / ETL / "lib/sub/new.py").write_text("N = 1\n")

    def removed_file(root: Path) -> None:
        (root / ETL / "lib/util.py").unlink()

    def renamed_directory(root: Path) -> None:
        (root / ETL / "lib/sub").rename(root / ETL / "lib/moved")

    def replaced_directory(root: Path) -> None:
        # A directory moved away and another moved in under its name, files unchanged
        # in size: only the directory events tell.
        (root / ETL / "lib").rename(root / ETL / "old")
        (root / ETL / "fresh/moved").mkdir(parents=True)
        (root / ETL / "fresh/moved/deep.py").write_text("D = 9\n")
        (root / ETL / "fresh").rename(root / ETL / "lib")

    def edited_deep(root: Path) -> None:
        (root / ETL / "lib/moved/deep.py").write_text("D = 8\n")

    def made_while_moved(root: Path) -> None:
        # A directory made in a new one renamed before the watcher handled the making:
        # watchdog then never watches it (made certain in tests/test_watch_journal.py;
        # here the pause lets the watcher watch the new one first, as a busy machine
        # did once). Its edit below must still be seen.
        (root / ETL / "fresh2").mkdir()
        if root == project:
            time.sleep(0.3)
        (root / ETL / "fresh2/sub").mkdir()
        (root / ETL / "fresh2/sub/s.py").write_text("S = 1\n")
        (root / ETL / "fresh2").rename(root / ETL / "made")

    def edited_unwatched(root: Path) -> None:
        (root / ETL / "made/sub/s.py").write_text("S = 2\n")

    def nothing(root: Path) -> None:
        pass

    steps = [new_file, nothing, removed_file, nothing, renamed_directory, nothing]
    steps += [replaced_directory, nothing, edited_deep, nothing]
    steps += [made_while_moved, edited_unwatched, nothing]
    for step in steps:
        step(project)
        step(twin)
        for args in (["--json", "stage", "alice:etl"], ["--json", "ls", "alice"]):
            warm = run(project, *args, env=SLOW)
            n += 1
            wait_answered(w, n)
            cold = run(twin, *args, cold=True, env=SLOW)
            assert (step.__name__, warm.returncode) == (step.__name__, cold.returncode)
            assert (step.__name__, warm.stderr, answer(warm.stdout)) == (
                step.__name__,
                cold.stderr,
                answer(cold.stdout),
            )
    # After all that, an edit in one directory re-reads that directory only: keep/
    # is taken from the stat cache (its edit through the link is not seen), while the
    # cold command sees it.
    write_through_link(link, "K = 2\n")
    (project / ETL / "lib/moved/deep.py").write_text("D = 7\n")
    warm = json.loads(run(project, "--json", "stage", "alice:etl", env=SLOW).stdout)
    assert warm["created"] and warm["changes"] == {"added": 0, "modified": 1, "removed": 0}
    cold = json.loads(run(project, "--json", "stage", "alice:etl", cold=True, env=SLOW).stdout)
    assert cold["created"] and cold["changes"] == {"added": 0, "modified": 1, "removed": 0}
