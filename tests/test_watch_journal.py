"""The watcher's change journal against watchdog's real inotify observer.

The warm path may skip a directory only when no event touched it since the last scan.
That silence proves nothing when watchdog holds no watch on the directory, and watchdog
can lose one without a word: a directory created inside a new directory is watched by
path when watchdog handles its creation; if its parent was renamed meanwhile, that
fails (ENOENT, skipped), and the rename is then taken as the move of a watched tree, so
the directory is never watched and nothing written in it is reported. Under load the
watcher's threads lag behind the writes and this happens by itself; here it is made
certain by holding watchdog's own lock while the directory is created and its parent
renamed, so watchdog handles both afterwards. Nothing here asserts a duration.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lockgate.builtin_plugins.watcher.observe import (
    EVENT_TYPES,
    _Handler,
    _Item,
    _Journal,
    _watch_coverage,
    _WatchRepair,
    _within,
)
from lockgate.plugin import WARM_COOKIE_PREFIX, WatchHint

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify (Linux) only")
TIMEOUT = 30.0  # for anything waited for: a slow, busy machine must not fail the test


class _NoHints:
    """A mapper that asks for nothing: only the journal is under test."""

    root = ""

    def hint(self, path: str, *, is_dir: bool) -> WatchHint | None:
        return None

    def workspace_of(self, path: str) -> str | None:
        return None


class _Observed:
    """watchdog's inotify observer on ``root``, feeding a journal through the handler."""

    def __init__(self, root: Path) -> None:
        from watchdog.observers.inotify import InotifyObserver

        self.root = root
        self.items: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.journal = _Journal()
        self.observer = InotifyObserver()
        handler = _Handler(_NoHints(), self.items.put, self.journal)  # type: ignore[arg-type]
        self.observer.schedule(handler, str(root), recursive=True, event_filter=EVENT_TYPES)
        self.observer.start()
        self.journal.watched = _watch_coverage(self.observer)
        self._cookies = 0

    def group(self) -> Any:
        """watchdog's watch group (its lock is held while it handles an event)."""
        (emitter,) = self.observer.emitters
        return emitter._inotify  # type: ignore[attr-defined]

    def barrier(self) -> None:
        """Write a cookie and wait for its event, as the warm path does: every event
        from before it has then reached the journal."""
        self._cookies += 1
        name = f"{WARM_COOKIE_PREFIX}test-{self._cookies}"
        (self.root / name).touch()
        while True:
            item = self.items.get(timeout=TIMEOUT)
            if item.kind == "cookie" and item.message == name:
                return

    def wait_until(self, predicate: Callable[[], bool]) -> None:
        for _ in range(int(TIMEOUT / 0.01)):
            if predicate():
                return
            time.sleep(0.01)
        raise AssertionError("watchdog never got there")

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)


@pytest.fixture
def observed(tmp_path: Path) -> Any:
    root = tmp_path / "w"
    (root / "c" / "keep").mkdir(parents=True)
    (root / "c" / "keep" / "k.py").write_text("K = 1\n")
    watched = _Observed(root)
    yield watched
    watched.stop()


def test_a_directory_watchdog_never_watched_is_never_vouched_for(observed: _Observed) -> None:
    c = observed.root / "c"
    watched = observed.journal.watched
    if watched is None:  # another watchdog: the journal is then never trusted at all
        observed.journal.trusted = True
        assert observed.journal.changed(observed.journal.generation()) is None
        return
    (c / "fresh").mkdir()
    observed.wait_until(lambda: watched(str(c / "fresh")))
    with observed.group()._lock:  # watchdog handles what follows only after the rename
        (c / "fresh" / "moved").mkdir()
        (c / "fresh" / "moved" / "deep.py").write_text("D = 9\n")
        (c / "fresh").rename(c / "lib")
    observed.barrier()
    assert watched(str(c / "lib")) and not watched(str(c / "lib" / "moved"))  # lost
    since = observed.journal.generation()  # a scan that read everything after the move
    (c / "lib" / "moved" / "deep.py").write_text("D = 8\n")  # no event: no watch there
    observed.barrier()
    assert observed.journal.generation() == since  # not one event (cookies are not recorded)
    observed.journal.trusted = True
    changed = observed.journal.changed(since)
    assert changed is not None
    assert changed(str(c / "lib" / "moved"))  # no watch: read again, never vouched for
    assert str(c / "lib" / "moved") in observed.journal.unwatched
    assert not changed(str(c / "lib")) and not changed(str(c / "keep"))  # watched, quiet


def test_the_watcher_watches_again_what_watchdog_lost(observed: _Observed) -> None:
    """What the watch loop does each turn (observe._WatchRepair): a directory whose watch
    watchdog lost is watched again, and what is written in it is reported from then on."""
    c = observed.root / "c"
    repair = _WatchRepair.of(observed.observer, observed.journal)
    watched = observed.journal.watched
    if repair is None or watched is None:  # another watchdog: nothing to repair with
        return
    (c / "fresh").mkdir()
    observed.wait_until(lambda: watched(str(c / "fresh")))
    observed.barrier()
    assert repair() == []  # a directory made and watched in order: nothing lost
    with observed.group()._lock:
        (c / "fresh" / "moved" / "deeper").mkdir(parents=True)
        (c / "fresh").rename(c / "lib")
    (c / "gone").mkdir()
    (c / "gone").rmdir()  # an event on a directory that is no longer there
    observed.barrier()
    assert not watched(str(c / "lib" / "moved"))
    assert repair() == [str(c / "lib" / "moved")]  # the top of what was lost
    assert watched(str(c / "lib" / "moved")) and watched(str(c / "lib" / "moved" / "deeper"))
    assert repair() == []  # the events taken: nothing left to look at
    since = observed.journal.generation()
    (c / "lib" / "moved" / "deeper" / "new.py").write_text("N = 1\n")
    observed.barrier()
    assert observed.journal.generation() > since  # reported now
    observed.journal.trusted = True
    changed = observed.journal.changed(since)
    assert changed is not None and changed(str(c / "lib" / "moved" / "deeper"))


def test_directory_events_are_kept_only_while_a_repair_takes_them() -> None:
    """A watcher that polls (no watch to repair), or whose watchdog offers no repair,
    keeps no list of directory events growing for as long as it runs."""
    journal = _Journal()
    journal.record("/w/c/new", True)  # no repair registered
    journal.repairing, journal.watched = True, lambda directory: True
    journal.record("/w/c/made", True)
    journal.record("/w/c/made/file.py", False)  # a file: not a directory event
    assert journal.take_directories() == ["/w/c/made"]
    assert journal.take_directories() == []
    journal.watched = None  # fallen back to polling
    journal.record("/w/c/later", True)
    assert journal.take_directories() == []


def test_a_repair_walks_each_tree_once_and_only_trees_under_a_walked_one_are_skipped() -> None:
    walked = {"/w/c/lib"}
    assert _within("/w/c/lib/sub", walked) and _within("/w/c/lib/sub/deeper", walked)
    assert not _within("/w/c/lib", walked)  # the top itself is walked, not skipped
    assert not _within("/w/c/lib-old", walked) and not _within("/w/c/li", walked)
    assert not _within("/", {"/"}) and _within("/w", {"/"})
