"""The request timeout, without half-done operations.

A request's operation runs in a worker thread under a :class:`Ticket`. When the
timeout passes, the server tries to :meth:`~Ticket.expire` the ticket:

- the operation has not taken a lock of the project yet (it is still planning or
  running its gates, such as a slow validator): the ticket expires, the client gets 504
  (``timeout``), and the operation stops the moment it takes its first lock
  (:attr:`~lockgate.core.project.Project.before_change`), before it changes anything; the
  refusal is an audit event ``server.timeout``;
- the operation already holds a lock (it is changing the project): it is never
  abandoned halfway; the client gets its real answer when it ends.

So a 504 always means: nothing was changed, and nothing will be (no file, pointer,
status or approval; the audit log may still gain what the gates concluded, a
validation's results or a refusal, which change nothing). Retrying is safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lockgate.errors import RefusedError

__all__ = ["Abandoned", "Ticket"]


class Abandoned(RefusedError):
    """The operation's request was answered 504 before it changed anything: it stops."""


class Ticket:
    """One request's operation, as the timeout sees it: running, committed (changing the
    project, never abandoned) or expired (answered 504, refused at its first lock)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._state = "running"
        self._done = threading.Event()
        self._outcome: tuple[int, Any] | None = None
        self._error: BaseException | None = None

    def commit(self, operation: str) -> None:
        """The operation is about to change the project: from now on it is not
        abandoned; refused (:class:`Abandoned`) when the request already timed out."""
        with self._lock:
            if self._state == "expired":
                raise Abandoned(
                    f"{operation} stopped before changing anything: its request was "
                    f"answered 504 after {self.timeout:g} s"
                )
            self._state = "committed"

    def expire(self) -> bool:
        """At the timeout: True when the operation will change nothing (answer 504),
        False when it is changing the project (wait for its answer)."""
        with self._lock:
            if self._state == "committed":
                return False
            self._state = "expired"
            return True

    def run(self, work: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """Run ``work``, keeping its outcome for :meth:`wait`."""
        try:
            self._outcome = work()
            return self._outcome
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._done.set()

    def wait(self) -> tuple[int, Any]:
        """The outcome of :meth:`run` (in another thread), once it ends."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome
