"""The validator pool: validator calls on daemon threads, with deadlines and an exit guard.

Each call runs in a worker thread of one pool kept for the life of the process, at most
``validation.workers`` at once, with a deadline of ``validation.timeout`` seconds: a call
that has not answered by then is reported as timed out and abandoned (a thread cannot be
killed, but nothing waits for it, and the process may exit while it still runs). A call
that raises is an error issue attributed to its plugin. Once validators run,
``os._exit``, ``os.abort`` and the ``os.exec*`` family refuse to act from any thread but
the main one, so a validator that tries is a failed gate (``validator-exit``).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from lockgate.contracts.models import Issue, Severity, ValidationSubject
from lockgate.errors import PluginHookError

if TYPE_CHECKING:
    from lockgate.core.hooks import Validator

__all__ = ["exit_issue", "run_calls"]

K = TypeVar("K", bound=Hashable)
Call = tuple["Validator", ValidationSubject]
"""One validator call: the validator and the subject it is called with."""

_WORKER_NAME = "lockgate-validate"


class _WorkerPool:
    """Daemon threads that run validator calls for every run in this process.

    Kept for the life of the process, so a long-running caller (``lockgate watch``)
    does not start threads for every run. A worker stuck in a call past its deadline is
    written off: the pool forgets it and starts another when more are needed.
    """

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Any, Any, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live = 0

    def ensure(self, count: int) -> None:
        _guard_process_exits()
        with self._lock:
            while self._live < count:
                threading.Thread(target=self._work, name=_WORKER_NAME, daemon=True).start()
                self._live += 1

    def write_off(self) -> None:
        with self._lock:
            self._live -= 1

    def submit(self, call: Any, task: Hashable, events: Any) -> None:
        self._tasks.put((call, task, events))

    def _work(self) -> None:
        while True:
            call, task, events = self._tasks.get()
            events.put(("start", task, []))
            events.put(("done", task, call()))


_POOL = _WorkerPool()


class _ExitAttempt(BaseException):
    """Raised in a validator's thread in place of ending the process."""


# What threads that validators started (not the workers) tried: "os._exit(0)", ...
# Only ever appended to.
_EXIT_ATTEMPTS: list[str] = []
_GUARDED: dict[str, Any] = {}
# "pid": the process whose validations are guarded; "runs": validations running now.
_GUARD: dict[str, int] = {"pid": 0, "runs": 0}
_CALL = threading.local()  # .attempt: what the validator running in this worker tried
_ENDERS = (
    "_exit",
    "abort",
    "execv",
    "execve",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execvp",
    "execvpe",
)


def _guard_process_exits() -> None:
    """Make the calls that end or replace the process refuse to from a non-main thread.

    Validators run in worker threads, and a call such as ``os._exit(0)`` there would end
    the command at once with status 0: nothing recorded, the caller told all is well. The
    kernel never ends the process from another thread, so from a validator's worker, or
    from any other thread while validators run, these calls raise instead. The host
    application's own threads are left alone between runs, and so is a child forked to
    exec or exit (its pid differs). Only Python-level calls are covered; see
    docs/validation.md for what is not.
    """
    _GUARD["pid"] = os.getpid()  # a forked child that validates guards its own threads
    if _GUARDED:
        return
    import posix

    for name in _ENDERS:
        original = getattr(os, name, None)
        if original is None:
            continue

        def guard(*args: Any, _name: str = name, _original: Any = original) -> Any:
            thread = threading.current_thread()
            if (
                thread is threading.main_thread()
                or os.getpid() != _GUARD["pid"]  # a child forked to exec or exit: its own
                # Other threads of the host application are left alone between runs:
                # only a validator's worker, or a thread started while validators run.
                or (thread.name != _WORKER_NAME and not _GUARD["runs"])
            ):
                return _original(*args)
            shown = ", ".join(repr(a) for a in args[:2])
            what = f"os.{_name}({shown})"
            if threading.current_thread().name == _WORKER_NAME:
                _CALL.attempt = what  # reported with the call, even if it is caught
            else:
                _EXIT_ATTEMPTS.append(what)
            raise _ExitAttempt(what)

        _GUARDED[name] = original
        setattr(os, name, guard)
        if getattr(posix, name, None) is original:
            setattr(posix, name, guard)

    previous_hook = threading.excepthook

    def excepthook(args: Any) -> None:
        if not isinstance(args.exc_value, _ExitAttempt):  # reported as a failed gate
            previous_hook(args)

    threading.excepthook = excepthook


