"""What the watch loop asks of watchdog: events in, hints out, and the observer's health.

Everything here runs on watchdog's threads (:class:`_Handler`, :class:`_WatchdogLog`) or
inspects the observer for the loop (:func:`_unwatched_directories`); nothing touches
the project. The loop itself is :mod:`lockgate.builtin_plugins.watcher.engine`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import watchdog.events
from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from lockgate.plugin import (
    WARM_COOKIE_PREFIX,
    WatchHint,
    WatchPaths,
)

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

__all__ = [
    "EVENT_TYPES",
    "LIMIT_ERRNOS",
    "Hint",
    "_Handler",
    "_Item",
    "_Journal",
    "_WatchRepair",
    "_WatchdogLog",
    "_describe",
    "_mode_name",
    "_readable",
    "_shutdown",
    "_unwatched_directories",
    "_watch_coverage",
]

Hint = WatchHint

# watchdog >= 7 reports lost events as an event too (only when the filter lists it); an
# older one only in its log (_WatchdogLog).
EventsLostEvent: type[FileSystemEvent] | None = getattr(watchdog.events, "EventsLostEvent", None)

LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM})
"""Errors that mean "the platform will not watch more": fall back to polling."""

# Only events that can change what a scan sees: no open/close-without-write (staging reads
# files, which would otherwise wake the watcher again), no directory "modified" echoes.
EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    DirAttribEvent,  # a directory made unreadable: what a scan would find (the journal)
    *([EventsLostEvent] if EventsLostEvent is not None else []),
]


class _Item(NamedTuple):
    """What crosses from other threads (and signal handlers) to the loop."""

    kind: str  # "hint", "overflow", "log", "signal", "cookie" or "request"
    at: float
    hint: Hint | None = None
    message: str = ""
    request: object = None  # a warm path request (lockgate.builtin_plugins.watcher.warm)


class _Journal:
    """The watcher's :class:`~lockgate.plugin.ChangeJournal`: which directories had
    events, by generation (one per event), kept on watchdog's threads.

    A file event marks its directory; a directory event marks the directory as a whole
    (everything under it) and its parent. :meth:`changed` answers only while
    :attr:`trusted` (set by the warm path once its cookie arrived: every event from
    before the request has been recorded), when no event was lost since the generation
    asked about (a queue overflow, any watchdog warning, polling), and when
    :attr:`watched` can tell which directories have a watch (:func:`_watch_coverage`).

    No event is no proof of no change unless the directory is watched: a directory
    without a watch is always "changed" (read again). watchdog can lose one without a
    word: a directory created in a new directory and moved along with it before
    watchdog handled its creation is never watched (tests/test_watch_journal.py).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gen = 0
        self._lost = 0
        self._files: dict[str, int] = {}  # a directory an entry of which changed
        self._trees: dict[str, int] = {}  # a directory changed as a whole
        self.trusted = False
        # Set once the observer runs (:func:`_watch_coverage`); None: never trusted.
        self.watched: Callable[[str], bool] | None = None
        self.unwatched: set[str] = set()  # directories found without a watch (-v notes)
        # Directory events since the last take, kept only for a _WatchRepair (which takes
        # them every turn) and while there is a watch to repair (not once polling).
        self._directories: list[str] = []
        self.repairing = False
        self.on_directory: Callable[[str], None] | None = None  # a failpoint's (tests)

    def record(self, path: str, is_dir: bool) -> None:
        parent = path.rpartition(os.sep)[0] or os.sep
        with self._lock:
            self._gen += 1
            self._files[parent] = self._gen
            if is_dir:
                self._trees[path] = self._gen
                if self.repairing and self.watched is not None:
                    self._directories.append(path)
        if is_dir and self.on_directory is not None:
            self.on_directory(path)

    def take_directories(self) -> list[str]:
        """The paths of directory events (made, moved, removed) since the last take."""
        with self._lock:
            taken, self._directories = self._directories, []
        return taken

    def lose(self) -> None:
        """Events were (or may have been) lost: nothing recorded so far can be trusted."""
        with self._lock:
            self._gen += 1
            self._lost = self._gen

    def generation(self) -> int:
        return self._gen

    def changed(self, since: int) -> Callable[[str], bool] | None:
        watched = self.watched
        if not self.trusted or self._lost > since or watched is None:
            return None

        def test(directory: str) -> bool:
            if not watched(directory):
                self.unwatched.add(directory)
                return True
            with self._lock:
                if self._files.get(directory, 0) > since:
                    return True
                trees, path = self._trees, directory
                while True:
                    if trees.get(path, 0) > since:
                        return True
                    up = path.rpartition(os.sep)[0] or os.sep
                    if up == path:
                        return False
                    path = up

        return test


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's thread: events in, hints out; never touches the project."""

    def __init__(
        self, mapper: WatchPaths, put: Callable[[_Item], None], journal: _Journal | None = None
    ) -> None:
        super().__init__()
        self._mapper = mapper
        self._put = put
        self._journal = journal or _Journal()

    def dispatch(self, event: FileSystemEvent) -> None:
        at = time.monotonic()
        if EventsLostEvent is not None and isinstance(event, EventsLostEvent):
            self._journal.lose()
            self._put(_Item("overflow", at, message="watchdog: events lost"))
            return
        for raw in (event.src_path, event.dest_path):
            if raw:
                path = os.fsdecode(raw)
                name = path.rpartition(os.sep)[2]
                if name.startswith(WARM_COOKIE_PREFIX):  # the warm path's (watcher/warm.py)
                    self._put(_Item("cookie", at, message=name))
                    continue
                self._journal.record(path, event.is_directory)
                hint = self._mapper.hint(path, is_dir=event.is_directory)
                if hint is not None:
                    self._put(_Item("hint", at, hint))


