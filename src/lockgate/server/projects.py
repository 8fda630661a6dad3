"""Open projects, kept from one request to the next.

Opening a project reads ``lockgate.yaml``, loads the plugins and connects the state
store: most of what a read costs, and, for a database, one more connection each time.
The server therefore keeps the projects its requests used and hands an idle one to the
next request, so a server holds at most as many projects (and state store connections)
as it runs requests at once (``lockgate serve --threads``, one more when it is under 4,
plus the job workers).

A kept project is handed out again only while ``lockgate.yaml`` is the file it was
opened from (same inode, size and modification time): an edit takes effect at the next
request, as it did when every request opened its own. What a request set on the project
(its authenticated identity, the timeout's guard) is cleared before another request
gets it. A project whose request ended in an unexpected error is closed, not kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lockgate.core.config import CONFIG_FILENAME
from lockgate.core.project import Project

__all__ = ["ProjectPool"]

Stamp = tuple[int, int, int] | None


class ProjectPool:
    """Idle projects of one root, at most ``keep`` of them, opened by ``open_project``."""

    def __init__(self, root: Path, open_project: Callable[[], Project], keep: int) -> None:
        self.root = root
        self.open_project = open_project
        self.keep = keep
        self._lock = threading.Lock()
        self._idle: list[tuple[Stamp, Project]] = []
        self._closed = False

    def _stamp(self) -> Stamp:
        try:
            st = (self.root / CONFIG_FILENAME).stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def take(self) -> tuple[Stamp, Project]:
        """An idle project opened from today's ``lockgate.yaml``, else a new one."""
        stamp = self._stamp()
        stale: list[Project] = []
        found: Project | None = None
        with self._lock:
            while self._idle:
                kept_stamp, project = self._idle.pop()
                if kept_stamp == stamp:
                    found = project
                    break
                stale.append(project)
        for project in stale:
            project.close()
        return stamp, found if found is not None else self.open_project()

    def give(self, stamp: Stamp, project: Project) -> None:
        """Keep ``project`` for another request (what this one set cleared), or close it
        when enough are idle or the pool is closed."""
        project.authenticated = None
        project.before_change = None
        with self._lock:
            if not self._closed and len(self._idle) < self.keep:
                self._idle.append((stamp, project))
                return
        project.close()

    @contextmanager
    def project(self) -> Iterator[Project]:
        """A project for one request: kept afterwards, unless the request failed with an
        error that is not an answer (``keep_after``)."""
        stamp, project = self.take()
        try:
            yield project
        except BaseException as exc:
            if keep_after(exc):
                self.give(stamp, project)
            else:
                project.close()
            raise
        self.give(stamp, project)

    def close(self) -> None:
        """Close every idle project; projects given back later are closed too."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for _, project in idle:
            project.close()


def keep_after(exc: BaseException) -> bool:
    """Whether a project stays usable after its request raised ``exc``: lockgate's own
    errors (refusals, bad input, an answer of the server) leave it sound."""
    from lockgate.errors import LockgateError
    from lockgate.server.errors import ApiError

    return isinstance(exc, (LockgateError, ApiError))
