"""The warm path's server: ``stage``, ``sync`` and ``ls`` answered by the running watcher.

While ``lockgate watch`` runs, it listens on a Unix socket under the project's
``.lockgate/`` (:func:`~lockgate.plugin.warm_socket_path`, mode 0600). A command line
started meanwhile (``lockgate.cli.warm_client``) sends its arguments there instead of
loading Python's world; the watcher runs the same command line through the same code
(``context.operations.run_command``) on its open project and sends back what it printed
and its exit code. The protocol is :mod:`lockgate.contracts.warm`.

Threads: one accepts connections, one per connection checks the peer (``SO_PEERCRED``:
the watcher's own user, else refused), reads and checks the request (protocol, version,
project, ``LOCKGATE*`` environment identical to the watcher's: identity and
configuration are then the cold command's), and hands it to the watch loop's queue.
The command itself runs on the loop's thread, between syncs, like everything that
touches the project.

Fresh, never stale: before it runs a request, the loop writes a cookie file into the
watched directory and waits for its event (as watchman does), so every file event from
before the request has reached the loop — the watcher's own view is as new as the
request. Only then is the watcher's :class:`~lockgate.plugin.ChangeJournal` trusted
(``journal.trusted``, for the requests of that batch): a source with the
``TrustsEvents`` capability may then take what no event touched since its last scan
from that scan instead of reading it again — but only a directory watchdog holds a
watch on: one without (watchdog can lose one, see ``observe._Journal``) is read again,
and ``-v`` says so once. Without the cookie's event (polling, or late) nothing is
trusted and the command reads everything itself, as a cold one does.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockgate.builtin_plugins.watcher.observe import _Item, _Journal
from lockgate.builtin_plugins.watcher.output import Output
from lockgate.plugin import (
    WARM_COOKIE_PREFIX,
    WARM_PROTOCOL,
    WARM_VERSION,
    LockgateError,
    Operations,
    warm_request_env,
    warm_socket_path,
)

__all__ = ["COMMANDS", "COOKIE_WAIT", "WarmServer"]

COMMANDS = frozenset({"stage", "sync", "ls"})
COOKIE_WAIT = 0.5
"""Longest the loop waits for its cookie's event before it answers anyway."""
READ_TIMEOUT = 2.0
MAX_REQUEST = 1 << 20
_PEERCRED = struct.Struct("3i")


class _Request:
    """One accepted request: filled by the loop, sent by its connection's thread."""

    __slots__ = ("argv", "command", "done", "result", "terminal")

    def __init__(self, command: str, argv: list[str], terminal: bool) -> None:
        self.command = command
        self.argv = argv
        self.terminal = terminal
        self.done = threading.Event()
        self.result: tuple[bytes, bytes, int] | None = None


