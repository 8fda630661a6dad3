"""``lockgate watch``: the real watcher, in a subprocess, against real files.

Every test starts its own ``lockgate --json watch`` on its own project and reads its JSON
lines. Nothing here asserts a duration: "exactly one restage" means the first sync line
arrived (generous timeout), then nothing more for that component during a quiet period
of twice the debounce plus half a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.builtin_plugins.workspace import PathMapper
from lockgate.testing import open_project
from watch_helpers import QUIET, Watchers, component, is_staged, watched_project, write


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return watched_project(tmp_path / "project")


@pytest.fixture
def watch(project: Path) -> Iterator[Any]:
    with Watchers(project) as watchers:
        yield watchers.start


# --------------------------------------------------------------------------- start-up


def test_start_up_stages_what_changed_then_says_ready(project: Path, watch: Any) -> None:
    w = watch()
    ready = w.ready()
    assert ready["components"] == 2 and ready["mode"] == "inotify"
    first = {e["component"]: e for e in w.events if e["event"] == "staged"}
    assert set(first) == {"alice:etl", "alice:load"}
    assert first["alice:etl"]["changes"] == {"added": 2, "modified": 0, "removed": 0}
    assert first["alice:etl"]["latency_ms"] is None  # staged at start-up, not by an event
    assert "summary" in first["alice:etl"]["validation"]
    # A second watcher finds everything staged already: nothing to say but "ready".
    assert w.stop() == 0
    again = watch()
    again.ready()
    assert [e["event"] for e in again.events] == ["ready"]


# --------------------------------------------------------------------------- one per burst


def test_editor_atomic_saves_restage_once_each(project: Path, watch: Any) -> None:
    etl = project / "workspaces/alice/scripts/etl"
    w = watch()
    w.ready()

    # Write a temporary file, then rename it over the original (most editors, IDEs).
    mark = w.mark()
    tmp = etl / ".main.py.tmp1234"
    tmp.write_text("print('etl v2')\n")
    tmp.replace(etl / "main.py")
    event = w.staged("alice:etl", mark)
    assert event["changes"] == {"added": 0, "modified": 1, "removed": 0}
    assert event["latency_ms"] > 0 and event["events"] >= 1
    time.sleep(QUIET)
    assert w.count("alice:etl", mark) == 1

    # vim with backupcopy=no: probe file 4913, swap file, rename to backup~, write, remove.
    mark = w.mark()
    (etl / "4913").write_text("")
    (etl / "4913").unlink()
    (etl / ".main.py.swp").write_bytes(b"\0" * 4096)
    (etl / "main.py").rename(etl / "main.py~")
    (etl / "main.py").write_text("print('etl v3')\n")
    (etl / "main.py~").unlink()
    (etl / ".main.py.swp").unlink()
    event = w.staged("alice:etl", mark)
    assert event["changes"] == {"added": 0, "modified": 1, "removed": 0}
    time.sleep(QUIET)
    assert w.count("alice:etl", mark) == 1
    assert w.count("alice:load", 0) == 1  # only its start-up staging


def test_two_hundred_files_written_at_once_restage_once(project: Path, watch: Any) -> None:
    data = project / "workspaces/alice/scripts/etl/data"
    w = watch()
    w.ready()
    mark = w.mark()
    for i in range(200):
        write(data / f"part-{i // 50}" / f"rows-{i:03d}.csv", f"id,value\n{i},{i * i}\n")
    event = w.staged("alice:etl", mark)
    time.sleep(QUIET)
    events = [e for e in w.since(mark) if e["event"] == "staged"]
    assert len(events) == 1, events
    assert event["changes"] == {"added": 200, "modified": 0, "removed": 0}
    assert event["files"] == 202


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_checkout_restages_each_affected_component_once(project: Path, watch: Any) -> None:
    etl = project / "workspaces/alice/scripts/etl"
    load = project / "workspaces/alice/scripts/load"

    def git(*args: str) -> None:
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
        env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
        subprocess.run(["git", *args], cwd=project, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    git("checkout", "-q", "-b", "feature")
    for i in range(60):
        write(etl / "gen" / f"mod_{i}.py", f"N = {i}\n")
    write(load / "load.py", "print('load v2')\n")
    (etl / "lib/util.py").unlink()
    git("add", "-A")
    git("commit", "-q", "-m", "feature")
    git("checkout", "-q", "main")

    w = watch()
    w.ready()
    mark = w.mark()
    git("checkout", "-q", "feature")
    etl_event = w.staged("alice:etl", mark)
    load_event = w.staged("alice:load", mark)
    time.sleep(QUIET)
    assert w.count("alice:etl", mark) == 1
    assert w.count("alice:load", mark) == 1
    assert etl_event["changes"] == {"added": 60, "modified": 0, "removed": 1}
    assert load_event["changes"] == {"added": 0, "modified": 1, "removed": 0}


def test_new_components_are_picked_up_once(project: Path, watch: Any, tmp_path: Path) -> None:
    (project / "workspaces/alice/configs").mkdir()
    w = watch()
    w.ready()

    # Created in place: a directory, then its files.
    mark = w.mark()
    component(project, "alice:report", {f"q{i}.sql": f"select {i};\n" for i in range(5)})
    event = w.staged("alice:report", mark)
    assert event["changes"]["added"] == 5
    assert event["type"] == "scripts"

    # Prepared elsewhere, then moved in whole (a rename: no file event inside it).
    outside = tmp_path / "elsewhere" / "publish"
    write(outside / "publish.py", "print('publish')\n")
    write(outside / "conf/settings.yaml", "a: 1\n")
    mark2 = w.mark()
    outside.rename(project / "workspaces/alice/configs/publish")
    moved = w.staged("alice:publish", mark2)
    assert moved["changes"]["added"] == 2
    assert moved["type"] == "configs"

    time.sleep(QUIET)
    assert w.count("alice:report", mark) == 1
    assert w.count("alice:publish", mark) == 1


# --------------------------------------------------------------------------- ignored, deleted


def test_ignored_files_restage_nothing(project: Path, watch: Any) -> None:
    (project / ".lockgateignore").write_text("*.log\n")
    etl = project / "workspaces/alice/scripts/etl"
    w = watch()
    w.ready()
    mark = w.mark()
    # Editors' swap, backup and lock files, caches, and a pattern from .lockgateignore.
    (etl / ".main.py.swp").write_bytes(b"swap")
    (etl / ".main.py.swo").write_bytes(b"swap")
    (etl / "main.py~").write_text("backup")
    (etl / "#main.py#").write_text("autosave")
    (etl / ".#main.py").write_text("lock")
    (etl / "main.py.orig").write_text("merge")
    write(etl / "__pycache__" / "main.cpython-311.pyc", "bytecode")
    write(etl / ".git" / "HEAD", "ref: refs/heads/main\n")
    (etl / "run.log").write_text("log line\n")
    # Then a real change elsewhere: once it is synced, the watcher has seen everything above.
    write(project / "workspaces/alice/scripts/load/load.py", "print('load v2')\n")
    w.staged("alice:load", mark)
    time.sleep(QUIET)
    assert w.count("alice:etl", mark) == 0
    assert [e["event"] for e in w.since(mark)] == ["staged"]


def test_deleted_component_is_reported_once_and_stays_staged(project: Path, watch: Any) -> None:
    w = watch()
    w.ready()
    revision = next(e["revision"] for e in w.events if is_staged("alice:load")(e))
    mark = w.mark()
    shutil.rmtree(project / "workspaces/alice/scripts/load")
    event = w.wait_for(lambda e: e["event"] == "deleted", since=mark)
    assert event["component"] == "alice:load"
    assert event["latest_revision"] == revision
    time.sleep(QUIET)
    assert [e["event"] for e in w.since(mark)] == ["deleted"]
    assert w.stop() == 0
    record = open_project(project).state().component("alice:load")
    assert record is not None
    assert record.latest_revision == revision
    assert record.status.value == "staged"


# --------------------------------------------------------------------------- fallback


@pytest.mark.parametrize(
    ("failpoint", "expected"),
    [("watch.inotify", "refuses more file watches"), ("watch.overflow", "overflowed")],
)
def test_polling_fallback_warns_once_and_keeps_syncing(
    project: Path, tmp_path: Path, watch: Any, failpoint: str, expected: str
) -> None:
    env = {"LOCKGATE_FAILPOINTS": failpoint, "LOCKGATE__PLUGINS__WATCH__POLL_INTERVAL_MS": "100"}
    etl = project / "workspaces/alice/scripts/etl"
    w = watch(env=env)
    w.ready()
    # An edit (with watch.overflow, its event is the one that "overflows"), then a new
    # component: both synced after the switch to polling.
    mark = w.mark()
    write(etl / "main.py", "print('etl v2')\n")
    assert w.staged("alice:etl", mark)["changes"]["modified"] == 1
    mark = w.mark()
    # Made elsewhere and moved in: a poll between its mkdir and its write would see an
    # empty file first, and rightly stage twice (a busy machine stretches that gap).
    made = component(tmp_path / "elsewhere", "alice:new", {"new.py": "N = 1\n"})
    made.rename(project / "workspaces/alice/scripts/new")
    w.staged("alice:new", mark)
    time.sleep(QUIET)
    assert w.count("alice:new", mark) == 1
    assert w.stop() == 0
    warnings = [line for line in w.stderr if "warning" in line]
    assert len(warnings) == 1, w.stderr
    assert expected in warnings[0] and "polling" in warnings[0]


def test_force_polling_setting(project: Path, watch: Any) -> None:
    w = watch("--poll", env={"LOCKGATE__PLUGINS__WATCH__POLL_INTERVAL_MS": "100"})
    assert w.ready()["mode"] == "polling"
    mark = w.mark()
    write(project / "workspaces/alice/scripts/etl/main.py", "print('polled')\n")
    assert w.staged("alice:etl", mark)["changes"]["modified"] == 1
    assert w.stop() == 0
    assert not w.stderr


def test_a_directory_watchdog_lost_is_watched_again(project: Path, watch: Any) -> None:
    # watchdog never watches a directory made in a new directory that was moved before
    # it handled the making (a busy machine: here, failpoint watch.lose-watch holds its
    # lock until the move). The watcher watches it again on its next turn, says so with
    # -v, and syncs what it holds; every edit in it after that is synced too.
    etl = project / "workspaces/alice/scripts/etl"
    w = watch(env={"LOCKGATE_FAILPOINTS": "watch.lose-watch"}, verbose=True)
    w.ready()
    mark = w.mark()
    (etl / "lost-fresh").mkdir()
    deadline = time.monotonic() + 30
    while not (etl / "lost-fresh" / "held").exists():  # watchdog's lock is held
        assert time.monotonic() < deadline, w.stderr
        time.sleep(0.01)
    write(etl / "lost-fresh" / "moved" / "deep.py", "D = 1\n")
    (etl / "lost-fresh").rename(etl / "pkg")
    w.wait_for_stderr(f"{etl / 'pkg' / 'moved'}: watched again")
    w.wait_for(lambda e: is_staged("alice:etl")(e) and e["changes"]["added"] >= 2, since=mark)
    mark = w.mark()
    write(etl / "pkg" / "moved" / "deep.py", "D = 2\n")  # an event only with a watch
    assert w.staged("alice:etl", mark)["changes"]["modified"] == 1
    assert w.stop() == 0


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_with_exit_0(project: Path, watch: Any, sig: int) -> None:
    w = watch()
    w.ready()
    assert w.stop(sig) == 0
    assert w.events[-1]["event"] == "stopped"
    assert w.events[-1]["signal"] == signal.Signals(sig).name
    assert not w.stderr


def test_sync_in_flight_finishes_before_stopping(project: Path, watch: Any) -> None:
    # slow-sync holds every sync for 1 s before it stages; -v says when one starts.
    env = {"LOCKGATE_FAILPOINTS": "watch.slow-sync"}
    w = watch("--stage", "staging", env=env, verbose=True)
    w.ready()
    mark = w.mark()
    write(project / "workspaces/alice/scripts/etl/main.py", "print('in flight')\n")
    w.wait_for_stderr("alice:etl: syncing")
    assert w.stop(signal.SIGTERM) == 0
    kinds = [(e["event"], e.get("component")) for e in w.since(mark)]
    assert kinds == [("staged", "alice:etl"), ("stopped", None)]


def test_a_second_signal_stops_at_once(project: Path, watch: Any) -> None:
    w = watch(env={"LOCKGATE_FAILPOINTS": "watch.slow-sync"}, verbose=True)
    w.ready()
    write(project / "workspaces/alice/scripts/etl/main.py", "print('in flight')\n")
    w.wait_for_stderr("alice:etl: syncing")
    w.proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    assert w.stop(signal.SIGINT) == 130
    assert any("interrupted" in line for line in w.stderr)
    assert not any("Traceback" in line for line in w.stderr)


# --------------------------------------------------------------------------- path mapping


def test_path_mapper_follows_the_layout_and_the_ignore_rules() -> None:
    m = PathMapper("/w", ("{workspace}", "{type}", "{component}"), frozenset({"alice"}))
    comp = "/w/alice/scripts/etl"
    assert m.hint(f"{comp}/main.py", is_dir=False) == ("component", "alice", comp)
    assert m.hint(f"{comp}/lib", is_dir=True) == ("component", "alice", comp)
    assert m.hint(comp, is_dir=True) == ("component", "alice", comp)
    assert m.hint(f"{comp}/.lockgateignore", is_dir=False) == ("component", "alice", comp)
    assert m.hint("/w/alice/scripts", is_dir=True) == ("workspace", "alice", "")
    assert m.hint("/w/alice/.lockgateignore", is_dir=False) == ("rescan", "alice", "")
    assert m.hint("/w", is_dir=True) == ("workspace", None, "")
    for ignored in (
        f"{comp}/.main.py.swp",
        f"{comp}/main.py~",
        f"{comp}/.#main.py",
        f"{comp}/#main.py#",
        f"{comp}/4913",
        f"{comp}/.git/index",
        f"{comp}/__pycache__/x.pyc",
        "/w/bob/scripts/etl/main.py",  # not a watched workspace
        "/w/alice/.git/HEAD",  # hidden directory at a layout level
        "/w/alice/scripts/notes.txt",  # a file where a component directory belongs
        "/elsewhere/alice/scripts/etl/x",
        "/wx/alice/scripts/etl/x",
    ):
        assert m.hint(ignored, is_dir=False) is None, ignored
    literal = PathMapper("/w", ("teams", "{workspace}", "{component}"))
    assert literal.hint("/w/teams/bob/etl/a.py", is_dir=False) == (
        "component",
        "bob",
        "/w/teams/bob/etl",
    )
    assert literal.hint("/w/other/bob/etl/a.py", is_dir=False) is None