class _WatchdogLog(logging.Handler):
    """watchdog reports a kernel queue overflow only in its log: turn that into an item."""

    def __init__(self, put: Callable[[_Item], None], journal: _Journal | None = None) -> None:
        super().__init__(logging.WARNING)
        self._put = put
        self._journal = journal or _Journal()

    def emit(self, record: logging.LogRecord) -> None:
        self._journal.lose()  # an overflow, an emitter error: events may be missing
        message = record.getMessage()
        kind = "overflow" if "overflow" in message.lower() else "log"
        self._put(_Item(kind, time.monotonic(), message=message))


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "error")
    return f"{name}: {exc.strerror or exc}"


def _mode_name(observer: BaseObserver) -> str:
    name = type(observer).__name__
    return name.removesuffix("Observer").lower() or name


def _shutdown(observer: BaseObserver) -> None:
    with contextlib.suppress(Exception):
        observer.stop()
    with contextlib.suppress(RuntimeError):
        observer.join(timeout=5)


def _watch_coverage(observer: BaseObserver) -> Callable[[str], bool] | None:
    """A test of whether watchdog's inotify observer holds a watch on a directory now.

    It reads watchdog's inotify internals (>= 7: a tree of nodes from the watched root,
    one per directory, each with its watch descriptor): a directory is watched when its
    node is there and its descriptor maps back to it. None when those internals are not
    there (another platform or watchdog version): then the journal is never trusted,
    since events alone cannot vouch for a directory that may have no watch. About 3 us
    of CPU a directory (depth 9, under load), the cost of one warm scan per directory.
    """
    groups = [getattr(emitter, "_inotify", None) for emitter in observer.emitters]
    names = ("_lock", "_root", "_nodes_by_wd", "path")
    if len(groups) != 1 or not all(hasattr(groups[0], name) for name in names):
        return None
    group: Any = groups[0]

    def watched(directory: str) -> bool:
        path = os.fsencode(directory)
        with group._lock:  # held by watchdog's own thread while it changes the tree
            node, top = group._root, group.path
            if path != top:
                if node is None or not path.startswith(top.rstrip(b"/") + b"/"):
                    return False
                for part in path[len(top.rstrip(b"/")) + 1 :].split(b"/"):
                    node = node.children.get(part)
                    if node is None:
                        return False
            return node is not None and group._nodes_by_wd.get(node.wd) is node

    return watched