class WarmServer:
    """The socket, its threads, and the loop's side of a request (:meth:`answer`)."""

    def __init__(
        self,
        project_root: Path | None,
        watched: str,
        ops: Operations,
        put: Callable[[_Item], None],
        out: Output,
        journal: _Journal | None = None,
    ) -> None:
        self.project_root = project_root
        self.journal = journal or _Journal()
        self.watched = watched
        self.ops = ops
        self._put = put
        self.out = out
        self._sock: socket.socket | None = None
        self._path = ""
        self._inode = 0
        self._closing = False
        self._waiting: set[_Request] = set()
        self._lock = threading.Lock()
        self._cookies = itertools.count(1)
        self._deferred: list[_Request] = []
        self._noted: set[str] = set()
        # lockgate.yaml as the project was opened (just before this): see _check.
        self._config = None if project_root is None else _fingerprint(project_root)
        self.answered = 0

    # ------------------------------------------------------------------ the socket

    def start(self) -> None:
        """Listen, unless this platform, the path or another live watcher prevents it
        (then commands simply run cold; ``-v`` says why)."""
        if self.project_root is None or not hasattr(socket, "SO_PEERCRED"):
            return
        path = warm_socket_path(self.project_root)
        if len(os.fsencode(path)) > 100 or not Path(path).parent.is_dir():
            self.out.note(f"warm path off: cannot listen on {path}")
            return
        if os.path.lexists(path):
            if _alive(path):
                self.out.note(f"warm path off: another watcher answers on {path}")
                return
            with contextlib.suppress(FileNotFoundError):
                Path(path).unlink()  # a watcher that was killed left it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            Path(path).chmod(0o600)
            sock.listen(16)
        except OSError as exc:
            sock.close()
            self.out.note(f"warm path off: cannot listen on {path} ({exc.strerror or exc})")
            return
        self._sock, self._path, self._inode = sock, path, Path(path).stat().st_ino
        threading.Thread(target=self._accept, name="lockgate-warm", daemon=True).start()

    def stop(self) -> None:
        """Stop listening; requests not answered yet get no answer (their command runs cold)."""
        self._closing = True
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            if Path(self._path).stat().st_ino == self._inode:
                Path(self._path).unlink()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        with self._lock:
            waiting, self._waiting = self._waiting, set()
        for request in waiting:
            request.done.set()

    def _accept(self) -> None:
        while True:
            sock = self._sock
            if sock is None:
                return
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """One connection, on its own thread: check, hand over, wait, answer."""
        with conn:
            try:
                conn.settimeout(READ_TIMEOUT)
                _pid, uid, _gid = _PEERCRED.unpack(
                    conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
                )
                if uid != os.getuid():
                    _send(conn, {"accepted": False, "reason": f"uid {uid} is not the watcher's"})
                    return
                request, reason = self._check(_read_line(conn))
                if request is None:
                    _send(conn, {"accepted": False, "reason": reason})
                    return
                with self._lock:
                    if self._closing:
                        return
                    self._waiting.add(request)
                _send(conn, {"accepted": True})
                self._put(_Item("request", time.monotonic(), request=request))
                request.done.wait()
                if request.result is None:
                    return
                out, err, code = request.result
                header = {"stdout": len(out), "stderr": len(err), "exit_code": code}
                conn.settimeout(30.0)
                conn.sendall(json.dumps(header).encode() + b"\n" + out + err)
            except (OSError, ValueError):
                return  # garbage, a client gone, a timeout: this connection only

    def _check(self, line: bytes) -> tuple[_Request | None, str]:
        data = json.loads(line)
        if not isinstance(data, dict):
            return None, "not a request"
        if data.get("protocol") != WARM_PROTOCOL or data.get("version") != WARM_VERSION:
            return None, "another protocol or lockgate version"
        command, argv = data.get("command"), data.get("argv")
        if command not in COMMANDS or not isinstance(argv, list):
            return None, "not a command answered here"
        if not all(isinstance(a, str) for a in argv) or command not in argv:
            return None, "not a command answered here"
        if data.get("env") != warm_request_env(os.environ):
            return None, "another LOCKGATE* environment"
        root = self.project_root
        if root is None or data.get("root") != os.path.realpath(root):
            return None, "another project"
        if _fingerprint(root) != self._config:
            # The watcher's project was opened with the old one: a new process reads it.
            return None, "lockgate.yaml changed since the watcher started"
        terminal = data.get("terminal") is True
        if command == "ls" and terminal:
            return None, "a table for a terminal"
        return _Request(str(command), list(argv), terminal), ""

    # ------------------------------------------------------------------ the loop's side

    def answer(
        self,
        item: _Item,
        get: Callable[[float], _Item],
        absorb: Callable[[_Item], None],
        polling: bool,
    ) -> None:
        """Run a request (and any that came meanwhile) on the loop's thread."""
        if item.kind != "request" or not isinstance(item.request, _Request):
            return  # a cookie's event after its wait ended
        self._deferred.append(item.request)
        while self._deferred:
            batch, self._deferred = self._deferred, []
            # Every event from before the requests has been recorded once the cookie is
            # back: only then may the source answer from them (TrustsEvents).
            self.journal.trusted = not polling and self._cookie(get, absorb)
            try:
                for request in batch:
                    self._run(request)
            finally:
                self.journal.trusted = False
                self._note_unwatched()

    def _note_unwatched(self) -> None:
        """Say once (``-v``) each directory the answers read because it has no watch."""
        for directory in sorted(self.journal.unwatched - self._noted):
            self._noted.add(directory)
            self.out.note(
                f"warm path: {directory} has no file watch (watchdog lost it), so commands "
                "read it until the watcher watches it again"
            )

    def _cookie(self, get: Callable[[float], _Item], absorb: Callable[[_Item], None]) -> bool:
        """Write a cookie into the watched tree and absorb events until its own arrives:
        every event from before it has then been seen. False: not within COOKIE_WAIT."""
        name = f"{WARM_COOKIE_PREFIX}{os.getpid()}-{next(self._cookies)}"
        path = Path(self.watched, name)
        try:
            with open(path, "xb"):
                pass
        except OSError:
            return False
        try:
            deadline = time.monotonic() + COOKIE_WAIT
            while (left := deadline - time.monotonic()) > 0:
                try:
                    item = get(left)
                except queue.Empty:
                    break
                if item.kind == "cookie":
                    if item.message == name:
                        return True
                elif item.kind == "request" and isinstance(item.request, _Request):
                    self._deferred.append(item.request)
                else:
                    absorb(item)
            return False
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def _run(self, request: _Request) -> None:
        try:
            request.result = self.ops.run_command(request.argv, terminal=request.terminal)
            self.answered += 1
            self.out.note(f"warm path: answered {request.command} (exit {request.result[2]})")
        except LockgateError as exc:
            self.out.note(f"warm path: {request.command} not answered ({exc.message})")
        except Exception as exc:  # the command line catches its own: a bug here, not fatal
            self.out.warn(f"warm path: {request.command} not answered ({type(exc).__name__})")
        finally:
            with self._lock:
                self._waiting.discard(request)
            request.done.set()


def _fingerprint(root: Path) -> tuple[int, ...] | None:
    """What says ``lockgate.yaml`` is the one the project was opened with."""
    try:
        st = (root / "lockgate.yaml").stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _alive(path: str) -> bool:
    """Whether a process listens on the socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too long")
    return data.split(b"\n", 1)[0]


def _send(conn: socket.socket, data: dict[str, Any]) -> None:
    conn.sendall(json.dumps(data).encode() + b"\n")
