"""``lockgate serve --workers N``: one listening socket, N server processes answering on it.

One Python process answers on one core at a time (the GIL). With ``--workers N`` the
command binds the address itself and becomes a supervisor: it forks N worker processes
that each run the whole server (uvicorn and the application, with their own threads and
open projects) and accept connections from that one socket, the kernel handing each new
connection to a worker waiting in ``accept``. The supervisor answers no request; it

- binds first, so an address in use is one line and exit 4 before any worker starts;
- forwards ``SIGTERM`` and ``SIGINT`` (Ctrl-C) to every worker as ``SIGTERM``: each
  drains as a single server does (running jobs finish, queued ones are recorded failed,
  :mod:`lockgate.server.jobs`), and the supervisor exits 0 once all have, else 1; a stop
  that comes while it starts the workers starts no more and reaches the one it was
  forking too;
- starts a new worker when one ends unexpectedly (killed, crashed), saying so in one
  line; a worker that keeps dying as soon as it starts (5 times in a row within 10 s of
  starting) stops the server, exit 1. A worker whose supervisor was killed outright
  drains and ends by itself within a second.

What the workers must share (jobs, ``Idempotency-Key`` answers, dashboard sign-ins, the
failed-authentication budget) is in ``.lockgate/server.db``; metrics are counted in
files in a directory the supervisor makes under ``.lockgate/serve/`` and removes
(:mod:`lockgate.server.metrics`).
Workers are forked, so this needs ``os.fork`` (Linux, macOS, the BSDs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lockgate.core.failpoints import failpoint
from lockgate.errors import EnvironmentFault, InputError
from lockgate.server.owners import Owner

__all__ = ["bind", "serve_one", "supervise"]

QUICK_DEATH = 10.0
"""A worker that ends within this many seconds of its start counts as failing to start."""
QUICK_DEATHS = 5
"""So many quick deaths in a row stop the server."""


def bind(host: str, port: int) -> socket.socket:
    """The listening socket on ``host``:``port``; an address in use or not this machine's
    is one line (exit 4)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host!r} is not an address ({exc.strerror}); give one") from None
    family = found[0][0]
    try:
        sock = socket.create_server(found[0][4], family=family, backlog=2048)
    except OSError as exc:
        why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise EnvironmentFault(
            f"cannot listen on {host}:{port}: {why} (another server on that port? stop it, "
            "or choose another --port)"
        ) from None
    sock.set_inheritable(True)
    return sock


def serve_one(app: Any, sock: socket.socket, options: Mapping[str, Any]) -> None:
    """Run ``app`` under uvicorn on ``sock`` until SIGTERM or SIGINT; it drains first."""
    import uvicorn

    config = uvicorn.Config(app, **options)
    uvicorn.Server(config).run(sockets=[sock])


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _follow(supervisor: int) -> None:
    """Drain and end this worker, as SIGTERM does, once its supervisor is gone (killed
    outright): a worker never serves on alone, unsupervised. ``supervisor`` is the pid
    the supervisor had when it forked this worker, not ``os.getppid()`` read here: a
    supervisor killed before the worker got that far has left it a parent already (init,
    or a subreaper), which it would then follow instead, and serve on."""

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="lockgate-supervisor", daemon=True).start()


def _worker(
    make_app: Callable[[str], Any],
    metrics_dir: str,
    sock: socket.socket,
    options: Mapping[str, Any],
    say: Callable[[str], None],
    supervisor: int,
) -> None:
    """A forked worker's life: serve until stopped, then exit (never return)."""
    failpoint("serve.worker")
    code = 1
    _follow(supervisor)
    try:  # the supervisor's stop() exits a worker: before uvicorn serves, or once drained
        serve_one(make_app(metrics_dir), sock, options)
        code = 0
    except BaseException as exc:  # one line, as any command says what went wrong
        if not isinstance(exc, KeyboardInterrupt | SystemExit):
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            say(f"lockgate: worker {os.getpid()} failed: {message}")
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            code = 0
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _metrics_dir(owner: Owner, directory: Path) -> str:
    """This supervisor's metrics directory, made once those of supervisors that are gone
    (killed outright) are removed."""
    for stale in directory.glob("*.metrics"):
        if not owner.alive(stale.name.removesuffix(".metrics")):
            shutil.rmtree(stale, ignore_errors=True)
    made = directory / f"{owner.id}.metrics"
    made.mkdir(0o700)
    return str(made)


class _Flag:
    """A flag a signal handler raises: a plain attribute, no lock (a handler that ran
    while the loop held one would wait for itself)."""

    up = False

    def __bool__(self) -> bool:  # read anew each time (a handler may raise it meanwhile)
        return self.up


def _terminate(pids: list[int]) -> None:
    """``SIGTERM`` to each of ``pids`` (one that has ended already is no error)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def supervise(
    workers: int,
    directory: Path,
    sock: socket.socket,
    make_app: Callable[[str], Any],
    options: Mapping[str, Any],
    say: Callable[[str], None],
) -> int:
    """Run ``workers`` forked processes serving ``make_app(metrics_dir)`` on ``sock``;
    the exit status once all have stopped (0: each drained and stopped cleanly).

    The metrics directory is ``directory/<owner>.metrics``, owned as a job is
    (:class:`~lockgate.server.owners.Owner`; the workers inherit the lock): removed at the
    end, and by the next supervisor when this one was killed outright."""
    if not hasattr(os, "fork"):
        raise InputError("--workers above 1 needs os.fork, which this system lacks; use 1")
    owner = Owner(directory)
    metrics_dir = _metrics_dir(owner, directory)
    children: dict[int, float] = {}
    stopping = _Flag()  # raised by the signal handler, read by the loop
    failed = False

    def start() -> None:
        failpoint("serve.fork")
        if stopping:  # a stop came first: no worker to start, none to tell
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _worker(make_app, metrics_dir, sock, options, say, supervisor)
        children[pid] = time.monotonic()
        if stopping:  # came while forking, before the worker was in children
            _terminate([pid])

    def stop(signum: int, frame: Any) -> None:
        if os.getpid() != supervisor:  # a worker not serving yet, or drained already
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        stopping.up = True
        _terminate(list(children))

    supervisor = os.getpid()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    quick = 0
    try:
        for _ in range(workers):
            start()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None:
                continue
            clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            if stopping:
                failed = failed or not clean
                continue
            quick = quick + 1 if time.monotonic() - started < QUICK_DEATH else 0
            if quick >= QUICK_DEATHS:
                say(
                    f"lockgate: workers keep ending as they start ({_describe(status)}); "
                    "stopping the server"
                )
                failed = True
                stop(signal.SIGTERM, None)
                continue
            say(f"lockgate: worker {pid} ended ({_describe(status)}); starting another")
            start()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        owner.sweep()  # a worker stopped as it started leaves its lock file
        owner.close()
    return 1 if failed else 0