class _WatchRepair:
    """Watch again what watchdog lost: a directory made inside a new directory that was
    moved before watchdog handled its making (``mkdir -p fresh/sub; mv fresh lib``,
    quicker than its thread) is never watched, and nothing written in it is reported.

    The loop calls it each turn, before acting on due hints: it looks at the directory
    events since its last call (:meth:`_Journal.take_directories`), and under each that
    still exists finds the directories without a watch (:func:`_watch_coverage`) and has
    watchdog watch them, as it does a tree moved in from outside (``_add_all_callbacks``,
    under its lock). Only with watchdog's inotify internals, as the coverage test;
    :meth:`of` is None without them. A directory that still has no watch after that
    (the platform's limit) is left to watchdog's warning and the polling fallback.
    """

    def __init__(self, group: Any, journal: _Journal, watched: Callable[[str], bool]) -> None:
        self._group, self._journal, self._watched = group, journal, watched

    @classmethod
    def of(
        cls, observer: BaseObserver, journal: _Journal, failpoints: Collection[str] = ()
    ) -> _WatchRepair | None:
        groups = [getattr(emitter, "_inotify", None) for emitter in observer.emitters]
        if journal.watched is None or len(groups) != 1:
            return None
        if not all(hasattr(groups[0], name) for name in ("_lock", "_add_all_callbacks")):
            return None
        repair = cls(groups[0], journal, journal.watched)
        journal.repairing = True
        if "watch.lose-watch" in failpoints:
            journal.on_directory = repair._lose_watch
        return repair

    def _lose_watch(self, path: str) -> None:
        """Failpoint ``watch.lose-watch`` (tests): once a directory named ``lost-*`` is
        made, hold watchdog's lock (saying so with a file ``held`` in it) until the
        directory is moved away, so that watchdog handles what was made in it meanwhile
        only after the move: what a busy machine does, and how it loses a watch."""
        directory = Path(path)
        if not directory.name.startswith("lost-") or not directory.is_dir():
            return
        with self._group._lock:
            (directory / "held").touch()
            deadline = time.monotonic() + 10
            while directory.is_dir() and time.monotonic() < deadline:
                time.sleep(0.01)

    def __call__(self) -> list[str]:
        """The directories watched again (each the top of what was lost under it)."""
        again: list[str] = []
        walked: set[str] = set()
        for top in sorted(set(self._journal.take_directories())):  # parents first
            if _within(top, walked):
                continue  # walked already with a directory above it
            walked.add(top)
            for directory, subdirectories, _ in os.walk(top):  # never follows a symlink
                if not self._watched(directory):
                    with self._group._lock:
                        self._group._add_all_callbacks(os.fsencode(directory))
                    if self._watched(directory):
                        again.append(directory)
                    subdirectories.clear()  # watched with it, or left to the fallback
        return again


def _within(path: str, tops: set[str]) -> bool:
    """Whether a directory above ``path`` is one of ``tops`` (one lookup a level)."""
    up = path.rpartition(os.sep)[0] or os.sep
    while up != path:
        if up in tops:
            return True
        path, up = up, up.rpartition(os.sep)[0] or os.sep
    return False


def _unwatched_directories(observer: BaseObserver, root: str) -> list[bytes]:
    """Directories inotify silently failed to watch (it raises only for the top one).

    watchdog registers one inotify watch per directory and skips, without a word, those
    it could not add — which is what hitting ``fs.inotify.max_user_watches`` part-way
    through a tree looks like. This compares its watches with the tree. It reads
    watchdog's inotify internals, so on another platform or version it checks nothing.
    """
    watched: set[bytes] = set()
    for emitter in observer.emitters:
        group = getattr(emitter, "_inotify", None)
        paths = getattr(group, "_active_callbacks_by_path", None)
        if not isinstance(paths, dict):
            return []
        watched.update(paths)
    expected = [os.fsencode(root)]
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            full = Path(dirpath, name)
            if not full.is_symlink():
                expected.append(os.fsencode(full))
    missing = [p for p in expected if p not in watched]
    if missing:
        time.sleep(0.2)  # directories created meanwhile get their watch from their own event
        for emitter in observer.emitters:
            group = getattr(emitter, "_inotify", None)
            watched.update(getattr(group, "_active_callbacks_by_path", {}))
        missing = [p for p in missing if p not in watched and Path(os.fsdecode(p)).is_dir()]
    # A directory that cannot be read cannot be watched either: not a limit (discovery
    # and scans report it as that directory's problem).
    return [p for p in missing if _readable(p)]


def _readable(path: bytes) -> bool:
    try:
        os.scandir(path).close()
    except PermissionError:
        return False
    except OSError:
        pass
    return True
