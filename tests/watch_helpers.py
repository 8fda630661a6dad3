"""A real ``lockgate --json watch`` in a subprocess, for the watcher and warm-path tests.

:class:`Watch` reads a watcher's JSON lines and stderr as they come; :class:`Watchers`
starts them on one project and kills every one it started at the end (the fixtures of
tests/test_watch.py, tests/test_warm.py and tests/test_warm_events.py);
:func:`watched_project` writes the two-component project they watch; :func:`run` runs a
command as a user would, warm or cold, to compare the answers.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import subprocess_env
from lockgate.operations.init import init_project

DEBOUNCE_MS = 300  # above the default (200): more room for a stalled test process
QUIET = 2 * DEBOUNCE_MS / 1000 + 0.5
TIMEOUT = 30.0  # for anything we wait for: a slow, busy VM must not fail a test
# A watcher's LOCKGATE* environment; a warm-path request must carry the same.
WATCH_ENV = {
    "LOCKGATE_DISABLE_PLUGINS": "teamdefaults",
    "LOCKGATE__PLUGINS__WATCH__DEBOUNCE_MS": str(DEBOUNCE_MS),
}

Event = dict[str, Any]


class Watch:
    """A running ``lockgate --json watch``: its events and stderr, read as they come."""

    def __init__(
        self,
        project: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        verbose: bool = False,
    ) -> None:
        full_env = subprocess_env(WATCH_ENV, env)
        cmd = [sys.executable, "-m", "lockgate", "-C", str(project), "--json"]
        cmd += ["-v", "watch", *args] if verbose else ["watch", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env
        )
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for line in stream:
            with self._cond:
                if is_stdout:
                    self.events.append(json.loads(line))
                else:
                    self.stderr.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Event], bool], *, since: int = 0) -> Event:
        """The first event from index ``since`` on that matches; fails after TIMEOUT."""

        def found() -> Event | None:
            return next((e for e in self.events[since:] if predicate(e)), None)

        with self._cond:
            self._cond.wait_for(
                lambda: found() is not None or self.proc.poll() is not None, timeout=TIMEOUT
            )
            event = found()
        assert event is not None, (
            f"no matching event within {TIMEOUT} s; events: {self.events}; "
            f"stderr: {self.stderr}; exit code: {self.proc.poll()}"
        )
        return event

    def wait_for_stderr(self, text: str) -> None:
        self.wait_for_lines(text, 1)

    def stderr_count(self, text: str) -> int:
        """How many stderr lines so far hold ``text``."""
        with self._cond:
            return sum(text in line for line in self.stderr)

    def wait_for_lines(self, text: str, n: int) -> None:
        """Wait until ``n`` stderr lines hold ``text``; fails after TIMEOUT."""
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    sum(text in line for line in self.stderr) >= n or self.proc.poll() is not None
                ),
                timeout=TIMEOUT,
            )
            assert sum(text in line for line in self.stderr) >= n, (text, self.stderr, self.events)

    def ready(self) -> Event:
        return self.wait_for(lambda e: e["event"] == "ready")

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def since(self, mark: int) -> list[Event]:
        with self._cond:
            return list(self.events[mark:])

    def staged(self, component: str, mark: int) -> Event:
        return self.wait_for(is_staged(component), since=mark)

    def count(self, component: str, mark: int, kind: str = "staged") -> int:
        return sum(
            1 for e in self.since(mark) if e["event"] == kind and e.get("component") == component
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code


class Watchers:
    """Watchers of one project, started by :meth:`start` and all killed on exit.

    ``verbose``: ``-v`` (its notes say which commands the warm path answered);
    ``ready``: :meth:`start` returns once the watcher said ``ready``.
    """

    def __init__(self, project: Path, *, verbose: bool = False, ready: bool = False) -> None:
        self.project = project
        self.verbose = verbose
        self.wait_ready = ready
        self.started: list[Watch] = []

    def start(
        self, *args: str, env: Mapping[str, str] | None = None, verbose: bool | None = None
    ) -> Watch:
        verbose = self.verbose if verbose is None else verbose
        w = Watch(self.project, *args, env=env, verbose=verbose)
        self.started.append(w)
        if self.wait_ready:
            w.ready()
        return w

    def __enter__(self) -> Watchers:
        return self

    def __exit__(self, *exc: object) -> None:
        for w in self.started:
            w.stop(signal.SIGKILL)


def is_staged(component: str) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "staged" and e["component"] == component


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def component(project: Path, ref: str, files: Mapping[str, str], kind: str = "scripts") -> Path:
    ws, cid = ref.split(":")
    root = project / "workspaces" / ws / kind / cid
    for rel, text in files.items():
        write(root / rel, text)
    return root


def watched_project(root: Path) -> Path:
    """A new project at ``root`` with two components to watch: ``alice:etl`` (main.py,
    lib/util.py) and ``alice:load`` (load.py)."""
    init_project(root)
    component(root, "alice:etl", {"main.py": "print('etl')\n", "lib/util.py": "X = 1\n"})
    component(root, "alice:load", {"load.py": "print('load')\n"})
    return root


# --------------------------------------------------------------------------- the warm path

NEEDS_PEERCRED = pytest.mark.skipif(
    not hasattr(socket, "SO_PEERCRED"), reason="the warm path needs SO_PEERCRED (Linux)"
)
NOTE = "warm path: answered"  # the -v note of a command the watcher answered


def run(project: Path, *args: str, cold: bool = False, env: Mapping[str, str] | None = None) -> Any:
    """``lockgate ARGS`` as a new process in ``project`` (bytes out), with the watcher's
    environment; ``cold``: with ``LOCKGATE_NO_WARM=1``."""
    extra = {"LOCKGATE_NO_WARM": "1"} if cold else {}
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        cwd=project,
        env=subprocess_env(WATCH_ENV, extra, env),
        capture_output=True,
        timeout=60,
    )


def same(warm: Any, cold: Any) -> None:
    assert (warm.stdout, warm.stderr, warm.returncode) == (
        cold.stdout,
        cold.stderr,
        cold.returncode,
    )


def answered(w: Watch) -> int:
    """How many commands watcher ``w`` (started with ``-v``) has answered."""
    return w.stderr_count(NOTE)


def wait_answered(w: Watch, n: int) -> None:
    w.wait_for_lines(NOTE, n)
