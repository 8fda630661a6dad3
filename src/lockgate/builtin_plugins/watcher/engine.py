"""The watch loop behind ``lockgate watch``.

Threads: watchdog's observer threads only turn file events into *hints* — "rescan this
component", "rediscover this workspace" — and put them on a queue. Everything that
touches the project (scans, the stat cache, staging, the state store, validation,
output) runs on the one thread that called :meth:`Watcher.run`, one sync at a time.
Signal handlers only set a flag (and wake the queue); the loop checks it between syncs,
so a sync in flight always finishes.

Debouncing is per hint: a component is synced once no event touched it for
``debounce_ms`` (or ``max_wait_ms`` after its first event, for files that never go
quiet). Which directory is watched and which events matter is the component source's
to say, through its ``watch_paths()`` capability (:class:`~lockgate.plugin.Watchable`):
any source that offers it can be watched. Staging, syncing and validating go through
the plugin context's operations (:class:`~lockgate.plugin.Operations`), exactly as
``lockgate stage``, ``sync`` and ``validate`` run them.

Failpoints for tests (``LOCKGATE_FAILPOINTS``, comma-separated): ``watch.inotify`` makes
the platform observer refuse its watch with ENOSPC; ``watch.overflow`` reports an event
queue overflow on the first hint; ``watch.slow-sync`` sleeps one second at the start of
every sync; ``watch.lose-watch`` has watchdog lose the watch of a directory made in a
new ``lost-*`` directory that is then moved (observe._WatchRepair).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import queue
import signal
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import attrs

from lockgate.builtin_plugins.watcher.observe import (
    EVENT_TYPES,
    LIMIT_ERRNOS,
    _describe,
    _Handler,
    _Item,
    _Journal,
    _mode_name,
    _shutdown,
    _unwatched_directories,
    _watch_coverage,
    _WatchdogLog,
    _WatchRepair,
)
from lockgate.builtin_plugins.watcher.output import (
    FAILPOINTS_ENV,
    Output,
    _ms,
    _plural,
    failpoints,
)
from lockgate.builtin_plugins.watcher.settings import WatchSettings
from lockgate.builtin_plugins.watcher.warm import WarmServer
from lockgate.plugin import (
    Component,
    ComponentRef,
    ConflictError,
    InputError,
    Issue,
    LockgateError,
    NotFoundError,
    PluginContext,
    StageResult,
    TrustsEvents,
    Watchable,
    WatchHint,
    WatchPaths,
    now_iso,
    short,
)

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

__all__ = ["FAILPOINTS_ENV", "Hint", "Output", "Watcher", "failpoints"]

Hint = WatchHint
"""What an event asks for (:class:`~lockgate.plugin.WatchHint`)."""

TICK = 0.5
"""Longest the loop blocks on an empty queue (signals also wake it at once)."""
CONFLICT_RETRIES = 3
"""A component whose files change while it is staged is retried this often, then failed."""


@attrs.define
class _Pending:
    """A hint waiting for its burst to end."""

    first: float
    last: float
    events: int = 1
    attempts: int = 0


class Watcher:
    """``lockgate watch``: sync components as their files change, until a signal."""

    def __init__(
        self,
        context: PluginContext,
        *,
        workspaces: Sequence[str] = (),
        stage: str | None = None,
        settings: WatchSettings | None = None,
        output: Output | None = None,
    ) -> None:
        ops = context.operations
        source = ops.source()
        if not isinstance(source, Watchable):
            raise InputError(
                f"lockgate watch cannot watch the component source ({source.__class__.__name__} "
                "has no watch_paths()); use a source that can be watched, or 'lockgate sync'"
            )
        self.ops = ops
        self.source = source
        self.stage = ops.check_stage(stage)
        self._validate_for = stage  # None: validation's own default (the next stage)
        self.settings = settings or WatchSettings()
        self.out = output or Output()
        self.workspaces = tuple(dict.fromkeys(workspaces))
        self.mapper: WatchPaths = source.watch_paths(list(self.workspaces) or None)
        self.root = self.mapper.root
        self.failpoints = failpoints(ops.environ)
        self.debounce = self.settings.debounce_ms / 1000
        self.max_wait = self.settings.max_wait_ms / 1000
        # SimpleQueue.put is reentrant: safe from watchdog's threads and signal handlers.
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.journal = _Journal()
        self._handler = _Handler(self.mapper, self._queue.put, self.journal)
        self._pending: dict[Hint, _Pending] = {}
        self._known: dict[ComponentRef, Component] = {}
        self._by_path: dict[str, Component] = {}
        self._problems: set[tuple[str, str]] = set()
        self._observer: BaseObserver | None = None
        self._repair: _WatchRepair | None = None  # None: polling, or no inotify internals
        self._mode = ""
        self._overflow_failpoint = "watch.overflow" in self.failpoints
        self._logged: set[str] = set()
        self._stop_signal: int | None = None
        self._syncs = 0
        self.warm = WarmServer(
            context.project_root, self.root, ops, self._queue.put, self.out, self.journal
        )
        self._failed = 0

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> None:
        """Watch until SIGINT or SIGTERM; then print a final line and return."""
        started = time.monotonic()
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        log_handler = _WatchdogLog(self._queue.put, self.journal)
        watchdog_log = logging.getLogger("watchdog")
        watchdog_log.addHandler(log_handler)
        try:
            if not Path(self.root).is_dir():
                raise NotFoundError(
                    f"no workspaces directory {self.root}; create it ('lockgate init' does) "
                    "or set plugins.workspace.root"
                )
            self._start_observer()
            self._initial_sync()
            if self.settings.warm:  # after the observer (its cookies need its events)
                self.warm.start()
            if self._stop_signal is None:
                self._ready(started)
                self._loop()
        finally:
            self._trust(False)
            self.warm.stop()
            self._stop_observer()
            watchdog_log.removeHandler(log_handler)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self._stopped(started)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_signal is not None:
            # A second signal: stop at once (exit 130). Still safe: objects are renamed into
            # place whole and a revision is recorded in one transaction, or not at all.
            raise KeyboardInterrupt
        self._stop_signal = signum
        self._queue.put(_Item("signal", time.monotonic()))

    def _ready(self, started: float) -> None:
        elapsed = (time.monotonic() - started) * 1000
        n = len(self._known)
        self.out.emit(
            {
                "event": "ready",
                "root": self.root,
                "workspaces": list(self.workspaces) or None,
                "stage": self.stage,
                "mode": self._mode,
                "components": n,
                "debounce_ms": self.settings.debounce_ms,
                "startup_ms": round(elapsed, 1),
            },
            f"watching {_plural(n, 'component')} under {self.root} ({self._mode}, debounce "
            f"{self.settings.debounce_ms} ms) for {self.stage}; ready in {elapsed:.0f} ms "
            "(Ctrl-C stops)",
        )

    def _stopped(self, started: float) -> None:
        name = signal.Signals(self._stop_signal).name if self._stop_signal else None
        uptime = time.monotonic() - started
        self.out.emit(
            {
                "event": "stopped",
                "signal": name,
                "revisions": self._syncs,
                "failed": self._failed,
                "uptime_s": round(uptime, 3),
            },
            f"stopped ({name}): {_plural(self._syncs, 'new revision')}, {self._failed} failed, "
            f"in {uptime:.1f} s",
        )

    # ------------------------------------------------------------------ observers

    def _start_observer(self) -> None:
        if self.settings.force_polling:
            self._start_polling()
            return
        try:
            self._observer = self._native_observer()
        except OSError as exc:
            if exc.errno not in LIMIT_ERRNOS:
                raise InputError(
                    f"{self.root}: cannot watch it ({exc.strerror or exc}); "
                    "check its permissions, or use --poll"
                ) from exc
            self._fallback(f"the platform refuses more file watches ({_describe(exc)})")
            return
        self._mode = _mode_name(self._observer)
        self.journal.watched = _watch_coverage(self._observer)
        self._repair = _WatchRepair.of(self._observer, self.journal, self.failpoints)
        self._trust(self.settings.trust_events)

    def _trust(self, on: bool) -> None:
        """Let the source answer scans from the events (only while they are platform
        events: never under polling, and never again once some were lost)."""
        if isinstance(self.source, TrustsEvents):
            self.source.use_journal(self.journal if on else None)

    def _native_observer(self) -> BaseObserver:
        from watchdog.observers import Observer

        if "watch.inotify" in self.failpoints:
            raise OSError(errno.ENOSPC, "inotify watch limit reached (failpoint watch.inotify)")
        observer = Observer()
        try:
            observer.schedule(self._handler, self.root, recursive=True, event_filter=EVENT_TYPES)
            observer.start()
            missing = _unwatched_directories(observer, self.root)
            if missing:
                raise OSError(
                    errno.ENOSPC,
                    f"inotify watch limit reached: {_plural(len(missing), 'directory')} "
                    f"not watched, e.g. {os.fsdecode(missing[0])}",
                )
        except BaseException:
            _shutdown(observer)
            raise
        return observer

    def _start_polling(self) -> None:
        from watchdog.observers.polling import PollingObserverVFS

        # lstat, not stat: never follow a symlink (``dot -> .`` would recurse forever),
        # the way scans never do.
        observer = PollingObserverVFS(
            os.lstat, os.scandir, polling_interval=self.settings.poll_interval_ms / 1000
        )
        observer.schedule(self._handler, self.root, recursive=True, event_filter=EVENT_TYPES)
        observer.start()  # takes the first snapshot
        self._observer = observer
        self._mode = "polling"

    def _fallback(self, reason: str) -> None:
        """Warn once and poll the tree from now on; rescan everything when events were lost."""
        if self._mode == "polling":
            return
        running = self._observer is not None
        self.journal.lose()
        self.journal.watched = self._repair = None
        self._trust(False)
        self._stop_observer()
        self._start_polling()
        self.out.warn(
            f"{reason}; polling {self.root} every {self.settings.poll_interval_ms} ms instead "
            "(see 'Fallback' in docs/watcher.md)"
        )
        if running:
            now = time.monotonic()
            self._pending[Hint("rescan", None)] = _Pending(now, now)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            _shutdown(observer)

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        get = self._queue.get
        while self._stop_signal is None:
            item: _Item | None
            try:
                item = get(timeout=self._timeout())
            except queue.Empty:
                item = None
            while item is not None:
                self._absorb(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if self._stop_signal is None:
                self._watch_again()
                self._process_due()

    def _watch_again(self) -> None:
        """Watch again what watchdog lost (observe._WatchRepair); sync what it holds."""
        for directory in self._repair() if self._repair is not None else ():
            self.out.note(f"{directory}: watched again (watchdog had lost its file watch)")
            hint = self.mapper.hint(directory, is_dir=True)
            if hint is not None:
                self._absorb(_Item("hint", time.monotonic(), hint))

    def _deadline(self, pending: _Pending) -> float:
        return min(pending.last + self.debounce, pending.first + self.max_wait)

    def _timeout(self) -> float:
        if not self._pending:
            return TICK
        soonest = min(self._deadline(p) for p in self._pending.values())
        return min(max(soonest - time.monotonic(), 0.0), TICK)

    def _absorb(self, item: _Item) -> None:
        if item.kind == "hint" and item.hint is not None:
            pending = self._pending.get(item.hint)
            if pending is None:
                self._pending[item.hint] = _Pending(item.at, item.at)
            else:
                pending.last = max(pending.last, item.at)
                pending.events += 1
            if self._overflow_failpoint and self._mode != "polling":
                self._overflow_failpoint = False
                self._queue.put(_Item("overflow", item.at, message="failpoint watch.overflow"))
        elif item.kind == "overflow":
            self._fallback("the file event queue overflowed and events were lost")
        elif item.kind in ("request", "cookie"):
            get = functools.partial(self._queue.get, True)  # get(timeout)
            self.warm.answer(item, get, self._absorb, self._mode == "polling")
        elif item.kind == "log" and item.message not in self._logged:
            self._logged.add(item.message)
            self.out.note(f"watchdog: {item.message}")

    def _process_due(self) -> None:
        now = time.monotonic()
        due = [(h, p) for h, p in self._pending.items() if self._deadline(p) <= now]
        for hint, _ in due:
            del self._pending[hint]
        # Discovery first: a component that appeared is then known when its own hint runs.
        due.sort(key=lambda hp: (hp[0].kind == "component", hp[0].path))
        for hint, pending in due:
            if self._stop_signal is not None:
                return  # nothing half-done: the hints left are simply not acted on
            self._process(hint, pending)

    def _process(self, hint: Hint, pending: _Pending) -> None:
        """Act on one due hint; a failure is reported and the watcher goes on."""
        try:
            self._act(hint, pending)
        except LockgateError as exc:
            self._fail(hint.path or hint.workspace or self.root, exc.message)
        except OSError as exc:  # a directory that cannot be read, say
            where = exc.filename if isinstance(exc.filename, str) else hint.path or self.root
            self._fail(where, f"cannot be read ({exc.strerror or exc}); fix its permissions")

    def _act(self, hint: Hint, pending: _Pending) -> None:
        if hint.kind == "component":
            component = self._by_path.get(hint.path)
            if component is not None and component.path.is_dir():
                self._sync(component, pending, hint)
            else:
                self._rediscover(hint.workspace, pending, trigger=hint.path)
        elif hint.kind == "workspace":
            self._rediscover(hint.workspace, pending)
        else:
            self._rediscover(hint.workspace, pending)
            self._sync_all(hint.workspace, pending)

    def _repend(self, hint: Hint, pending: _Pending) -> None:
        """Wait for another quiet period before acting on ``hint`` again."""
        pending.last = time.monotonic()
        current = self._pending.get(hint)
        if current is None:
            self._pending[hint] = pending
        else:
            current.first = min(current.first, pending.first)
            current.attempts = pending.attempts

    # ------------------------------------------------------------------ discovery

    def _names(self, workspace: str | None) -> list[str] | None:
        if workspace is not None:
            return [workspace]
        return list(self.workspaces) or None

    def _initial_sync(self) -> None:
        discovery = self.source.discover(self._names(None))
        self._known = {c.ref: c for c in discovery.components}
        self._reindex()
        self._report_problems(discovery.problems, None)
        for ws in self.workspaces:
            if not any(ref.workspace == ws for ref in self._known):
                self.out.warn(f"no component in workspace '{ws}' under {self.root} yet")
        self._sync_all(None, None)

    def _rediscover(self, workspace: str | None, pending: _Pending, trigger: str = "") -> None:
        discovery = self.source.discover(self._names(workspace))
        found = {c.ref: c for c in discovery.components}
        for ref in sorted(self._known):
            gone = self._known[ref]
            if workspace is not None and ref.workspace != workspace:
                continue
            # A component whose directory is still there is broken (its component.yaml, say),
            # not deleted: staging it reports why.
            if ref not in found and not gone.path.is_dir():
                del self._known[ref]
                self._deleted(gone)
        new = [c for c in discovery.components if c.ref not in self._known]
        self._known.update(found)
        self._reindex()
        self._report_problems(discovery.problems, workspace)
        for component in new:
            hint = Hint("component", component.ref.workspace, str(component.path))
            if hint.path != trigger and hint in self._pending:
                continue  # still being written: its own hint syncs it once quiet
            if self._settling(component):
                # Created moments ago (its directory changed within the debounce period):
                # its files may still be on their way, and their events may come only with
                # the next poll. Wait for a quiet period of its own, as for any burst.
                now = time.monotonic()
                self._repend(hint, _Pending(now, now))
                continue
            self._sync(component, pending, hint)

    def _settling(self, component: Component) -> bool:
        try:
            changed = component.path.stat().st_mtime
        except OSError:
            return False  # gone again: syncing it reports that
        return time.time() - changed < self.debounce

    def _reindex(self) -> None:
        self._by_path = {str(c.path): c for c in self._known.values()}

    def _report_problems(self, problems: Iterable[Issue], workspace: str | None) -> None:
        current = {(p.path or "?", p.message) for p in problems}
        for where, message in sorted(current - self._problems):
            self._fail(where, message)
        if workspace is None:
            self._problems = current
        else:
            kept = {p for p in self._problems if self.mapper.workspace_of(p[0]) != workspace}
            self._problems = kept | current

    def _deleted(self, component: Component) -> None:
        ref = str(component.ref)
        latest: str | None = None
        kept = "it was never staged"
        try:
            latest = self.ops.latest_revision(ref)
        except LockgateError:  # the state store is busy: the line is still worth printing
            kept = "its revisions stay as they are (nothing is unstaged)"
        else:
            if latest:
                kept = f"revision {short(latest)} and its status stay (nothing is unstaged)"
        self.out.emit(
            {
                "event": "deleted",
                "component": ref,
                "path": str(component.path),
                "latest_revision": latest,
                "at": now_iso(),
            },
            f"{ref}: deleted from the workspace; {kept}",
        )

    # ------------------------------------------------------------------ syncing

    def _sync(self, component: Component, pending: _Pending, hint: Hint) -> None:
        ref = str(component.ref)
        self.out.note(f"{ref}: syncing ({_plural(pending.events, 'event')})")
        if "watch.slow-sync" in self.failpoints:
            time.sleep(1.0)
        started = time.monotonic()
        try:
            result = self.ops.stage(component, to=self.stage)
        except NotFoundError:
            # Gone or renamed since the event: find out which.
            self._repend(Hint("workspace", component.ref.workspace), pending)
            return
        except ConflictError as exc:
            # Files changed while they were read (or the state store is busy): try again
            # after another quiet period, a few times.
            if pending.attempts < CONFLICT_RETRIES:
                pending.attempts += 1
                self._repend(hint, pending)
                return
            self._fail(ref, exc.message)
            return
        except LockgateError as exc:
            self._fail(ref, exc.message)
            return
        if result.created:
            self._staged(result, pending, started)
        else:
            self.out.note(f"{ref}: unchanged at {short(result.revision)}")

    def _sync_all(self, workspace: str | None, pending: _Pending | None) -> None:
        """Stage every component that changed (one discovery, stat cache scans)."""
        result = self.ops.sync(self._names(workspace), to=self.stage)
        for staged in result.results:
            if staged.created:
                self._staged(staged, pending, None)
        for where, reason in result.failures:
            if (where, reason) not in self._problems:  # discovery problems: reported already
                self._fail(where, reason)

    def _staged(self, result: StageResult, pending: _Pending | None, started: float | None) -> None:
        """Validate a new revision and print its line (``started``: when its staging began)."""
        staged_at = time.monotonic()
        ready, summary, report = self._validate(result.component)
        done = time.monotonic()
        latency = None if pending is None else (done - pending.first) * 1000
        timings = {
            "wait_ms": None if pending is None or started is None else _ms(pending.first, started),
            "stage_ms": None if started is None else _ms(started, staged_at),
            "validate_ms": _ms(staged_at, done),
        }
        self._syncs += 1
        c = result.diff.counts()
        self.out.emit(
            {
                "event": "staged",
                "component": result.component,
                "type": result.component_type,
                "stage": result.stage,
                "revision": result.revision,
                "previous_revision": result.previous,
                "changes": c,
                "files": result.files,
                "size": result.size,
                "hashed": result.hashed,
                "ready": ready,
                "validation": {"ready": ready, "summary": summary, "report": report},
                "latency_ms": None if latency is None else round(latency, 1),
                "timings": timings,
                "events": 0 if pending is None else pending.events,
                "warnings": list(result.warnings),
                "at": now_iso(),
            },
            f"{result.component}: staged {short(result.revision)} "
            f"(+{c['added']} ~{c['modified']} -{c['removed']}); {summary}; "
            + ("at start-up" if latency is None else f"{latency:.0f} ms after the first change"),
        )
        for warning in result.warnings:
            self.out.warn(warning)

    def _validate(self, ref: str) -> tuple[bool, str, Any]:
        """Validate the component's new revision: (ready, one-line summary, report data)."""
        try:
            report = self.ops.validate([ref], stage=self._validate_for, use_cache=True)
        except LockgateError as exc:
            return False, f"not validated: {exc.message}", {"error": exc.message}
        return bool(report.ready), str(report.summary()), report.to_dict()

    def _fail(self, where: str, message: str) -> None:
        self._failed += 1
        self.out.emit(
            {"event": "failed", "component": where, "error": message, "at": now_iso()},
            f"{where}: FAILED: {message}",
        )