def run_calls(
    calls: Mapping[K, Call], *, workers: int, timeout: float
) -> tuple[dict[K, list[Issue]], list[str]]:
    """Run ``calls`` on the pool, at most ``workers`` at once, each with ``timeout`` s.

    Returns each call's issues and what threads that validators started (not the calls
    themselves) tried while these ran: ``["os._exit(0)", ...]``, empty when nothing.
    """
    attempts = len(_EXIT_ATTEMPTS)
    _GUARD["runs"] += 1
    try:
        fresh = _run_parallel(calls, workers, timeout)
    finally:
        _GUARD["runs"] -= 1
    return fresh, _EXIT_ATTEMPTS[attempts:]


def _run_parallel(calls: Mapping[K, Call], workers: int, timeout: float) -> dict[K, list[Issue]]:
    """Run the calls on the process's pool of daemon workers, with deadlines.

    A worker reports when it starts a call and when it finishes; a call still running
    at its deadline is recorded as timed out and its worker written off (the pool
    starts a replacement). Nothing ever waits for a written-off worker.
    """
    events: queue.SimpleQueue[tuple[str, K, list[Issue]]] = queue.SimpleQueue()
    _POOL.ensure(min(workers, len(calls)))
    for task in calls:
        _POOL.submit(lambda t=task: _call_one(*calls[t]), task, events)
    results: dict[K, list[Issue]] = {}
    running: dict[K, float] = {}
    while len(results) < len(calls):
        wait = max(0.0, min(running.values()) - time.monotonic()) if running else None
        try:
            kind, task, issues = events.get(timeout=wait)
        except queue.Empty:
            now = time.monotonic()
            for late in [t for t, deadline in running.items() if deadline <= now]:
                del running[late]
                results[late] = [_timed_out(calls[late][0], timeout)]
                _POOL.write_off()
            # Replace the workers written off, or queued calls would wait for ever on
            # workers that never come back (workers: 1 and a validator that hangs).
            _POOL.ensure(min(workers, len(calls) - len(results)))
            continue
        if task in results:
            continue  # finished after its deadline: the timeout stands
        if kind == "start":
            running[task] = time.monotonic() + timeout
        else:
            running.pop(task, None)
            results[task] = issues
    return results


def _call_one(validator: Validator, subject: ValidationSubject) -> list[Issue]:
    _CALL.attempt = None
    try:
        issues = validator.call(subject)
    except PluginHookError as exc:
        message = exc.message
    except BaseException as exc:  # a validator must never take the run down
        message = f"plugin '{validator.plugin}' failed: {type(exc).__name__}: {exc}"
    else:
        if _CALL.attempt is None:
            return issues
        message = ""
    if _CALL.attempt is not None:
        return [exit_issue(validator.plugin, _CALL.attempt)]
    return [
        Issue(
            Severity.ERROR,
            "validator-failed",
            message,
            plugin=validator.plugin,
            hint=f"fix or disable plugin '{validator.plugin}' (plugins.disable in lockgate.yaml)",
        )
    ]


def _timed_out(validator: Validator, timeout: float) -> Issue:
    return Issue(
        Severity.ERROR,
        "validator-timeout",
        f"plugin '{validator.plugin}' did not finish within {timeout:g} s (validation.timeout)",
        plugin=validator.plugin,
        hint=f"fix plugin '{validator.plugin}' or raise validation.timeout",
    )


def exit_issue(plugin: str | None, what: str) -> Issue:
    """The issue of a validator that tried to end the process instead of returning."""
    who = f"plugin '{plugin}'" if plugin else "a thread a validator started"
    return Issue(
        Severity.ERROR,
        "validator-exit",
        f"{who} tried to end the process ({what}) instead of returning its issues",
        plugin=plugin or "lockgate",
        hint=f"fix or disable {f'plugin {plugin!r}' if plugin else 'the validator'} "
        "(plugins.disable in lockgate.yaml)",
    )
